// Every fast path, at the size the bench times it, against the independent float64 reference
// (helpers/reference.ts). Small shapes cannot reach these paths: the fused per-channel walk with streaming stores
// (an output over 16 MB), channel waves (a channel within L3 split over the threads), the two-phase walk over
// channels larger than L3, the row walk with many row blocks,
// the weight-gradient column reduction over 65536 rows — and each of them with the fused ReLU (and residual) inside
// the normalize and backward passes. Agreement between thread counts or ISAs proves only determinism; this file
// proves the numbers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchNorm1d, BatchNorm2d, functional as F, GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm, getNumThreads, setNumThreads, type Tensor,
} from '../lib/index.js';
import { expectBitIdentical, expectNear, rng } from './helpers/compare.js';
import { byChannel, byRow, bySampleChannel, bySampleGroup, refNorm, refNormBackward, type Grouping } from './helpers/reference.js';
import type { ForwardOptions } from '../lib/index.js';

const initial = getNumThreads();
beforeAll(() => setNumThreads(2));
afterAll(() => setNumThreads(initial));

const TOL = { float32: 2e-6, float64: 1e-12 };
type DT = keyof typeof TOL;

/** Uniform on [shift - 2, shift + 2): an offset far from zero makes a float accumulator visibly wrong. */
function input(shape: number[], seed: number, dtype: DT, shift = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1), r = rng(seed);
  const data = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = (r() - 0.5) * 4 + shift;
  return { data, shape };
}

function affineInit(p: { data: Float32Array | Float64Array } | null, f: (i: number) => number): void {
  if (p) for (let i = 0; i < p.data.length; i++) p.data[i] = f(i);
}

interface Layer {
  forward(x: Tensor, options?: ForwardOptions): Tensor; backward(dy: Tensor, options?: { out?: Float32Array | Float64Array }): Tensor;
  eval(): unknown;
  readonly residualGrad: Tensor | null;
  weight: { data: Float32Array | Float64Array; grad: Float32Array | Float64Array | null } | null;
  bias: { data: Float32Array | Float64Array; grad: Float32Array | Float64Array | null } | null;
}

/** Forward and backward of a training step against the reference; returns the reference forward for more checks. */
function checkTrainingStep(layer: Layer, x: Tensor, gr: Grouping, eps: number, dtype: DT, rms = false) {
  affineInit(layer.weight, (i) => 0.5 + (i % 7) / 4);
  affineInit(layer.bias, (i) => ((i % 5) - 2) / 3);
  const w = layer.weight?.data ?? null, b = layer.bias?.data ?? null;
  const y = layer.forward(x);
  const ref = refNorm(x.data, gr, eps, { rms, weight: w, bias: b });
  expectNear(y.data, ref.y, TOL[dtype], 'y');
  const dy = input(x.shape as number[], 7, dtype);
  const dx = layer.backward(dy);
  const rb = refNormBackward(x.data, dy.data, gr, eps, { rms, weight: w, stats: ref });
  expectNear(dx.data, rb.dx, TOL[dtype], 'dx');
  if (layer.weight) expectNear(layer.weight.grad!, rb.dweight, TOL[dtype], 'dweight');
  if (layer.bias) expectNear(layer.bias.grad!, rb.dbias, TOL[dtype], 'dbias');
  return ref;
}

