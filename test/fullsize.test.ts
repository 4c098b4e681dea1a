// Every fast path, at the size the bench times it, against the independent float64 reference
// (helpers/reference.ts). Small shapes cannot reach these paths: the fused per-channel walk with streaming stores
// (an output over 16 MB), channel waves (a channel within L3 split over the threads), the two-phase walk over
// channels larger than L3, the row walk with many row blocks,
// the weight-gradient column reduction over 65536 rows. Agreement between thread counts or ISAs proves only
// determinism; this file proves the numbers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm, getNumThreads, setNumThreads, type Tensor,
} from '../lib/index.js';
import { expectNear, rng } from './helpers/compare.js';
import { byChannel, byRow, bySampleChannel, bySampleGroup, refNorm, refNormBackward, type Grouping } from './helpers/reference.js';

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
  forward(x: Tensor): Tensor; backward(dy: Tensor): Tensor; eval(): unknown;
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

describe('the rest of the family at bench size against the float64 reference', () => {
  it('LayerNorm [65536,512]: row statistics, weight/bias column reduction', () => {
    const x = input([65536, 512], 2, 'float32', -4);
    checkTrainingStep(new LayerNorm(512), x, byRow(x.data.length, 512), 1e-5, 'float32');
  });

  it('RMSNorm [65536,512]: row statistics without a mean, weight column reduction', () => {
    const x = input([65536, 512], 3, 'float32', 1);
    checkTrainingStep(new RMSNorm(512, { eps: 1e-6 }), x, byRow(x.data.length, 512), 1e-6, 'float32', true);
  });

  it('GroupNorm(32) [16,256,56,56]: groups of 8 channels, per-channel affine', () => {
    const x = input([16, 256, 56, 56], 4, 'float32', 2);
    checkTrainingStep(new GroupNorm(32, 256), x, bySampleGroup(x.shape, 32), 1e-5, 'float32');
  });

  it('InstanceNorm2d [16,64,56,56] with affine', () => {
    const x = input([16, 64, 56, 56], 5, 'float32', -1);
    checkTrainingStep(new InstanceNorm2d(64, { affine: true }), x, bySampleChannel(x.shape), 1e-5, 'float32');
  });
});
