// What users get: the release tarball (scripts/pack.mjs, a staged copy with no scripts and no binding.gyp),
// installed into empty projects whose PATH holds only node, npm and sh (no compiler, cmake, make or python) with
// the network off, three ways: default, with normkit's install scripts approved (npm 11's allowScripts), and with
// --ignore-scripts. Each must load. Then: CommonJS, ESM, TypeScript users, publint.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync,
  writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { currentPrebuilds, packInto } from './helpers/packed.js';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'normkit-pack-'));
const app = join(work, 'app');
const bin = join(work, 'bin');
let tarball = '';

const BUILD_TOOLS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'cmake', 'make', 'python3', 'python'];

/** The build tools an executable search of this PATH finds (what a spawned `g++` or node-gyp would find). */
function buildToolsOn(path: string): string[] {
  return BUILD_TOOLS.filter((tool) => path.split(delimiter).some((dir) => {
    try { accessSync(join(dir, tool), constants.X_OK); return true; } catch { return false; }
  }));
}

const bareEnv = () => ({ PATH: bin, HOME: work, npm_config_cache: join(work, 'npm-cache'), npm_config_update_notifier: 'false' });

/** Runs with nothing but node, npm and sh on PATH; returns stdout, or with `all` stdout and stderr together. */
function bare(cmd: string, args: string[], cwd = app, all = false): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: bareEnv() });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return all ? r.stdout + r.stderr : r.stdout;
}

function newProject(dir: string): void {
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
}

const USE = `
  const x = tensor(new Float32Array(2 * 3 * 4 * 4).map((_, i) => Math.sin(i)), [2, 3, 4, 4]);
  const bn = new BatchNorm2d(3);
  const y = bn.forward(x);
  const dx = bn.backward(tensor(new Float32Array(96).fill(1), [2, 3, 4, 4]));
  const sd = loadSafetensors(saveSafetensors(bn.stateDict()));
  const model = new Sequential(new BatchNorm2d(3), bn);
  model.loadStateDict(model.stateDict());
  console.log(JSON.stringify({ y: y.data.length, dx: dx.data.length, nbt: Number(sd.num_batches_tracked.data[0]), info: buildInfo(),
    keys: Object.keys(model.stateDict()).length }));
`;
const USE_CJS = `const { BatchNorm2d, Sequential, tensor, saveSafetensors, loadSafetensors, buildInfo } = require('normkit');\n${USE}`;

/** Runs USE through require in a project: the last stdout line is its JSON. */
function useIn(dir: string): { y: number; dx: number; nbt: number; keys: number; info: { version: string; simd: string } } {
  writeFileSync(join(dir, 'use.cjs'), USE_CJS);
  return JSON.parse(bare('node', ['use.cjs'], dir)) as ReturnType<typeof useIn>;
}