// Bench shapes for batch norm (bench/shapes.ts) and the path each one takes on 2 threads.
const BATCH_NORM: Array<{ shape: number[]; channelsLast: boolean; path: string; dtype: DT }> = [
  { shape: [64, 128, 56, 56], channelsLast: false, path: 'fused per-channel walk, streaming stores', dtype: 'float32' },
  { shape: [256, 3, 112, 112], channelsLast: false, path: 'channel waves: each channel split over the threads, streaming', dtype: 'float32' },
  { shape: [1, 2, 2048, 4096], channelsLast: false, path: 'two-phase walk over channels larger than L3, streaming', dtype: 'float32' },
  { shape: [64, 56, 56, 128], channelsLast: true, path: 'row walk, many row blocks, streaming', dtype: 'float32' },
  { shape: [65536, 512], channelsLast: false, path: '2-D row walk, streaming', dtype: 'float32' },
  { shape: [8192, 1024], channelsLast: false, path: '2-D row walk that fits in L3', dtype: 'float32' },
  { shape: [32, 128, 56, 56], channelsLast: false, path: 'fused walk in float64, streaming', dtype: 'float64' },
  { shape: [8, 16, 8, 8], channelsLast: false, path: 'the tiny row: one thread, each pass in memory order', dtype: 'float32' },
  { shape: [8, 16, 8, 8], channelsLast: false, path: 'the tiny row in float64: one thread, memory order', dtype: 'float64' },
  // Under two grains of elements (2 * native/kernels.h kGrainElems = 131072) a kernel runs on one thread, and up to 512 KB
  // the statistics walk memory order too (core/norm.h kMemoryOrderBytes). float32 reaches two grains where it reaches
  // 512 KB, so the byte bound itself is a float64 one: at it, and one batch past it (group-walk statistics).
  { shape: [31, 64, 8, 8], channelsLast: false, path: 'one thread (under two grains), memory order', dtype: 'float32' },
  { shape: [32, 64, 8, 8], channelsLast: false, path: 'two grains: two threads, the fused walk (under 2 MB)', dtype: 'float32' },
  { shape: [16, 64, 8, 8], channelsLast: false, path: 'one thread, memory order at its 512 KB bound in float64', dtype: 'float64' },
  { shape: [17, 64, 8, 8], channelsLast: false, path: 'one thread, one batch past the 512 KB bound: group-walk statistics', dtype: 'float64' },
  // Cache-resident and strided (NCHW from 2 MB to the 16 MB streaming bound) on 2 threads: the statistics walk group by group,
  // normalize, eval and the dx passes walk memory order, each thread a contiguous share of the runs (core/norm.h
  // elementwise_in_memory_order), and the backward's sums walk memory order in blocks of groups, tile by tile
  // (strided_in_memory_order): tiles cut inside runs, runs longer than a tile, blocks cut unevenly.
  { shape: [128, 32, 16, 16], channelsLast: false, path: 'cache-resident: 8 tiles a channel, one block of groups per thread', dtype: 'float32' },
  { shape: [32, 512, 7, 7], channelsLast: false, path: 'cache-resident, runs of 49: 16 blocks of 32 groups', dtype: 'float32' },
  { shape: [16, 64, 28, 28], channelsLast: false, path: 'cache-resident float64: tile boundaries inside runs', dtype: 'float64' },
  { shape: [32, 256, 14, 14], channelsLast: false, path: 'cache-resident, runs of 196: a tile boundary inside a run', dtype: 'float32' },
  { shape: [24, 3, 96, 96], channelsLast: false, path: 'cache-resident, runs of 9216 over up to three tiles (channels under 2 MB: no waves)', dtype: 'float32' },
  { shape: [192, 3, 32, 32], channelsLast: false, path: 'cache-resident, 3 channels on 2 threads: blocks of 2 and 1', dtype: 'float32' },
  { shape: [96, 65, 7, 7], channelsLast: false, path: 'cache-resident float64, 65 channels: blocks of 22, 22 and 21', dtype: 'float64' },
  // 7 channels do not spread evenly over 2 threads: the two-phase walk, whose normalize and dx passes go in memory
  // order in training too, the 21 runs cut unevenly between the threads.
  { shape: [3, 7, 97, 101], channelsLast: false, path: 'two-phase (7 channels on 2 threads): training passes in memory order, runs cut unevenly', dtype: 'float32' },
];

