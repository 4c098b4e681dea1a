// Builds the prebuilt binaries shipped in the npm package: prebuilds/<target>/ holds every *.node the build made,
// stripped, with the libgomp.so.1 they link copied beside them (found through their $ORIGIN runpath; shipping it
// is allowed by the GCC Runtime Library Exception), and abi.json saying how it was built and what it needs.
//
//   npm run prebuilds                 release: every target of scripts/platforms.json (linux-x64, linux-arm64),
//                                    built inside a Debian 11 (bullseye) root, .cache/bullseye-amd64/ (made by
//                                    scripts/bullseye-root.sh on first use: minutes), with its glibc 2.31 and gcc 10
//                                    (arm64: its aarch64 cross compiler and arm64 libc). FAILS when a shipped file
//                                    needs a GLIBC_/GLIBCXX_/CXXABI_/GCC_ symbol version above the target's
//                                    documented floor (scripts/platforms.json, README "Prebuilt binaries").
//   npm run prebuilds -- --dev [--target linux-x64|linux-arm64]
//                                    the host's toolchain (fast, for tests; arm64 via g++-aarch64-linux-gnu),
//                                    labelled "dev" in abi.json: its floor is the host's, so pack:release refuses it.
// Builds in build-prebuild/ (dev) or inside the root, never in the build/ a running test suite loads.
// The npm script is "prebuilds", not "prebuild": npm runs a script named prebuild before every `npm run build`
// (so before every `npm install` of the repository), which made each install build the prebuilds too.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needs, overFloor } from './floor.mjs';
import { sourceHash } from './source-hash.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const platforms = JSON.parse(readFileSync(join(root, 'scripts/platforms.json'), 'utf8'));
const args = process.argv.slice(2);
const dev = args.includes('--dev');
const targetAt = args.indexOf('--target');
const targets = targetAt >= 0 ? [args[targetAt + 1]] : dev ? [`linux-${process.arch}`] : Object.keys(platforms);
const buildRoot = join(root, '.cache/bullseye-amd64');
const run = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { cwd: root, encoding: 'utf8', ...opts });
const fail = (msg) => { console.error(`prebuild: ${msg}`); process.exit(1); };