beforeAll(() => {
  tarball = packInto(work);
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(execFileSync('sh', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).trim(), join(bin, 'npm'));
  // sh as every user has it: npm runs scripts through it, so a script that slipped in would really run (and fail
  // for want of a compiler) instead of failing early on a missing shell.
  symlinkSync('/bin/sh', join(bin, 'sh'));
  newProject(app);
  bare('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball]);
}, 600_000);  // a stale prebuild is rebuilt first (dev: minutes on 2 cores)

describe('installing cannot run a build', () => {
  it('the PATH used for installing holds no compiler, cmake, make or python (and the probe finds them on the full PATH)', () => {
    expect(buildToolsOn(bin)).toEqual([]);
    // The same probe on this machine's own PATH finds g++ (this machine builds normkit, so it has one).
    expect(buildToolsOn(process.env.PATH ?? '')).toContain('g++');
  });

  it('the published manifest has no scripts and the tarball no binding.gyp (npm would invent node-gyp rebuild)', () => {
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(manifest.scripts).toBeUndefined();
    expect(manifest.devDependencies).toBeUndefined();
    expect(manifest.private).toBeUndefined();
    expect(manifest.gypfile).toBe(false);
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    expect(files.filter((f) => /\.gypi?$/.test(f))).toEqual([]);
  });

  it('the repository root cannot be packed or published as is', () => {
    const pack = spawnSync('npm', ['pack', '--dry-run'], { cwd: root, encoding: 'utf8' });
    expect(pack.status).not.toBe(0);
    expect(pack.stderr).toMatch(/npm run pack:release/);
    // Even skipping prepack, `private` stops it (npm checks it after auth, so give a token for a registry on a
    // local port nothing listens on: should the check ever pass, nothing can be sent anywhere).
    const registry = 'http://127.0.0.1:9/';
    const publish = spawnSync('npm', ['publish', '--ignore-scripts', '--offline', '--fetch-retries=0', '--registry', registry, '--//127.0.0.1:9/:_authToken=unused'],
      { cwd: root, encoding: 'utf8' });
    expect(publish.status).not.toBe(0);
    expect(publish.stderr).toMatch(/EPRIVATE/);
  });

  it('a default install warns of no install script and loads', () => {
    const dir = join(work, 'default');
    newProject(dir);
    const out = bare('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], dir, true);
    expect(out).not.toMatch(/install-scripts|gyp/);
    expect(bare('npm', ['install-scripts', 'ls'], dir, true)).toMatch(/No packages with unreviewed install scripts/);
    expect(useIn(dir)).toMatchObject({ y: 96, dx: 96, nbt: 1 });
  });

  it('with its scripts approved (allowScripts), a reinstall from the lockfile runs nothing and loads', () => {
    const dir = join(work, 'approved');
    newProject(dir);
    bare('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], dir);
    bare('npm', ['install-scripts', 'approve', 'normkit'], dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> };
    expect(Object.values(pkg.allowScripts ?? {})).toEqual([true]);
    // The lockfile path is where npm used to invent `node-gyp rebuild` (its entry does not record gypfile: false).
    rmSync(join(dir, 'node_modules'), { recursive: true });
    const ci = bare('npm', ['ci', '--no-audit', '--no-fund', '--offline', '--foreground-scripts'], dir, true);
    expect(ci).not.toMatch(/gyp|cmake|> normkit@/);
    rmSync(join(dir, 'node_modules'), { recursive: true });
    rmSync(join(dir, 'package-lock.json'));
    bare('npm', ['install', '--no-audit', '--no-fund', '--offline', '--foreground-scripts'], dir);
    expect(useIn(dir)).toMatchObject({ y: 96, dx: 96, nbt: 1 });
  });

  it('with --ignore-scripts, it loads', () => {
    const dir = join(work, 'ignore-scripts');
    newProject(dir);
    bare('npm', ['install', '--no-audit', '--no-fund', '--offline', '--ignore-scripts', tarball], dir);
    expect(useIn(dir)).toMatchObject({ y: 96, dx: 96, nbt: 1 });
  });
});

describe('the packed tarball', () => {
  it('holds each prebuilt binary and its libgomp, and no tests, fixtures or build trees, in at most 1.5 MB', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const target of currentPrebuilds()) {
      expect(files).toContain(`package/prebuilds/${target}/normkit.node`);
      expect(files).toContain(`package/prebuilds/${target}/libgomp.so.1`);
    }
    expect(files).toContain('package/dist/cjs/index.js');
    expect(files).toContain('package/dist/esm/index.mjs');
    expect(files).toContain('package/docs/API.md');                 // the contract the README links to
    expect(files).not.toContain('package/docs/fashion-mnist-bn.svg');
    // The MPI addon ships for x64 whenever the prebuild made it (MPI's headers present: the release root has them).
    if (existsSync(join(root, 'prebuilds/linux-x64/normkit_mpi.node'))) expect(files).toContain('package/prebuilds/linux-x64/normkit_mpi.node');
    expect(files.some((f) => /^package\/(test|build|bench|examples|node_modules)\//.test(f))).toBe(false);
    expect(statSync(tarball).size).toBeLessThan(1_500_000);
  });

  it('installed, it holds the prebuilt binary with its libgomp and no build tree', () => {
    expect(existsSync(join(app, 'node_modules/normkit/build'))).toBe(false);
    expect(readdirSync(join(app, 'node_modules/normkit/prebuilds/linux-x64'))).toContain('libgomp.so.1');
  });

  it('works through require (CommonJS)', () => {
    const r = useIn(app);
    expect(r).toMatchObject({ y: 96, dx: 96, nbt: 1, keys: 10 });
    expect(r.info.version).toBe('0.1.0');
    expect(['baseline', 'avx2', 'avx512']).toContain(r.info.simd);
  });

  it('works through import (ESM), sharing one module instance with require', () => {
    writeFileSync(join(app, 'use.mjs'), `import { BatchNorm2d, Sequential, tensor, saveSafetensors, loadSafetensors, buildInfo, setNumThreads } from 'normkit';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('normkit');
setNumThreads(1);
if (cjs.getNumThreads() !== 1 || cjs.BatchNorm2d !== BatchNorm2d) throw new Error('two module instances');
${USE}`);
    expect(JSON.parse(bare('node', ['use.mjs']))).toMatchObject({ y: 96, dx: 96, nbt: 1 });
  });

  it('NORMKIT_PREBUILDS_ONLY=1 loads the shipped binary from another working directory', () => {
    const out = execFileSync(process.execPath, ['-e', "console.log(require(process.argv[1]).buildInfo().simd)", join(app, 'node_modules/normkit')],
      { cwd: tmpdir(), encoding: 'utf8', env: { ...process.env, NORMKIT_PREBUILDS_ONLY: '1' } });
    expect(out.trim()).toMatch(/^(baseline|avx2|avx512)$/);
  });

  it('passes publint (exports, types, files) as installed, with warnings treated as errors', () => {
    const out = execFileSync(process.execPath, [join(root, 'node_modules/publint/src/cli.js'), 'run',
      join(app, 'node_modules/normkit'), '--pack', 'false', '--strict'], { encoding: 'utf8' });
    expect(out).toMatch(/All good!/);
  });

  for (const resolution of ['node16', 'bundler'] as const) {
    it(`its types resolve for TypeScript users (moduleResolution ${resolution})`, () => {
      const dir = join(app, `ts-${resolution}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'use.ts'), `import { BatchNorm2d, tensor, functional as F, type Tensor, type StateDict } from 'normkit';
const bn = new BatchNorm2d(3, { momentum: null, channelsLast: true });
const t: Tensor = bn.forward(tensor([1, 2, 3, 4, 5, 6], [2, 1, 1, 3]));
const sd: StateDict = bn.stateDict();
const r = F.batchNorm(t, { training: true });
export const n: number = r.saveMean.length + Object.keys(sd).length;
// @ts-expect-error momentum must be a number or null
new BatchNorm2d(3, { momentum: 'fast' });
`);
      writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: {
        module: resolution === 'node16' ? 'node16' : 'esnext', moduleResolution: resolution, strict: true, noEmit: true,
        target: 'es2022', types: [], skipLibCheck: false, typeRoots: [join(root, 'node_modules/@types')] }, include: ['use.ts'] }));
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
    });
  }
});