describe('batch norm at bench size against the float64 reference', () => {
  for (const { shape, channelsLast, path, dtype } of BATCH_NORM) {
    it(`${dtype} [${shape.join(',')}]${channelsLast ? ' channels-last' : ''}: ${path}`, () => {
      const C = shape[channelsLast || shape.length === 2 ? shape.length - 1 : 1]!;
      const bn = shape.length === 2 ? new BatchNorm1d(C, { dtype }) : new BatchNorm2d(C, { dtype, channelsLast });
      const x = input(shape, 1, dtype, 3);
      const gr = byChannel(shape, channelsLast);
      const ref = checkTrainingStep(bn, x, gr, 1e-5, dtype);
      // Running statistics after one step from (0, 1): momentum 0.1, unbiased variance.
      expectNear(bn.runningMean!, ref.mean.map((m) => 0.1 * m), TOL[dtype], 'runningMean');
      expectNear(bn.runningVar!, ref.m2.map((m, c) => 0.9 + 0.1 * (m / (ref.count[c]! - 1))), TOL[dtype], 'runningVar');
      // Eval: the streaming elementwise pass with the running statistics.
      bn.eval();
      const y = bn.forward(x);
      const rm = bn.runningMean!, rv = bn.runningVar!, w = bn.weight!.data, b = bn.bias!.data;
      const ye = new Float64Array(x.data.length);
      for (let i = 0; i < ye.length; i++) {
        const c = gr.groupOf(i);
        ye[i] = (x.data[i]! - rm[c]!) / Math.sqrt(rv[c]! + 1e-5) * w[c]! + b[c]!;
      }
      expectNear(y.data, ye, TOL[dtype], 'eval y');
    });
  }
});

// In place (the functional API allows out === x), each element must be normalized exactly once: threads whose shares
// of the memory-order walk overlapped, or missed a run, would show here (out of place, an overlap writes the same
// values twice and goes unseen). A batch of 2 on 2 and 3 threads: shares cut inside rows, unevenly.
describe('cache-resident eval in place over several threads, against the float64 reference', () => {
  for (const threads of [2, 3]) {
    it(`float32 [2,64,56,56] on ${threads} threads`, () => {
      setNumThreads(threads);
      try {
        const shape = [2, 64, 56, 56], C = 64, x = input(shape, 31, 'float32', 1), gr = byChannel(shape, false);
        const rm = Float32Array.from({ length: C }, (_, c) => 0.5 + c / 64), rv = Float32Array.from({ length: C }, (_, c) => 0.5 + (c % 5) / 4);
        const w = Float32Array.from({ length: C }, (_, c) => 0.5 + (c % 7) / 4), b = Float32Array.from({ length: C }, (_, c) => ((c % 5) - 2) / 3);
        const ye = new Float64Array(x.data.length);
        for (let i = 0; i < ye.length; i++) {
          const c = gr.paramOf(i);
          ye[i] = (x.data[i]! - rm[c]!) / Math.sqrt(rv[c]! + 1e-5) * w[c]! + b[c]!;
        }
        const r = F.batchNorm(x, { training: false, runningMean: rm, runningVar: rv, weight: w, bias: b, out: x.data });
        expect(r.y.data).toBe(x.data);
        expectNear(x.data, ye, TOL.float32, 'eval y in place');
      } finally {
        setNumThreads(2);
      }
    });
  }
});

