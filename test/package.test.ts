// What users get: `npm pack`, install the tarball into an empty project with a PATH holding only node and npm
// (no compiler, cmake or python), then load it through CommonJS and ESM and type-check a TypeScript user.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'normkit-pack-'));
const app = join(work, 'app');
const bin = join(work, 'bin');
let tarball = '';

/** Runs with nothing but node and npm on PATH. */
function bare(cmd: string, args: string[], cwd = app): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', env: { PATH: bin, HOME: work, npm_config_cache: join(work, 'npm-cache') } });
}

const USE = `
  const x = tensor(new Float32Array(2 * 3 * 4 * 4).map((_, i) => Math.sin(i)), [2, 3, 4, 4]);
  const bn = new BatchNorm2d(3);
  const y = bn.forward(x);
  const dx = bn.backward(tensor(new Float32Array(96).fill(1), [2, 3, 4, 4]));
  const sd = loadSafetensors(saveSafetensors(bn.stateDict()));
  console.log(JSON.stringify({ y: y.data.length, dx: dx.data.length, nbt: Number(sd.num_batches_tracked.data[0]), info: buildInfo() }));
`;

beforeAll(() => {
  // A fresh prebuilt binary from the current sources (into build-prebuild/, not the build/ the other tests load).
  execFileSync('npm', ['run', 'prebuild'], { cwd: root, stdio: 'ignore' });
  // --ignore-scripts: dist/ is already built by `npm install`, and `prepare` would rebuild build/ under the
  // feet of the other test files.
  const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' });
  tarball = join(work, (JSON.parse(packed) as Array<{ filename: string }>)[0]!.filename);
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(execFileSync('sh', ['-c', 'readlink -f "$(command -v npm)"'], { encoding: 'utf8' }).trim(), join(bin, 'npm'));
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  bare('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball]);
}, 300_000);

describe('the packed tarball', () => {
  it('holds the prebuilt binary and its libgomp, and no tests, fixtures or build trees', () => {
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(files).toContain('package/prebuilds/linux-x64/normkit.node');
    expect(files).toContain('package/prebuilds/linux-x64/libgomp.so.1');
    // The MPI addon ships wherever it could be built (MPI's headers present, as in CI).
    if (existsSync(join(root, 'build/Release/normkit_mpi.node'))) expect(files).toContain('package/prebuilds/linux-x64/normkit_mpi.node');
    expect(files).toContain('package/dist/cjs/index.js');
    expect(files).toContain('package/dist/esm/index.mjs');
    expect(files.some((f) => /^package\/(test|build|bench|examples|node_modules)\//.test(f))).toBe(false);
    expect(statSync(tarball).size).toBeLessThan(1_000_000);
  });

  it('installed with no build tools and no install script, it loads the prebuilt binary', () => {
    expect(() => bare('sh', ['-c', 'command -v g++ || command -v cmake || command -v python3'])).toThrow();
    expect(existsSync(join(app, 'node_modules/normkit/build'))).toBe(false);
    expect(readdirSync(join(app, 'node_modules/normkit/prebuilds/linux-x64'))).toContain('libgomp.so.1');
  });

  it('works through require (CommonJS)', () => {
    writeFileSync(join(app, 'use.cjs'), `const { BatchNorm2d, tensor, saveSafetensors, loadSafetensors, buildInfo } = require('normkit');\n${USE}`);
    const r = JSON.parse(bare('node', ['use.cjs'])) as { y: number; dx: number; nbt: number; info: { version: string; simd: string } };
    expect(r).toMatchObject({ y: 96, dx: 96, nbt: 1 });
    expect(r.info.version).toBe('0.1.0');
    expect(['baseline', 'avx2', 'avx512']).toContain(r.info.simd);
  });

  it('works through import (ESM), sharing one module instance with require', () => {
    writeFileSync(join(app, 'use.mjs'), `import { BatchNorm2d, tensor, saveSafetensors, loadSafetensors, buildInfo, setNumThreads } from 'normkit';
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
