// stateDict / loadStateDict: PyTorch's keys and shapes, strict by default, atomic, old checkpoints, prefixes.
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, GroupNorm, LayerNorm, RMSNorm, type StateDict } from '../lib/index.js';

function trained(): BatchNorm2d {
  const bn = new BatchNorm2d(3);
  bn.forward({ data: new Float32Array(2 * 3 * 4).map((_, i) => i * 0.7 - 3), shape: [2, 3, 2, 2] });
  bn.weight!.data.set([0.5, 1.5, 2]);
  return bn;
}

describe('stateDict', () => {
  it('has PyTorch\'s keys, in order, with shapes and an int64 scalar counter', () => {
    const sd = trained().stateDict();
    expect(Object.keys(sd)).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expect(sd.weight!.shape).toEqual([3]);
    expect(sd.num_batches_tracked!.shape).toEqual([]);
    expect(sd.num_batches_tracked!.data).toBeInstanceOf(BigInt64Array);
    expect(sd.num_batches_tracked!.data[0]).toBe(1n);
    expect(Object.keys(new BatchNorm2d(3, { affine: false, trackRunningStats: false }).stateDict())).toEqual([]);
    expect(Object.keys(new LayerNorm([2, 3], { bias: false }).stateDict())).toEqual(['weight']);
    expect(new LayerNorm([2, 3]).stateDict().weight!.shape).toEqual([2, 3]);
    expect(Object.keys(new RMSNorm(4).stateDict())).toEqual(['weight']);
    expect(Object.keys(new GroupNorm(2, 4).stateDict())).toEqual(['weight', 'bias']);
  });

  it('holds copies: changing the dict does not change the layer', () => {
    const bn = trained();
    const sd = bn.stateDict();
    (sd.weight!.data as Float32Array)[0] = 99;
    expect(bn.weight!.data[0]).toBe(0.5);
  });

  it('prefixes keys', () => {
    expect(Object.keys(trained().stateDict('features.1.'))).toContain('features.1.running_var');
  });
});

describe('loadStateDict', () => {
  it('round-trips, converting float64 values to the layer dtype', () => {
    const src = trained(), dst = new BatchNorm2d(3);
    const sd = src.stateDict();
    sd.weight = { data: Float64Array.from(sd.weight!.data as Float32Array), shape: [3] };
    dst.loadStateDict(sd);
    expect(Array.from(dst.weight!.data)).toEqual([0.5, 1.5, 2]);
    expect(dst.weight!.data).toBeInstanceOf(Float32Array);
    expect(Array.from(dst.runningMean!)).toEqual(Array.from(src.runningMean!));
    expect(dst.numBatchesTracked).toBe(1);
  });

  it('strict by default: missing and unexpected keys throw and change nothing', () => {
    const dst = new BatchNorm2d(3), before = JSON.stringify(dst.stateDict(), (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
    const sd = trained().stateDict();
    const { bias: _bias, ...missing } = sd;
    expect(() => dst.loadStateDict(missing)).toThrow(/Missing key\(s\) in state_dict: "bias"/);
    expect(() => dst.loadStateDict({ ...sd, extra: sd.bias! })).toThrow(/Unexpected key\(s\) in state_dict: "extra"/);
    expect(JSON.stringify(dst.stateDict(), (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toBe(before);
    dst.loadStateDict({ ...missing, extra: sd.bias! }, { strict: false });  // non-strict: loads what matches
    expect(Array.from(dst.weight!.data)).toEqual([0.5, 1.5, 2]);
  });

  it('a wrong shape or dtype throws even when not strict, and changes nothing (atomic)', () => {
    const dst = new BatchNorm2d(3);
    const sd = trained().stateDict();
    const bad: StateDict = { ...sd, running_var: { data: new Float32Array(4), shape: [4] } };
    expect(() => dst.loadStateDict(bad, { strict: false })).toThrow(RangeError);
    expect(() => dst.loadStateDict(bad)).toThrow(/size mismatch for running_var: copying a tensor of shape \[4\] \(4 elements\), the shape in the current model is \[3\]/);
    expect(() => dst.loadStateDict({ ...sd, weight: { data: new Int32Array(3), shape: [3] } as never })).toThrow(TypeError);
    expect(() => dst.loadStateDict({ ...sd, num_batches_tracked: { data: new Float32Array(1), shape: [] } as never })).toThrow(/int64 scalar/);
    expect(() => dst.loadStateDict({ ...sd, num_batches_tracked: { data: BigInt64Array.of(-1n), shape: [] } })).toThrow(RangeError);
    // a plain number is not an int64 scalar: the message says what was received
    expect(() => dst.loadStateDict({ ...sd, num_batches_tracked: 3 as never })).toThrow(
      /num_batches_tracked: expected an int64 scalar \{ data: BigInt64Array\(1\), shape: \[\] \} but received number 3/);
    expect(Array.from(dst.weight!.data)).toEqual([1, 1, 1]);  // nothing of the valid entries was loaded either
    expect(dst.numBatchesTracked).toBe(0);
  });

  it('loads an old checkpoint without num_batches_tracked with the counter at 0', () => {
    const src = trained(), dst = trained();
    const { num_batches_tracked: _n, ...old } = src.stateDict();
    dst.numBatchesTracked = 7;
    dst.loadStateDict(old);
    expect(dst.numBatchesTracked).toBe(0);
  });

  it('loads from a prefixed dict', () => {
    const dst = new BatchNorm2d(3);
    dst.loadStateDict({ ...trained().stateDict('bn1.'), 'other.weight': { data: new Float32Array(5), shape: [5] } }, { prefix: 'bn1.' });
    expect(Array.from(dst.weight!.data)).toEqual([0.5, 1.5, 2]);
  });

  it('rejects what is not a state dict', () => {
    expect(() => new BatchNorm2d(3).loadStateDict(null as never)).toThrow(TypeError);
    expect(() => new BatchNorm2d(3).loadStateDict(trained().stateDict(), { strcit: true } as never)).toThrow(/did you mean "strict"/);
  });
});