// The streamed row walk stores a block of rows as one range: one unaligned head and tail per block, and a vector
// across each row end, from coefficients wrapped around it (core/simd.h affine_rows_stream). Where the output starts
// within a 64-byte line decides whether and where vectors straddle row ends; each start, for rows of a multiple and
// of no multiple of the vector width, against the float64 reference (training y and dx, eval y).
describe('the streamed row walk with out at each 16-byte step of a cache line', () => {
  const cases: Array<{ shape: number[]; dtype: DT }> = [
    { shape: [4200, 1024], dtype: 'float32' }, { shape: [43000, 100], dtype: 'float32' }, { shape: [2200, 1000], dtype: 'float64' },
    { shape: [350000, 12], dtype: 'float32' },  // rows narrower than a line: the head spans rows, every row end straddles
    // Narrow rows stream with coefficients wrapped around the row (core/simd.h affine_rows_stream_narrow): a vector's
    // width of rows (8 floats: every vector crosses a row end 16 bytes off a line), rows narrower than a vector.
    { shape: [530000, 8], dtype: 'float32' }, { shape: [900000, 5], dtype: 'float32' }, { shape: [300000, 7], dtype: 'float64' },
  ];
  for (const { shape, dtype } of cases) {
    it(`${dtype} [${shape.join(',')}]: y, dx and eval y at byte offsets 0, 16, 32, 48`, () => {
      const C = shape[1]!, x = input(shape, 11, dtype, 2), dy = input(shape, 12, dtype), gr = byChannel(shape, false);
      const ref = refNorm(x.data, gr, 1e-5, {}), rb = refNormBackward(x.data, dy.data, gr, 1e-5, { stats: ref });
      const ye = new Float64Array(x.data.length);  // eval after one step from (0, 1): momentum 0.1, unbiased variance
      for (let i = 0; i < ye.length; i++) {
        const c = gr.groupOf(i), rv = 0.9 + 0.1 * (ref.m2[c]! / (ref.count[c]! - 1));
        ye[i] = (x.data[i]! - 0.1 * ref.mean[c]!) / Math.sqrt(rv + 1e-5);
      }
      const n = x.data.length, step = 16 / x.data.BYTES_PER_ELEMENT;
      const big = dtype === 'float32' ? new Float32Array(n + 64) : new Float64Array(n + 64);
      let first: Array<Float32Array | Float64Array> = [];  // the outputs at +0: every other start gives their bits
      for (let k = 0; k < 4; k++) {
        const out = big.subarray(k * step, k * step + n), at = `at +${16 * k} B`, got: Array<Float32Array | Float64Array> = [];
        const bn = new BatchNorm1d(C, { dtype });
        bn.forward(x, { out });
        expectNear(out, ref.y, TOL[dtype], `y ${at}`);
        got.push(out.slice());
        bn.backward(dy, { out });
        expectNear(out, rb.dx, TOL[dtype], `dx ${at}`);
        got.push(out.slice());
        bn.eval();
        bn.forward(x, { out });
        expectNear(out, ye, TOL[dtype], `eval y ${at}`);
        got.push(out.slice());
        if (k === 0) first = got;
        else got.forEach((a, i) => expectBitIdentical(a, first[i]!, `${['y', 'dx', 'eval y'][i]} ${at} vs +0`));
      }
    });
  }

  // The group walk's streamed runs (LayerNorm rows with per-position parameters, NCHW channel runs, the fused
  // ReLU's store) stream whole 64-byte lines only (core/simd.h stream_span), their partial lines stored normally.
  const groupWalk: Array<{ name: string; shape: number[]; make: () => Layer; gr: Grouping }> = [
    { name: 'LayerNorm [8500,500]', shape: [8500, 500], make: () => new LayerNorm(500), gr: byRow(8500 * 500, 500) },
    { name: 'BatchNorm2d [17,256,32,32]', shape: [17, 256, 32, 32], make: () => new BatchNorm2d(256), gr: byChannel([17, 256, 32, 32], false) },
  ];
  for (const { name, shape, make, gr } of groupWalk) {
    it(`${name}: y and dx at byte offsets 0, 16, 32, 48`, () => {
      const x = input(shape, 13, 'float32', 1), dy = input(shape, 14, 'float32'), n = x.data.length;
      const probe = make();
      affineInit(probe.weight, (i) => 0.5 + (i % 7) / 4);
      affineInit(probe.bias, (i) => ((i % 5) - 2) / 3);
      const w = probe.weight!.data, b = probe.bias!.data;
      const ref = refNorm(x.data, gr, 1e-5, { weight: w, bias: b }), rb = refNormBackward(x.data, dy.data, gr, 1e-5, { weight: w, stats: ref });
      const big = new Float32Array(n + 64);
      for (let k = 0; k < 4; k++) {
        const out = big.subarray(4 * k, 4 * k + n), layer = make();
        layer.weight!.data.set(w), layer.bias!.data.set(b);
        layer.forward(x, { out });
        expectNear(out, ref.y, TOL.float32, `y at +${16 * k} B`);
        layer.backward(dy, { out });
        expectNear(out, rb.dx, TOL.float32, `dx at +${16 * k} B`);
      }
    });
  }
});