for (const t of targets) if (!platforms[t]) fail(`unknown target ${t} (scripts/platforms.json has ${Object.keys(platforms).join(', ')})`);
if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the prebuilds are made on linux-x64 (this is ${process.platform}-${process.arch})`);

// Node-API headers: node's own (any version: NAPI_VERSION=9 picks the API) and node-addon-api's.
// include_dir is relative to the working directory when required ("node_modules/node-addon-api"); CMake would take it relative to
// each subproject's source dir (native/mpi/ has no node_modules), so make it absolute.
const napiDir = resolve(createRequire(join(root, 'package.json'))('node-addon-api').include_dir);
const nodeInclude = [join(dirname(process.execPath), '../include/node'), '/usr/include/node'].find((d) => existsSync(join(d, 'node_api.h')))
  ?? fail('no node_api.h beside this node (include/node)');

/** Runs a command in the release root (chroot), or on the host for --dev. */
function inEnv(cmd, argv) {
  if (dev) return run(cmd, argv);
  return run('chroot', [buildRoot, '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LC_ALL=C', cmd, ...argv]);
}
/** A path as the build sees it, mapped to the host. */
const onHost = (p) => (dev ? p : join(buildRoot, p));

function configure() {
  if (dev) return { src: root, headers: { napi: napiDir, node: nodeInclude }, build: (t) => join(root, 'build-prebuild', t) };
  if (!existsSync(join(buildRoot, 'usr/bin/g++-10')) || !existsSync(join(buildRoot, 'usr/bin/mpicc'))) {
    console.error('prebuild: making the bullseye build root (once; cached in .cache/bullseye-amd64)');
    run('bash', [join(root, 'scripts/bullseye-root.sh'), buildRoot], { stdio: 'inherit' });
  }
  // The root has no node: copy in the sources and the two header directories.
  rmSync(join(buildRoot, 'src'), { recursive: true, force: true });
  for (const p of ['native', 'CMakeLists.txt', 'cmake']) cpSync(join(root, p), join(buildRoot, 'src', p), { recursive: true });
  const headers = (from, to) => {
    mkdirSync(join(buildRoot, to), { recursive: true });
    for (const f of readdirSync(from).filter((n) => n.endsWith('.h'))) copyFileSync(join(from, f), join(buildRoot, to, f));
  };
  headers(napiDir, 'src/.headers/node-addon-api');
  headers(nodeInclude, 'src/.headers/node');
  return { src: '/src', headers: { napi: '/src/.headers/node-addon-api', node: '/src/.headers/node' }, build: (t) => `/build/${t}` };
}

const env = configure();
const hash = sourceHash();
const toolchainNote = dev ? 'dev: host toolchain, not for release' : 'release: Debian 11 (bullseye), gcc 10, glibc 2.31';
let failed = false;
for (const target of targets) {
  const p = platforms[target];
  const build = env.build(target);
  rmSync(onHost(build), { recursive: true, force: true });
  inEnv('cmake', ['-S', env.src, '-B', build, '-DCMAKE_BUILD_TYPE=Release', '-Wno-dev', `-DCMAKE_JS_INC=${env.headers.node}`,
    `-DNODE_ADDON_API_DIR=${env.headers.napi}`, ...(p.cmakeToolchain ? [`-DCMAKE_TOOLCHAIN_FILE=${env.src}/${p.cmakeToolchain}`] : []),
    // The MPI addon only where the build's MPI is the target's: the root has x64's Open MPI, not arm64's.
    ...(p.cmakeToolchain ? ['-DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON'] : [])]);
  inEnv('cmake', ['--build', build, '--parallel', '2']);

  const out = join(root, 'prebuilds', target);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // Every addon the build made (normkit.node, and any further addon target), plus the libgomp they link.
  const addons = readdirSync(onHost(build)).filter((f) => f.endsWith('.node'));
  if (!addons.includes('normkit.node')) fail(`${target}: the build made no normkit.node`);
  const gomp = inEnv('readlink', ['-f', inEnv(p.compiler, ['-print-file-name=libgomp.so.1']).trim()]).trim();
  for (const f of addons) copyFileSync(join(onHost(build), f), join(out, f));
  copyFileSync(onHost(gomp), join(out, 'libgomp.so.1'));
  const shipped = [...addons, 'libgomp.so.1'];
  // The host's binutils strip (g++-aarch64-linux-gnu brings aarch64-linux-gnu-strip); it leaves the floor as is.
  for (const f of shipped) run(p.compiler.replace(/g\+\+$/, 'strip'), ['--strip-unneeded', join(out, f)]);

  // Each addon must be for this machine type and load libgomp from beside itself; all must stay within the floor.
  for (const f of shipped) {
    const file = join(out, f);
    const header = run('readelf', ['-h', file]);
    if (!header.includes(p.readelfMachine)) fail(`${target}/${f} is not an ${p.readelfMachine} ELF file`);
    if (f.endsWith('.node')) {
      // An addon that links libgomp must find the copy beside it; normkit.node must link it (OpenMP kernels).
      const dyn = run('readelf', ['-d', file]);
      const gompNeeded = /\(NEEDED\).*\[libgomp\.so\.1\]/.test(dyn);
      if (f === 'normkit.node' && !gompNeeded) fail(`${target}/${f} does not link libgomp.so.1 (built without OpenMP?)`);
      // Only mpiWorld() may need Open MPI: the main addon must load on machines without it.
      if (f === 'normkit.node' && /\(NEEDED\).*\[libmpi/.test(dyn)) fail(`${target}/${f} links libmpi: MPI belongs in normkit_mpi.node only`);
      if (gompNeeded && !/\(RUNPATH\).*\$ORIGIN/.test(dyn)) fail(`${target}/${f}: no $ORIGIN runpath to find libgomp.so.1:\n${dyn}`);
    }
  }
  const need = needs(shipped.map((f) => join(out, f)));
  const over = overFloor(need, p.floor);
  const needText = Object.entries(need).map(([k, v]) => `${k}_${v}`).join(', ');
  if (over.length) {
    const msg = `${target} needs ${over.join(', ')}, above the documented floor ${JSON.stringify(p.floor)}`;
    if (dev) console.error(`prebuild: (dev build) ${msg}`);
    else {  // nothing above the floor may stay where pack:release would take it
      console.error(`prebuild: FAILED: ${msg}`);
      rmSync(out, { recursive: true, force: true });
      failed = true;
      continue;
    }
  }
  writeFileSync(join(out, 'abi.json'), JSON.stringify({ target, build: toolchainNote, sources: hash, node_api: 9,
    addons, needs: need, floor: p.floor }, null, 2) + '\n');
  console.log(`prebuilds/${target} (${dev ? 'dev' : 'release'}): ${addons.join(', ')} + libgomp.so.1; needs ${needText}`);
}
if (dev) rmSync(join(root, 'build-prebuild'), { recursive: true, force: true });
if (failed) process.exit(1);
