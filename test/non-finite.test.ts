// nonFinite on the layers with running statistics: NaN and Inf batches in each mode, with state snapshots taken
// before and compared after (PyTorch's own behaviour, 'propagate', lets one such batch poison the running stats).
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, InstanceNorm1d, joinThreadGroup, SyncBatchNorm, type NormBase, tensor, threadGroup } from '../lib/index.js';
import { randn } from './helpers/compare.js';
import { refForward } from './helpers/reference.js';

const snapshot = (l: NormBase) => ({
  mean: Array.from(l.runningMean!), variance: Array.from(l.runningVar!), n: l.numBatchesTracked, skipped: l.skippedBatches,
});
const batch = (bad: number, at: number) => {
  const d = randn(4 * 3, 7, Float64Array) as Float64Array;
  d[at] = bad;
  return tensor(d, [4, 3]);
};

describe('nonFinite', () => {
  for (const bad of [NaN, Infinity, -Infinity]) {
    it(`'propagate' (default) absorbs a ${bad} batch into the running statistics, as PyTorch`, () => {
      const bn = new BatchNorm1d(3, { dtype: 'float64' });
      expect(bn.nonFinite).toBe('propagate');
      bn.forward(batch(bad, 4));  // channel 1
      expect(Number.isFinite(bn.runningVar![1])).toBe(false);
      expect(bn.numBatchesTracked).toBe(1);
    });

    it(`'skip' normalizes a ${bad} batch as usual but leaves the running statistics and counts it`, () => {
      const bn = new BatchNorm1d(3, { dtype: 'float64', nonFinite: 'skip' });
      const good = tensor(randn(12, 3, Float64Array) as Float64Array, [4, 3]);
      bn.forward(good);
      const before = snapshot(bn);
      const x = batch(bad, 4);
      const y = bn.forward(x);
      expect(snapshot(bn)).toEqual({ ...before, skipped: 1 });
      // the output is the usual batch normalization (finite channels 0 and 2 exactly the reference)
      const ref = refForward(x.data, x.shape, false, bn.eps);
      for (let i = 0; i < 12; i++) if (i % 3 !== 1) expect(y.data[i]).toBeCloseTo(ref.y[i]!, 12);
      bn.forward(good);
      expect(bn.numBatchesTracked).toBe(2);
      expect(bn.skippedBatches).toBe(1);
    });

    it(`'throw' refuses a ${bad} batch naming the channel, with no state change`, () => {
      const bn = new BatchNorm2d(3, { nonFinite: 'throw', momentum: null });
      const d = new Float32Array(2 * 3 * 2).map((_, i) => i % 5);
      bn.forward(tensor(d, [2, 3, 2, 1]));
      const before = snapshot(bn);
      d[3 * 2 + 2 * 2 + 1] = bad;  // sample 1, channel 2
      expect(() => bn.forward(tensor(d, [2, 3, 2, 1]))).toThrow(RangeError);
      expect(() => bn.forward(tensor(d, [2, 3, 2, 1]))).toThrow(/channel 2 are not finite/);
      expect(snapshot(bn)).toEqual(before);
    });
  }

  it('eval mode never looks (nothing to protect)', () => {
    const bn = new BatchNorm1d(3, { nonFinite: 'throw' }).eval();
    expect(() => bn.forward(tensor(new Float32Array([NaN, 1, 2, 3, 4, 5]), [2, 3]))).not.toThrow();
  });

  it('InstanceNorm with running statistics: skip and throw name the channel', () => {
    const x = new Float64Array(2 * 3 * 4).map((_, i) => Math.sin(i));
    x[1 * 12 + 2 * 4 + 1] = NaN;  // sample 1, channel 2
    const skip = new InstanceNorm1d(3, { trackRunningStats: true, dtype: 'float64', nonFinite: 'skip' });
    const before = snapshot(skip);
    skip.forward(tensor(x, [2, 3, 4]));
    expect(snapshot(skip)).toEqual({ ...before, skipped: 1 });
    const thrower = new InstanceNorm1d(3, { trackRunningStats: true, dtype: 'float64', nonFinite: 'throw' });
    expect(() => thrower.forward(tensor(x, [2, 3, 4]))).toThrow(/channel 2 are not finite/);
    expect(snapshot(thrower)).toEqual(before);
  });

  it('SyncBatchNorm: global statistics, so every rank skips the batch a NaN on one rank poisons', async () => {
    const group = threadGroup(2, { timeoutMs: 30_000 });
    const layers = [0, 1].map((r) => new SyncBatchNorm(2, { comm: joinThreadGroup(group, r), nonFinite: 'skip', dtype: 'float64' }));
    const xs = [new Float64Array([1, 2, 3, 4]), new Float64Array([5, NaN, 7, 8])];
    await Promise.all(layers.map((l, r) => l.forwardAsync(tensor(xs[r]!, [2, 2]))));
    for (const l of layers) expect(snapshot(l)).toEqual({ mean: [0, 0], variance: [1, 1], n: 0, skipped: 1 });
  });

  it('refuses a bad mode with a TypeError naming the choices', () => {
    expect(() => new BatchNorm1d(3, { nonFinite: 'ignore' as 'skip' })).toThrow(/"propagate", "skip" or "throw" for BatchNorm1d option "nonFinite" but received string "ignore"/);
    expect(() => new InstanceNorm1d(3, { nonFinite: true as unknown as 'skip' })).toThrow(TypeError);
  });
});