describe('the rest of the family at bench size against the float64 reference', () => {
  it('LayerNorm [65536,512]: row statistics, weight/bias column reduction', () => {
    const x = input([65536, 512], 2, 'float32', -4);
    checkTrainingStep(new LayerNorm(512), x, byRow(x.data.length, 512), 1e-5, 'float32');
  });

  it('RMSNorm [65536,512]: row statistics without a mean, weight column reduction', () => {
    const x = input([65536, 512], 3, 'float32', 1);
    checkTrainingStep(new RMSNorm(512, { eps: 1e-6 }), x, byRow(x.data.length, 512), 1e-6, 'float32', true);
  });

  it('LayerNorm rows over 2 MB (the two-phase walk), backward with out === dy: weight/bias gradients from dy before dx overwrites it', () => {
    const shape = [2, 600000], D = 600000, x = input(shape, 6, 'float32', 1), dy = input(shape, 7, 'float32');
    const gr = byRow(x.data.length, D), ref = refNorm(x.data, gr, 1e-5, {}), rb = refNormBackward(x.data, dy.data, gr, 1e-5, { stats: ref });
    const grads = (inPlace: boolean) => {
      const ln = new LayerNorm(D), d = { data: dy.data.slice(), shape };
      ln.forward(x);
      const dx = ln.backward(d, inPlace ? { out: d.data } : undefined);
      return { dx: dx.data, dweight: ln.weight!.grad!, dbias: ln.bias!.grad! };
    };
    const apart = grads(false), inPlace = grads(true);
    expectNear(apart.dweight, rb.dweight, 1e-5, 'dweight');
    expectNear(apart.dbias, rb.dbias, 1e-5, 'dbias');
    expectNear(apart.dx, rb.dx, TOL.float32, 'dx');
    for (const k of ['dx', 'dweight', 'dbias'] as const) expectBitIdentical(inPlace[k], apart[k], `${k} with out === dy`);
  });

  it('GroupNorm(32) [16,256,56,56]: groups of 8 channels, per-channel affine', () => {
    const x = input([16, 256, 56, 56], 4, 'float32', 2);
    checkTrainingStep(new GroupNorm(32, 256), x, bySampleGroup(x.shape, 32), 1e-5, 'float32');
  });

  it('InstanceNorm2d [16,64,56,56] with affine', () => {
    const x = input([16, 64, 56, 56], 5, 'float32', -1);
    checkTrainingStep(new InstanceNorm2d(64, { affine: true }), x, bySampleChannel(x.shape), 1e-5, 'float32');
  });

  // Small groups go through the fused forward a block at a time (core/fused.h phase_block: up to 8 groups, 16 KB):
  // every group's statistics, then every group's normalize. Blocks cut unevenly (and LayerNorm's rows of 6000 bytes in
  // blocks of 2), over 1 and 2 threads.
  const SMALL_GROUPS: Array<{ name: string; shape: number[]; make: () => Layer; gr: (s: number[]) => Grouping; dtype: DT }> = [
    { name: 'InstanceNorm2d [41,67,7,7]: 2747 groups of 49, blocks of 8 (the last of 3)', shape: [41, 67, 7, 7],
      make: () => new InstanceNorm2d(67, { affine: true }), gr: (s) => bySampleChannel(s), dtype: 'float32' },
    { name: 'GroupNorm(34, 68) [61,68,5,9]: groups of 2 channels (segments), blocks of 8 (the last of 2)', shape: [61, 68, 5, 9],
      make: () => new GroupNorm(34, 68), gr: (s) => bySampleGroup(s, 34), dtype: 'float32' },
    { name: 'LayerNorm [4099,64] float64: rows of 512 bytes, blocks of 8 (the last of 3)', shape: [4099, 64],
      make: () => new LayerNorm(64, { dtype: 'float64' }), gr: (s) => byRow(s[0]! * s[1]!, s[1]!), dtype: 'float64' },
    { name: 'LayerNorm [1000,1500]: rows of 6000 bytes, blocks of 2 (under 16 KB)', shape: [1000, 1500],
      make: () => new LayerNorm(1500), gr: (s) => byRow(s[0]! * s[1]!, s[1]!), dtype: 'float32' },
  ];
  for (const { name, shape, make, gr, dtype } of SMALL_GROUPS) {
    for (const threads of [1, 2]) {
      it(`${name}, ${threads} thread(s)`, () => {
        const saved = getNumThreads();
        setNumThreads(threads);
        try {
          const x = input(shape, 8, dtype, 3);
          checkTrainingStep(make(), x, gr(shape), 1e-5, dtype);
        } finally { setNumThreads(saved); }
      });
    }
  }
});

