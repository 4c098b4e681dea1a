// Results are bit-identical for every thread count and for sync vs async calls: work is cut by the shape,
// partials are indexed by task and merged in a fixed order (compare two normkit runs on purpose).
import { afterAll, describe, expect, it } from 'vitest';
import { BatchNorm2d, functional as F, getNumThreads, GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm, setNumThreads, tensor, type Tensor } from '../lib/index.js';
import { native } from '../lib/binding.js';
import { expectBitIdentical, randn } from './helpers/compare.js';

const initial = getNumThreads();
afterAll(() => setNumThreads(initial));

// A kernel runs on min(threads, elements / grain) threads (native/kernels.h kGrainElems): every shape here has at
// least 8 grains of elements, so that each thread count below really runs that many threads. Both kernel walks (group
// walk: NCHW; row walk: channels last and 2-D), with tails that do not divide evenly.
const GRAIN = native().info().grainElems;
const SHAPES: Array<{ shape: number[]; channelsLast: boolean }> = [
  { shape: [40, 7, 33, 67], channelsLast: false },
  { shape: [18, 3, 101, 97], channelsLast: false },
  { shape: [45, 17, 19, 37], channelsLast: true },
  { shape: [41001, 13], channelsLast: false },
  // Channels past 2 MB: the two-phase walk on 1 thread, channel waves (a channel split over the threads) on more.
  { shape: [4, 3, 400, 400], channelsLast: false },
];

function run(x: Tensor, dy: Tensor, channelsLast: boolean) {
  const C = x.shape[channelsLast ? x.shape.length - 1 : 1]!;
  const Ctor = x.data instanceof Float32Array ? Float32Array : Float64Array;
  const rm = new Ctor(C), rv = new Ctor(C).fill(1), weight = new Ctor(C).map((_, i) => 1 + i / 10), bias = new Ctor(C).fill(0.5);
  const f = F.batchNorm(x, { training: true, runningMean: rm, runningVar: rv, weight, bias, channelsLast });
  const b = F.batchNormBackward(dy, x, { weight, saveMean: f.saveMean, saveInvstd: f.saveInvstd, channelsLast });
  return { y: f.y.data, mean: f.saveMean, invstd: f.saveInvstd, rm, rv, dx: b.dx.data, dweight: b.dweight, dbias: b.dbias };
}

describe('thread-count determinism', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const { shape, channelsLast } of SHAPES) {
      it(`${dtype} ${JSON.stringify(shape)}${channelsLast ? ' channels-last' : ''}: 1..8 threads give the same bits`, () => {
        const n = shape.reduce((a, b) => a * b, 1), Ctor = dtype === 'float32' ? Float32Array : Float64Array;
        expect(n).toBeGreaterThanOrEqual(8 * GRAIN);
        const x = tensor(randn(n, 1, Ctor).map((v, i) => v * 2 + 1000 + (i % 11)), shape);
        const dy = tensor(randn(n, 2, Ctor), shape);
        setNumThreads(1);
        const ref = run(x, dy, channelsLast);
        for (const t of [2, 3, 4, 7, 8]) {
          setNumThreads(t);
          const got = run(x, dy, channelsLast);
          for (const k of Object.keys(ref) as Array<keyof typeof ref>) expectBitIdentical(got[k], ref[k], `${k} with ${t} threads`);
        }
      });
    }
  }
});

describe('sync and async give the same bits', () => {
  it('layer forward/backward, train and eval', async () => {
    const shape = [8, 5, 40, 30], n = 8 * 5 * 40 * 30;
    const x = tensor(randn(n, 3, Float32Array), shape), dy = tensor(randn(n, 4, Float32Array), shape);
    const a = new BatchNorm2d(5), b = new BatchNorm2d(5);
    for (const mode of [true, false]) {
      a.train(mode); b.train(mode);
      const ya = a.forward(x), yb = await b.forwardAsync(x);
      expectBitIdentical(yb.data, ya.data, 'y');
      const da = a.backward(dy), db = await b.backwardAsync(dy);
      expectBitIdentical(db.data, da.data, 'dx');
      expectBitIdentical(b.runningMean!, a.runningMean!, 'running_mean');
      expectBitIdentical(b.runningVar!, a.runningVar!, 'running_var');
      expectBitIdentical(b.weight!.grad!, a.weight!.grad!, 'weight.grad');
    }
  });
});

describe('the family is thread-count independent too', () => {
  const layers: Array<[string, () => import('../lib/index.js').Module, number[]]> = [
    ['LayerNorm (paramGrad column sums)', () => new LayerNorm(257), [2041, 257]],
    ['RMSNorm', () => new RMSNorm([3, 97]), [1803, 3, 97]],
    // 9 rows: fused per row block on 1 and 3 threads, two-phase (separate column reduction) on 2 and 8.
    ['LayerNorm, few long rows (fused and two-phase walks)', () => new LayerNorm(60001), [9, 60001]],
    ['RMSNorm, few long rows (fused and two-phase walks)', () => new RMSNorm(60001), [9, 60001]],
    ['GroupNorm', () => new GroupNorm(3, 12), [9, 12, 31, 157]],
    ['GroupNorm, groups past 2 MB (two-phase walk, then channel waves)', () => new GroupNorm(2, 8), [1, 8, 400, 400]],
    ['GroupNorm channels-last', () => new GroupNorm(4, 32, { channelsLast: true }), [19, 29, 31, 32]],
    ['InstanceNorm2d with running stats', () => new InstanceNorm2d(7, { affine: true, trackRunningStats: true }), [50, 7, 37, 41]],
  ];
  for (const [name, make, shape] of layers) {
    it(name, () => {
      const n = shape.reduce((a, b) => a * b, 1);
      expect(n).toBeGreaterThanOrEqual(8 * GRAIN);  // as above: every thread count runs its threads
      const x = tensor(randn(n, 11, Float32Array).map((v, i) => v * 3 + (i % 5)), shape), dy = tensor(randn(n, 12, Float32Array), shape);
      const run = (threads: number) => {
        setNumThreads(threads);
        const m = make();
        const y = m.forward(x).data, dx = m.backward(dy).data;
        return { y, dx, grads: m.parameters().map((p) => p.grad!) };
      };
      const ref = run(1);
      for (const t of [2, 3, 8]) {
        const got = run(t);
        expectBitIdentical(got.y, ref.y, `${name} y, ${t} threads`);
        expectBitIdentical(got.dx, ref.dx, `${name} dx, ${t} threads`);
        got.grads.forEach((g, i) => expectBitIdentical(g, ref.grads[i]!, `${name} grad ${i}, ${t} threads`));
      }
    });
  }
});
