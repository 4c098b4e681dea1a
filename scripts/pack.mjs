// Packs the npm tarball from a staged copy of the package, never from the repository root, so what users install
// can run nothing at install time:
//   - the staged package.json keeps only what a consumer needs: no `scripts` at all (the repository's `prepare`,
//     `prepack`, `build`... are for developers; npm runs `prepare` of a file/git dependency once allowScripts
//     approves it), no devDependencies, no `private`;
//   - no binding.gyp is shipped: npm invents `install: node-gyp rebuild` for any package with a root binding.gyp,
//     and it ignores `"gypfile": false` when it reinstalls from a lockfile (whose entry does not record gypfile).
//     The from-source fallback ships as native/ + CMakeLists.txt (cmake-js), see README "Building from source".
// The repository root itself is `private` (npm publish refuses it) and its `prepack` refuses to pack it.
// Usage: npm run pack:release [-- --pack-destination DIR]   Prints the tarball's path. Needs prebuilds/ (npm run prebuild).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stage = join(root, 'build-pack', 'package');
const args = process.argv.slice(2);
const destAt = args.indexOf('--pack-destination');
const dest = destAt >= 0 ? resolve(args[destAt + 1] ?? '.') : join(root, 'build-pack');

/** Manifest fields a consumer's npm and Node read; everything else in the repository's package.json stays home. */
const PUBLISHED_FIELDS = ['name', 'version', 'description', 'license', 'type', 'keywords', 'homepage', 'repository',
  'bugs', 'author', 'main', 'types', 'exports', 'files', 'engines', 'os', 'cpu', 'gypfile', 'binary',
  'dependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta'];

const fail = (msg) => { console.error(`pack: ${msg}`); process.exit(1); };

const repoManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const manifest = Object.fromEntries(PUBLISHED_FIELDS.filter((k) => k in repoManifest).map((k) => [k, repoManifest[k]]));

// Refuse an unsafe manifest or file list outright (a later edit of package.json must not slip one through).
if (manifest.gypfile !== false) fail('"gypfile": false must stay in package.json (npm would look for binding.gyp)');
if (manifest.files.some((f) => /(^|\/)binding\.gyp$|\.gypi?$/.test(f))) fail('package.json "files" must not ship gyp files');
if (!existsSync(join(root, 'prebuilds')) || readdirSync(join(root, 'prebuilds')).length === 0) {
  fail('no prebuilds/: run `npm run prebuild` first (the tarball ships the binaries, it never builds)');
}
for (const f of manifest.files) if (!existsSync(join(root, f))) fail(`"files" lists ${f}, which does not exist (npm run build?)`);

rmSync(join(root, 'build-pack'), { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
for (const f of [...manifest.files, 'README.md']) cpSync(join(root, f), join(stage, f), { recursive: true });
writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
const staged = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'));
if ('scripts' in staged) fail('staged manifest carries scripts');
if (existsSync(join(stage, 'binding.gyp'))) fail('staged package has a root binding.gyp');

mkdirSync(dest, { recursive: true });
// --ignore-scripts is belt and braces: the staged manifest has none.
const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest],
  { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const [{ filename, size, unpackedSize }] = JSON.parse(out);
console.error(`pack: ${filename}: ${(size / 1e3).toFixed(0)} kB packed, ${(unpackedSize / 1e3).toFixed(0)} kB unpacked`);
console.log(join(dest, filename));
