// Every SIMD path this CPU supports, each forced with NORMKIT_ISA in a child process (the choice is made once at
// load), runs every kernel — the fused training forward and backward, channel waves, the row walk, the memory-order
// walk of small batches, the weight-gradient column reduction, streaming stores and odd tails, the fused ReLU and
// residual — and each path's results are checked against the independent float64 reference. Which paths must be
// exercised comes from /proc/cpuinfo, not from the addon's own CPUID detection, so a detection bug cannot hide a path.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildInfo } from '../lib/index.js';
import { expectNear, rng } from './helpers/compare.js';
import { byChannel, byRow, bySampleGroup, refNorm, refNormBackward, type Grouping } from './helpers/reference.js';

const root = join(__dirname, '..');

// Outputs of 4M+ elements (over the 16 MB streaming threshold in float32), with odd sizes for the tails, and smaller ones
// for the cache-resident and memory-order walks.
interface Case {
  name: string; layer: string; args: number[]; options?: { activation?: 'relu'; eps?: number; channelsLast?: boolean }; shape: number[];
  dtype: 'float32' | 'float64'; gr: Grouping; rms?: boolean; eps: number; residual?: boolean;
}
const CASES: Case[] = [
  { name: 'BatchNorm2d NCHW, fused walk', layer: 'BatchNorm2d', args: [61], shape: [15, 61, 67, 69], dtype: 'float32', gr: byChannel([15, 61, 67, 69], false), eps: 1e-5 },
  { name: 'BatchNorm2d NCHW, channel waves', layer: 'BatchNorm2d', args: [3], shape: [2, 3, 1023, 1025], dtype: 'float32', gr: byChannel([2, 3, 1023, 1025], false), eps: 1e-5 },
  { name: 'BatchNorm1d 2-D, row walk', layer: 'BatchNorm1d', args: [263], shape: [16383, 263], dtype: 'float32', gr: byChannel([16383, 263], false), eps: 1e-5 },
  // Narrow rows stream with wrapped coefficients: with Node's placement of a fresh array (16 bytes into a line) every
  // vector crosses a row end (8 columns), or several (5).
  { name: 'BatchNorm1d 2-D, 8-column rows', layer: 'BatchNorm1d', args: [8], shape: [530001, 8], dtype: 'float32', gr: byChannel([530001, 8], false), eps: 1e-5 },
  { name: 'BatchNorm1d 2-D, 5-column rows', layer: 'BatchNorm1d', args: [5], shape: [900001, 5], dtype: 'float32', gr: byChannel([900001, 5], false), eps: 1e-5 },
  { name: 'BatchNorm2d NCHW float64 (10.7 MB: cache-resident), group-walk statistics, memory-order sums and passes', layer: 'BatchNorm2d', args: [33], shape: [9, 33, 67, 67], dtype: 'float64', gr: byChannel([9, 33, 67, 67], false), eps: 1e-5 },
  { name: 'LayerNorm, weight-gradient columns', layer: 'LayerNorm', args: [517], shape: [8191, 517], dtype: 'float32', gr: byRow(8191 * 517, 517), eps: 1e-5 },
  { name: 'RMSNorm', layer: 'RMSNorm', args: [517], options: { eps: 1e-6 }, shape: [8191, 517], dtype: 'float32', gr: byRow(8191 * 517, 517), rms: true, eps: 1e-6 },
  { name: 'GroupNorm(8)', layer: 'GroupNorm', args: [8, 64], shape: [4, 64, 127, 129], dtype: 'float32', gr: bySampleGroup([4, 64, 127, 129], 8), eps: 1e-5 },
  // The fused ReLU's loops (vector bodies and scalar tails), with and without a residual.
  { name: 'BatchNorm2d NCHW + ReLU + residual', layer: 'BatchNorm2d', args: [61], options: { activation: 'relu' }, residual: true, shape: [15, 61, 67, 69], dtype: 'float32', gr: byChannel([15, 61, 67, 69], false), eps: 1e-5 },
  { name: 'BatchNorm1d 2-D row walk + ReLU', layer: 'BatchNorm1d', args: [263], options: { activation: 'relu' }, shape: [16383, 263], dtype: 'float32', gr: byChannel([16383, 263], false), eps: 1e-5 },
  { name: 'BatchNorm2d float64 + ReLU + residual', layer: 'BatchNorm2d', args: [33], options: { activation: 'relu' }, residual: true, shape: [9, 33, 67, 67], dtype: 'float64', gr: byChannel([9, 33, 67, 67], false), eps: 1e-5 },
  // A cache-resident float32 NCHW batch (2.3 MB) on 2 threads: the backward's sums in memory order over blocks of 24, 24 and 23
  // channels, a tile boundary inside a run of 169, with and without the ReLU.
  { name: 'BatchNorm2d cache-resident NCHW, memory-order sums', layer: 'BatchNorm2d', args: [71], shape: [48, 71, 13, 13], dtype: 'float32', gr: byChannel([48, 71, 13, 13], false), eps: 1e-5 },
  { name: 'BatchNorm2d cache-resident NCHW + ReLU + residual', layer: 'BatchNorm2d', args: [71], options: { activation: 'relu' }, residual: true, shape: [48, 71, 13, 13], dtype: 'float32', gr: byChannel([48, 71, 13, 13], false), eps: 1e-5 },
  // Small strided batches walk each pass in memory order on one thread; runs of a chunk and a tail.
  { name: 'BatchNorm2d small NCHW, memory-order walk', layer: 'BatchNorm2d', args: [7], shape: [5, 7, 4, 13], dtype: 'float32', gr: byChannel([5, 7, 4, 13], false), eps: 1e-5 },
  { name: 'BatchNorm2d small NCHW, memory-order walk over blocks of channels', layer: 'BatchNorm2d', args: [150], shape: [2, 150, 10, 10], dtype: 'float32', gr: byChannel([2, 150, 10, 10], false), eps: 1e-5 },
  { name: 'GroupNorm channels-last, memory-order statistics per sample', layer: 'GroupNorm', args: [4, 64], options: { channelsLast: true }, shape: [3, 5, 6, 64], dtype: 'float32', gr: bySampleGroupLast([3, 5, 6, 64], 4), eps: 1e-5 },
  { name: 'BatchNorm2d small float64 + ReLU + residual, memory-order walk', layer: 'BatchNorm2d', args: [9], options: { activation: 'relu' }, residual: true, shape: [3, 9, 5, 7], dtype: 'float64', gr: byChannel([3, 9, 5, 7], false), eps: 1e-5 },
  { name: 'LayerNorm + ReLU + residual', layer: 'LayerNorm', args: [517], options: { activation: 'relu' }, residual: true, shape: [8191, 517], dtype: 'float32', gr: byRow(8191 * 517, 517), eps: 1e-5 },
];