/**
 * What the fused ReLU should give, from a float64 forward `pre` of the layer (before the activation) and its
 * backward `grad(dz)`: y = relu(pre + r), and the layer's gradients of dz = (pre + r > 0) ? dy : 0.
 */
interface Reference {
  pre: Float64Array;
  grad(dz: Float64Array): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array };
}

/**
 * One forward and backward of a layer built with activation 'relu' against the reference. dy is 0 wherever the
 * reference pre-activation is within 1e-4 of 0: float rounding there may fall on either side of the ReLU, which
 * would test rounding, not the kernel (exact ties at 0 are the PyTorch fixtures' job: test/fused.parity.test.ts).
 */
function checkFused(layer: Layer, x: Tensor, dtype: DT, residual: Tensor | undefined, reference: () => Reference): void {
  const y = layer.forward(x, { residual });
  const ref = reference(), r = residual?.data, n = x.data.length;
  const v = new Float64Array(n), yRef = new Float64Array(n), dz = new Float64Array(n);
  for (let i = 0; i < n; i++) { v[i] = ref.pre[i]! + (r ? r[i]! : 0); yRef[i] = Math.max(v[i]!, 0); }
  expectNear(y.data, yRef, TOL[dtype], 'relu y');
  const dy = input(x.shape as number[], 9, dtype);
  for (let i = 0; i < n; i++) {
    if (Math.abs(v[i]!) < 1e-4) dy.data[i] = 0;
    dz[i] = v[i]! > 0 ? dy.data[i]! : 0;
  }
  const dx = layer.backward(dy), rb = ref.grad(dz);
  expectNear(dx.data, rb.dx, TOL[dtype], 'relu dx');
  if (layer.weight) expectNear(layer.weight.grad!, rb.dweight, TOL[dtype], 'relu dweight');
  if (layer.bias) expectNear(layer.bias.grad!, rb.dbias, TOL[dtype], 'relu dbias');
  if (residual) expectNear(layer.residualGrad!.data, dz, TOL[dtype], 'residual gradient');
  else expect(layer.residualGrad).toBeNull();
}

/** The training reference of a layer with the fused ReLU. */
function training(layer: Layer, x: Tensor, gr: Grouping, eps: number): () => Reference {
  affineInit(layer.weight, (i) => 0.5 + (i % 7) / 4);
  affineInit(layer.bias, (i) => ((i % 5) - 2) / 3);
  const w = layer.weight?.data ?? null, b = layer.bias?.data ?? null;
  return () => {
    const stats = refNorm(x.data, gr, eps, { weight: w, bias: b });
    return { pre: stats.y, grad: (dz) => refNormBackward(x.data, dz, gr, eps, { weight: w, stats }) };
  };
}

