// The symbol-version floor of shipped ELF files: the highest GLIBC_/GLIBCXX_/CXXABI_/GCC_ version each imports
// (readelf -V's version-needs section; readelf reads any ELF machine, so it serves arm64 files too), against the
// floor documented for its target in scripts/platforms.json. scripts/prebuild.mjs fails the release build on it.
// Usage: node scripts/floor.mjs <target> <file>...   exits 1, naming each version above the floor.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function cmpVersion(a, b) {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

/** { GLIBC: '2.17', ... }: the highest version of each interface the files need. */
export function needs(files) {
  const found = {};
  for (const file of files) {
    const dump = execFileSync('readelf', ['-V', '--wide', file], { encoding: 'utf8' });
    const at = dump.indexOf("Version needs section '.gnu.version_r'");
    if (at < 0) continue;  // imports no versioned symbol
    for (const [, lib, version] of dump.slice(at).matchAll(/Name: (GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)/g)) {
      if (!found[lib] || cmpVersion(version, found[lib]) > 0) found[lib] = version;
    }
  }
  return found;
}

/** The needed versions above `floor` (an interface the floor does not name counts as above it). */
export function overFloor(need, floor) {
  return Object.entries(need).filter(([lib, v]) => !floor[lib] || cmpVersion(v, floor[lib]) > 0).map(([lib, v]) => `${lib}_${v}`);
}

export function floorOf(target) {
  const platforms = JSON.parse(readFileSync(new URL('platforms.json', import.meta.url), 'utf8'));
  if (!platforms[target]) throw new Error(`unknown target ${target}`);
  return platforms[target].floor;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [target, ...files] = process.argv.slice(2);
  const floor = floorOf(target), need = needs(files), over = overFloor(need, floor);
  if (over.length) {
    console.error(`floor: ${target} files need ${over.join(', ')}, above the documented floor ${JSON.stringify(floor)}`);
    process.exit(1);
  }
  console.log(`floor: ${target}: ${Object.entries(need).map(([k, v]) => `${k}_${v}`).join(', ')} within ${JSON.stringify(floor)}`);
}