/** GroupNorm's grouping of a channels-last (N, ..., C) input: group = sample × block of C/G channels, parameter = channel. */
function bySampleGroupLast(shape: readonly number[], G: number): Grouping {
  const C = shape.at(-1)!, per = shape.slice(1).reduce((a, b) => a * b, 1);
  return { groups: shape[0]! * G, groupOf: (i) => Math.floor(i / per) * G + Math.floor((i % C) / (C / G)), paramOf: (i) => i % C, params: C };
}

const weightOf = (k: number) => 0.5 + (k % 7) / 4, biasOf = (k: number) => ((k % 5) - 2) / 3;

/**
 * x, dy (and the residual) of a case. With the ReLU, dy is 0 where the reference pre-activation is within 1e-4 of 0,
 * where float rounding may fall on either side (exact ties are test/fullsize.test.ts's and the fixtures' job).
 */
function inputs(c: Case) {
  const n = c.shape.reduce((a, b) => a * b, 1), r = rng(11);
  const Ctor = c.dtype === 'float32' ? Float32Array : Float64Array;
  const x = new Ctor(n), dy = new Ctor(n), res = c.residual ? new Ctor(n) : null;
  for (let i = 0; i < n; i++) { x[i] = (r() - 0.5) * 4 + 2; dy[i] = r() - 0.5; if (res) res[i] = r() - 0.5; }
  if (c.options?.activation) {
    const { weight, bias } = params(c), pre = refNorm(x, c.gr, c.eps, { weight, bias }).y;
    for (let i = 0; i < n; i++) if (Math.abs(pre[i]! + (res ? res[i]! : 0)) < 1e-4) dy[i] = 0;
  }
  return { x, dy, res };
}