/** The eval reference (running statistics; a layer with weight and bias): dx = dz * w * invstd. */
function evaluation(layer: Layer & { runningMean: Float32Array | Float64Array | null; runningVar: Float32Array | Float64Array | null },
  x: Tensor, gr: Grouping, eps: number): () => Reference {
  layer.eval();
  return () => {
    const rm = layer.runningMean!, rv = layer.runningVar!, w = layer.weight!.data, b = layer.bias!.data;
    const inv = Float64Array.from(rv, (v) => 1 / Math.sqrt(v + eps)), n = x.data.length;
    const channel = new Int32Array(n), xhat = new Float64Array(n), pre = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const c = (channel[i] = gr.paramOf(i));
      xhat[i] = (x.data[i]! - rm[c]!) * inv[c]!;
      pre[i] = xhat[i]! * w[c]! + b[c]!;
    }
    return {
      pre,
      grad: (dz) => {
        const dweight = new Float64Array(gr.params), dbias = new Float64Array(gr.params), dx = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          const c = channel[i]!, d = dz[i]!;
          dweight[c]! += d * xhat[i]!; dbias[c]! += d; dx[i] = d * w[c]! * inv[c]!;
        }
        return { dx, dweight, dbias };
      },
    };
  };
}

// Paths of the fused ReLU: the batch-norm walks above (the streaming 2-D row walk of [65536,512] is the channels-last
// row walk's code with longer rows, so it is left out for time), with the eval passes (normalize, and the eval
// backward's two passes) on one shape of each walk.
const FUSED: Array<{ shape: number[]; channelsLast?: boolean; dtype?: DT; residual: boolean; eval: boolean }> = [
  { shape: [64, 128, 56, 56], residual: true, eval: true },
  { shape: [256, 3, 112, 112], residual: false, eval: false },
  { shape: [1, 2, 2048, 4096], residual: true, eval: false },
  { shape: [64, 56, 56, 128], channelsLast: true, residual: true, eval: true },
  { shape: [8192, 1024], residual: false, eval: true },
  { shape: [32, 128, 56, 56], dtype: 'float64', residual: true, eval: false },
  { shape: [8, 16, 8, 8], residual: true, eval: true },
  { shape: [128, 32, 16, 16], residual: true, eval: true },
  { shape: [32, 256, 14, 14], residual: true, eval: false },
  { shape: [3, 7, 97, 101], residual: true, eval: true },
];

describe('the fused ReLU (and residual) on every fast path at bench size, against the float64 reference', () => {
  for (const { shape, channelsLast = false, dtype = 'float32', residual, eval: andEval } of FUSED) {
    const path = BATCH_NORM.find((b) => b.shape.join() === shape.join())!.path;
    it(`${dtype} [${shape.join(',')}]${channelsLast ? ' channels-last' : ''}: ${path}${residual ? ', residual' : ''}${andEval ? ', train and eval' : ''}`, () => {
      const C = shape[channelsLast || shape.length === 2 ? shape.length - 1 : 1]!;
      const bn = shape.length === 2 ? new BatchNorm1d(C, { dtype, activation: 'relu' }) : new BatchNorm2d(C, { dtype, channelsLast, activation: 'relu' });
      const x = input(shape, 1, dtype, 3), gr = byChannel(shape, channelsLast);
      checkFused(bn, x, dtype, residual ? input(shape, 10, dtype) : undefined, training(bn, x, gr, 1e-5));
      if (!andEval) return;
      // Eval after the step set the running statistics; the other residual form.
      bn.weight!.grad = null; bn.bias!.grad = null;
      checkFused(bn, x, dtype, residual ? undefined : input(shape, 12, dtype), evaluation(bn, x, gr, 1e-5));
    });
  }

  it('LayerNorm [65536,512] with residual: per-position w, b in the mask, column reduction of dz', () => {
    const ln = new LayerNorm(512, { activation: 'relu' }), x = input([65536, 512], 2, 'float32', -4);
    checkFused(ln, x, 'float32', input(x.shape as number[], 13, 'float32'), training(ln, x, byRow(x.data.length, 512), 1e-5));
  });

  it('GroupNorm(32) [16,256,56,56]: per-channel segments in the mask', () => {
    const gn = new GroupNorm(32, 256, { activation: 'relu' }), x = input([16, 256, 56, 56], 4, 'float32', 2);
    checkFused(gn, x, 'float32', undefined, training(gn, x, bySampleGroup(x.shape, 32), 1e-5));
  });

  it('InstanceNorm2d [16,64,56,56] with affine, residual', () => {
    const inorm = new InstanceNorm2d(64, { affine: true, activation: 'relu' }), x = input([16, 64, 56, 56], 5, 'float32', -1);
    checkFused(inorm, x, 'float32', input(x.shape as number[], 14, 'float32'), training(inorm, x, bySampleChannel(x.shape), 1e-5));
  });
});

