// Builds the prebuilt binary shipped in the npm package: prebuilds/<platform>-<arch>/normkit.node, stripped, with
// the libgomp.so.1 it links beside it (found through its $ORIGIN runpath; shipping it is allowed by the GCC Runtime
// Library Exception), then checks the glibc / GLIBCXX symbol-version floor a user's system must meet.
// Builds into build-prebuild/ so a running test suite's build/ is never touched.   Usage: npm run prebuild
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: root, encoding: 'utf8', ...opts });
const target = `${process.platform}-${process.arch}`;
if (target !== 'linux-x64') {
  console.error(`prebuild: only linux-x64 (glibc) is set up; this is ${target}. See README "Other platforms".`);
  process.exit(1);
}

const out = join(root, 'prebuilds', target);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
run(process.execPath, [join(root, 'node_modules/cmake-js/bin/cmake-js'), 'rebuild', '--out', 'build-prebuild', '--log-level', 'warn'], { stdio: 'inherit' });
const addon = join(out, 'normkit.node');
copyFileSync(join(root, 'build-prebuild/Release/normkit.node'), addon);
run('strip', ['--strip-unneeded', addon]);
// normkit_mpi.node (mpiWorld): built only where MPI's headers are (libopenmpi-dev); it links libmpi.so.40, which
// users install themselves (openmpi-bin). Without it the package still works, but mpiWorld() says it is missing.
const shipped = ['normkit.node', 'libgomp.so.1'];
if (existsSync(join(root, 'build-prebuild/Release/normkit_mpi.node'))) {
  copyFileSync(join(root, 'build-prebuild/Release/normkit_mpi.node'), join(out, 'normkit_mpi.node'));
  run('strip', ['--strip-unneeded', join(out, 'normkit_mpi.node')]);
  shipped.push('normkit_mpi.node');
} else {
  console.warn('prebuild: WARNING: normkit_mpi.node was not built (install libopenmpi-dev): this package has no mpiWorld()');
}

// The libgomp the addon was linked against, copied beside it.
const gomp = realpathSync(run('g++', ['-print-file-name=libgomp.so.1']).trim());
copyFileSync(gomp, join(out, 'libgomp.so.1'));
run('strip', ['--strip-unneeded', join(out, 'libgomp.so.1')]);

// Symbol-version floor: the newest GLIBC_x.y / GLIBCXX_x.y.z any shipped file needs.
const floor = {};
for (const file of shipped) {
  const dump = run('objdump', ['-T', join(out, file)]);
  for (const [, lib, version] of dump.matchAll(/\b(GLIBC|GLIBCXX|CXXABI|GCC)_([0-9.]+)\b/g)) {
    const cmp = (a, b) => { const x = a.split('.').map(Number), y = b.split('.').map(Number);
      for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
      return 0; };
    if (!floor[lib] || cmp(version, floor[lib]) > 0) floor[lib] = version;
  }
}
const ldd = run('ldd', [addon]);
if (!/libgomp\.so\.1 => .*prebuilds\/linux-x64\/libgomp\.so\.1/.test(ldd)) {
  console.error(`prebuild: libgomp does not resolve beside the addon:\n${ldd}`);
  process.exit(1);
}
if (/libmpi|libopen-(rte|pal)/.test(ldd)) {
  console.error(`prebuild: normkit.node must not link MPI (only normkit_mpi.node may):\n${ldd}`);
  process.exit(1);
}
writeFileSync(join(out, 'abi.json'), JSON.stringify({ target, node_api: 9, isa: 'x86-64 baseline + runtime AVX2/AVX-512 dispatch', floor }, null, 2) + '\n');
rmSync(join(root, 'build-prebuild'), { recursive: true, force: true });
console.log(`prebuilds/${target}: ${shipped.join(' + ')}; needs ${Object.entries(floor).map(([k, v]) => `${k}_${v}`).join(', ')}`);