function params(c: Case) {
  return {
    weight: Float64Array.from({ length: c.gr.params }, (_, k) => weightOf(k)),
    bias: c.rms ? null : Float64Array.from({ length: c.gr.params }, (_, k) => biasOf(k)),
  };
}

// The child: the public API through the built dist/, one ISA, every case; outputs to raw files for the parent.
const CHILD = `
const nk = require(${JSON.stringify(join(root, 'dist/cjs/index.js'))});
const fs = require('fs'), path = require('path');
const [dir, inputsDir] = process.argv.slice(2);
const cases = JSON.parse(fs.readFileSync(path.join(inputsDir, 'cases.json'), 'utf8'));
nk.setNumThreads(2);
for (const [i, c] of cases.entries()) {
  const Ctor = c.dtype === 'float32' ? Float32Array : Float64Array;
  const read = (f) => new Ctor(new Uint8Array(fs.readFileSync(path.join(inputsDir, i + f))).buffer);
  const layer = new nk[c.layer](...c.args, { ...c.options, dtype: c.dtype });
  const w = layer.weight, b = layer.bias;
  if (w) w.data.forEach((_, k) => { w.data[k] = 0.5 + (k % 7) / 4; });
  if (b) b.data.forEach((_, k) => { b.data[k] = ((k % 5) - 2) / 3; });
  const residual = c.residual ? { data: read('.r'), shape: c.shape } : undefined;
  const y = layer.forward({ data: read('.x'), shape: c.shape }, { residual });
  const dx = layer.backward({ data: read('.dy'), shape: c.shape });
  const dr = layer.residualGrad && layer.residualGrad.data;
  for (const [name, a] of [['y', y.data], ['dx', dx.data], ['dweight', w && w.grad], ['dbias', b && b.grad], ['dr', dr]]) {
    if (a) fs.writeFileSync(path.join(dir, i + '.' + name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  }
}
process.stdout.write(JSON.stringify({ isa: nk.buildInfo().simd }));
`;

/**
 * The ISA paths this CPU can run, from the kernel's view of the CPU flags (x86-64-v3 and -v4 as GCC defines them).
 * LZCNT ('abm'), which x86-64-v3 also needs, is not asked for: some guest kernels (this project's VM, Linux 6.18 on
 * AMD Zen 4, 2026-12-02) leave 'abm' and 'sse4a' out of /proc/cpuinfo while CPUID reports them and lzcnt runs,
 * and every CPU with AVX2 has LZCNT (Intel from Haswell, which brought both; AMD since K10). The addon still checks
 * it in CPUID (native/cpu/x86.cpp).
 */
function pathsFromCpuinfo(): string[] {
  const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
  const has = (...f: string[]) => f.every((x) => flags.has(x));
  const paths = ['baseline'];
  if (has('avx2', 'fma', 'bmi1', 'bmi2', 'f16c', 'movbe', 'xsave')) paths.push('avx2');
  if (paths.includes('avx2') && has('avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl')) paths.push('avx512');
  return paths;
}

const x64Linux = process.platform === 'linux' && process.arch === 'x64';

