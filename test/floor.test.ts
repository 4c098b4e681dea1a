// The glibc floor check that fails the release build (scripts/floor.mjs, used by scripts/prebuild.mjs): it must
// fail on a file above the floor and pass the shipped binaries, and agree with an independent reading (objdump -T,
// the dynamic symbol table, instead of readelf's version-needs section).
import { execFileSync, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { currentPrebuilds } from './helpers/packed.js';

const root = join(__dirname, '..');
const floor = (target: string, files: string[]) =>
  spawnSync(process.execPath, [join(root, 'scripts/floor.mjs'), target, ...files], { encoding: 'utf8' });

/** The highest GLIBC_ version among the file's undefined (imported) dynamic symbols, by objdump. */
function objdumpGlibc(file: string): string {
  const dump = execFileSync('objdump', ['-T', file], { encoding: 'utf8' });
  const versions = [...dump.matchAll(/\*UND\*\s+\S+\s+(?:\(GLIBC_([0-9.]+)\)|GLIBC_([0-9.]+))/g)].map((m) => m[1] ?? m[2]!);
  return versions.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop() ?? 'none';
}
const above = (v: string, f: string) => v.localeCompare(f, 'en', { numeric: true }) > 0;

describe('the release floor check', () => {
  it("judges this machine's own libgomp as objdump does (Debian 12's needs glibc 2.34, above the 2.17 floor)", () => {
    const gomp = realpathSync(execFileSync('g++', ['-print-file-name=libgomp.so.1'], { encoding: 'utf8' }).trim());
    const highest = objdumpGlibc(gomp);
    const r = floor('linux-x64', [gomp]);
    if (above(highest, '2.17')) {
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`GLIBC_${highest}`);
      expect(r.stderr).toMatch(/above the documented floor/);
    } else {
      expect(r.status).toBe(0);
    }
  });

  it('passes the prebuilt binaries, and for x64 agrees with objdump', () => {
    const targets = currentPrebuilds();
    expect(targets).toContain('linux-x64');
    for (const target of targets) {
      const files = ['normkit.node', 'libgomp.so.1'].map((f) => join(root, 'prebuilds', target, f));
      const abi = JSON.parse(execFileSync('cat', [join(root, 'prebuilds', target, 'abi.json')], { encoding: 'utf8' })) as { build: string; needs: { GLIBC: string } };
      const r = floor(target, files);
      // A dev prebuild (host toolchain) may be above the floor; a release one never.
      if (abi.build.startsWith('release')) expect(r.status, r.stderr).toBe(0);
      if (target === 'linux-x64') {
        const highest = files.map(objdumpGlibc).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop();
        expect(abi.needs.GLIBC).toBe(highest);
      }
    }
  });
});