describe('the fused ReLU\'s mask agrees with its forward bit for bit, at bench size', () => {
  // A residual of exactly −(the layer's output without activation) puts every pre-activation at exactly 0 — if the
  // fused forward, the plain normalize and the backward's recomputed mask evaluate the same bits. Then y = 0, and
  // PyTorch's gradient at 0 is 0: dz = 0, so dx and the parameter gradients are 0 everywhere.
  const CASES: Array<{ name: string; make: (activation: 'relu' | null) => Layer & { train(): unknown }; shape: number[]; evalToo: boolean }> = [
    { name: 'BatchNorm2d NCHW, fused walk, streaming', make: (a) => new BatchNorm2d(128, { activation: a }), shape: [64, 128, 56, 56], evalToo: true },
    { name: 'BatchNorm2d NCHW, cache-resident: eval in memory order over 2 threads', make: (a) => new BatchNorm2d(32, { activation: a }), shape: [128, 32, 16, 16], evalToo: true },
    { name: 'BatchNorm2d channels-last, row walk, streaming', make: (a) => new BatchNorm2d(128, { activation: a, channelsLast: true }), shape: [64, 56, 56, 128], evalToo: true },
    { name: 'BatchNorm1d 2-D, row walk in cache', make: (a) => new BatchNorm1d(1024, { activation: a }), shape: [8192, 1024], evalToo: false },
    { name: 'BatchNorm1d 2-D, 8-column rows, streaming (wrapped coefficients)', make: (a) => new BatchNorm1d(8, { activation: a }), shape: [530000, 8], evalToo: true },
    { name: 'BatchNorm1d 2-D, 5-column rows, streaming (wrapped coefficients)', make: (a) => new BatchNorm1d(5, { activation: a }), shape: [900000, 5], evalToo: true },
    { name: 'LayerNorm, per-position w and b', make: (a) => new LayerNorm(512, { activation: a }), shape: [16384, 512], evalToo: false },
  ];
  for (const { name, make, shape, evalToo } of CASES) {
    it(name, () => {
      const plain = make(null), fused = make('relu');
      for (const l of [plain, fused]) {
        affineInit(l.weight, (i) => 0.5 + (i % 7) / 4);
        affineInit(l.bias, (i) => ((i % 5) - 2) / 3);
      }
      const x = input(shape, 21, 'float32', 1), dy = input(shape, 22, 'float32');
      for (const mode of evalToo ? ['train', 'eval'] : ['train']) {
        if (mode === 'eval') { plain.eval(); fused.eval(); }
        const y0 = plain.forward(x);
        const residual = { data: y0.data.map((v) => -v), shape };
        const y = fused.forward(x, { residual });
        expect(y.data.every((v) => v === 0), `${mode}: y = relu(p - p) = 0 everywhere`).toBe(true);
        const dx = fused.backward(dy);
        expect(fused.residualGrad!.data.every((v) => v === 0), `${mode}: the mask is 0 everywhere`).toBe(true);
        expect(dx.data.every((v) => v === 0), `${mode}: dx`).toBe(true);
        expect(fused.weight!.grad!.every((v) => v === 0), `${mode}: dweight`).toBe(true);
      }
    });
  }
});