describe.runIf(x64Linux)('SIMD dispatch', () => {
  const work = mkdtempSync(join(tmpdir(), 'normkit-isa-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));  // 1.6 GB of inputs and outputs per run
  const script = join(work, 'child.cjs');
  writeFileSync(script, CHILD);
  writeFileSync(join(work, 'cases.json'), JSON.stringify(CASES.map(({ gr: _gr, ...c }) => c)));
  const data = CASES.map((c, i) => {
    const { x, dy, res } = inputs(c);
    writeFileSync(join(work, `${i}.x`), new Uint8Array(x.buffer));
    writeFileSync(join(work, `${i}.dy`), new Uint8Array(dy.buffer));
    if (res) writeFileSync(join(work, `${i}.r`), new Uint8Array(res.buffer));
    return { x, dy, res };
  });
  const runWith = (isa: string): { isa: string; dir: string } => {
    const dir = mkdtempSync(join(work, `${isa}-`));
    const r = JSON.parse(execFileSync(process.execPath, [script, dir, work], {
      env: { ...process.env, NORMKIT_ISA: isa }, encoding: 'utf8' })) as { isa: string };
    return { isa: r.isa, dir };
  };
  const expectedPaths = pathsFromCpuinfo();

  it('supports exactly the paths /proc/cpuinfo allows, and picks the best by default', () => {
    expect(buildInfo().supportedSimd).toEqual(expectedPaths);
    const forced = process.env.NORMKIT_ISA;
    expect(buildInfo().simd).toBe(forced && expectedPaths.includes(forced) ? forced : expectedPaths.at(-1));
  });

  const outputs = new Map<string, string>();  // ISA -> the directory of its outputs
  for (const isa of expectedPaths) {
    it(`${isa}: every kernel at streaming size matches the float64 reference`, () => {
      const got = runWith(isa);
      expect(got.isa).toBe(isa);
      outputs.set(isa, got.dir);
      CASES.forEach((c, i) => {
        const { x, dy, res } = data[i]!;
        const Ctor = c.dtype === 'float32' ? Float32Array : Float64Array;
        const read = (name: string) => new Ctor(new Uint8Array(readFileSync(join(got.dir, `${i}.${name}`))).buffer);
        const { weight, bias } = params(c);
        const ref = refNorm(x, c.gr, c.eps, { rms: c.rms, weight, bias });
        // The ReLU: y = relu(pre + r), and the layer's gradients of dz = (pre + r > 0) ? dy : 0.
        const v = c.options?.activation ? ref.y.map((p, k) => p + (res ? res[k]! : 0)) : null;
        const dz = v ? Float64Array.from(dy, (d, k) => (v[k]! > 0 ? d : 0)) : dy;
        const rb = refNormBackward(x, dz, c.gr, c.eps, { rms: c.rms, weight, stats: ref });
        const tol = c.dtype === 'float32' ? 2e-6 : 1e-12;
        expectNear(read('y'), v ? v.map((a) => Math.max(a, 0)) : ref.y, tol, `${isa} ${c.name} y`);
        if (res) expectNear(read('dr'), dz, tol, `${isa} ${c.name} residual gradient`);
        expectNear(read('dx'), rb.dx, tol, `${isa} ${c.name} dx`);
        expectNear(read('dweight'), rb.dweight, tol, `${isa} ${c.name} dweight`);
        if (bias) expectNear(read('dbias'), rb.dbias, tol, `${isa} ${c.name} dbias`);
      });
    });
  }

  // The kernels are built with -ffp-contract=off and fuse a multiply-add only where the source says so (core/moments.h
  // add_product): the paths that have FMA (AVX2, AVX-512) must then agree to the last bit, whatever their vector width. (The
  // baseline path rounds those products twice; linux-arm64's NEON is compared with AVX2 in test/platforms.test.ts.)
  const fmaPaths = expectedPaths.filter((p) => p !== 'baseline');
  it.skipIf(fmaPaths.length < 2)(`${fmaPaths.length < 2 ? '(skipped: this CPU has one path with FMA) ' : ''}the paths with FMA give the same bits: ${fmaPaths.join(', ')}`, () => {
    const [first, ...rest] = fmaPaths.map((isa) => outputs.get(isa)!);
    let compared = 0;
    CASES.forEach((c, i) => {
      for (const name of ['y', 'dx', 'dweight', 'dbias', 'dr']) {
        const file = (dir: string) => join(dir, `${i}.${name}`);
        if (!existsSync(file(first!))) continue;
        for (const dir of rest) expect(readFileSync(file(dir)).equals(readFileSync(file(first!))), `${c.name} ${name}`).toBe(true);
        compared++;
      }
    });
    expect(compared).toBeGreaterThanOrEqual(CASES.length * 3);
  });

  it('an unsupported NORMKIT_ISA value falls back to a path that runs', () => {
    expect(expectedPaths).toContain(runWith('sse9000').isa);
  });
});
