// Packs the npm tarball from a staged copy of the package, never from the repository root, so what users install
// can run nothing at install time:
//   - the staged package.json keeps only what a consumer needs: no `scripts` at all (the repository's `prepare`,
//     `prepack`, `build`... are for developers; npm runs `prepare` of a file/git dependency once allowScripts
//     approves it), no devDependencies, no `private`;
//   - no binding.gyp is shipped: npm invents `install: node-gyp rebuild` for any package with a root binding.gyp,
//     and it ignores `"gypfile": false` when it reinstalls from a lockfile (whose entry does not record gypfile).
//     The from-source fallback ships as native/ + CMakeLists.txt (cmake-js), see README "Building from source".
// The repository root itself is `private` (npm publish refuses it) and its `prepack` refuses to pack it.
// The release tarball ships a current release prebuild for every target of scripts/platforms.json and nothing else.
// Usage: npm run pack:release [-- --pack-destination DIR]   Prints the tarball's path. Needs `npm run prebuilds`.
//        node scripts/pack.mjs --dev [...]   for tests: also takes dev prebuilds, and leaves out stale ones.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sourceHash } from './source-hash.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const stage = join(root, 'build-pack', 'package');
const args = process.argv.slice(2);
const destAt = args.indexOf('--pack-destination');
const dest = destAt >= 0 ? resolve(args[destAt + 1] ?? '.') : join(root, 'build-pack');
const dev = args.includes('--dev');

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

// Which prebuilds go in: current ones (built from these sources), release ones unless --dev.
const hash = sourceHash();
const platforms = Object.keys(JSON.parse(readFileSync(join(root, 'scripts/platforms.json'), 'utf8')));
const shipped = [];
for (const target of existsSync(join(root, 'prebuilds')) ? readdirSync(join(root, 'prebuilds')) : []) {
  const abiFile = join(root, 'prebuilds', target, 'abi.json');
  const abi = existsSync(abiFile) ? JSON.parse(readFileSync(abiFile, 'utf8')) : {};
  const why = abi.sources !== hash ? 'built from other sources' : !dev && !String(abi.build).startsWith('release') ? 'a dev build' : null;
  if (!why) shipped.push(target);
  else if (dev) console.error(`pack: leaving out prebuilds/${target}: ${why}`);
  else fail(`prebuilds/${target} is ${why}: run \`npm run prebuilds\``);
}
if (!dev) for (const t of platforms) if (!shipped.includes(t)) fail(`no prebuilds/${t}: run \`npm run prebuilds\``);
if (shipped.length === 0) fail('no current prebuild: run `npm run prebuilds` (the tarball ships the binaries, it never builds)');
for (const f of manifest.files) if (!existsSync(join(root, f))) fail(`"files" lists ${f}, which does not exist (npm run build?)`);

rmSync(join(root, 'build-pack'), { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
for (const f of [...manifest.files.filter((f) => !/^prebuilds\/?$/.test(f)), 'README.md']) cpSync(join(root, f), join(stage, f), { recursive: true });
for (const t of shipped) cpSync(join(root, 'prebuilds', t), join(stage, 'prebuilds', t), { recursive: true });
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
