// Bad input to the family layers: TypeError / RangeError naming expected vs given, state untouched.
import { describe, expect, it } from 'vitest';
import { functional as F, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm, Module, RMSNorm, tensor } from '../lib/index.js';

function snapshot(m: Module): string {
  return JSON.stringify(m.stateDict(), (_, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array, String) : v)) +
    JSON.stringify(m.parameters().map((p) => (p.grad ? Array.from(p.grad) : null)));
}

function expectRefused(m: Module, act: () => unknown, type: ErrorConstructor, message: RegExp): void {
  const before = snapshot(m);
  expect(act).toThrow(type);
  expect(act).toThrow(message);
  expect(snapshot(m)).toBe(before);
}

const t = (shape: number[], Ctor: Float32ArrayConstructor | Float64ArrayConstructor = Float32Array) =>
  ({ data: new Ctor(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i)), shape });

describe('LayerNorm / RMSNorm', () => {
  it('reject a trailing shape that is not normalizedShape, in PyTorch words', () => {
    const ln = new LayerNorm([3, 4]);
    ln.forward(t([2, 3, 4])); ln.backward(t([2, 3, 4]));
    expectRefused(ln, () => ln.forward(t([2, 4, 3])), RangeError, /Given normalizedShape=\[3, 4\], expected input with shape \[\*, 3, 4\], but got input of size \[2, 4, 3\]/);
    expectRefused(ln, () => ln.forward(t([2, 3, 4], Float64Array)), TypeError, /expected float32 input/);
    expectRefused(ln, () => ln.backward(t([2, 3, 5])), RangeError, /Expected dy of shape \[2, 3, 4\]/);
    const rms = new RMSNorm(4);
    expect(rms.forward(t([4])).shape).toEqual([4]);  // input shape == normalizedShape is one row, as in PyTorch
    expectRefused(rms, () => rms.forward(t([2, 5])), RangeError, /normalizedShape=\[4\]/);
  });
  it('check their constructor arguments', () => {
    expect(() => new LayerNorm([])).toThrow(TypeError);
    expect(() => new LayerNorm([3, 0])).toThrow(/positive integer for normalizedShape\[1\] but received number 0/);
    expect(() => new LayerNorm('3' as never)).toThrow(TypeError);
    expect(() => new LayerNorm(3, { elementwise_affine: false } as never)).toThrow(/did you mean "elementwiseAffine"/);
    expect(() => new RMSNorm(3, { eps: -1 })).toThrow(RangeError);
    expect(new RMSNorm(3).eps).toBeNull();
    expect(new LayerNorm([2, 3]).weight!.shape).toEqual([2, 3]);
  });
});

describe('GroupNorm', () => {
  it('needs numChannels divisible by numGroups, at construction', () => {
    expect(() => new GroupNorm(4, 6)).toThrow(RangeError);
    expect(() => new GroupNorm(4, 6)).toThrow(/numChannels must be divisible by numGroups \(got numChannels=6, numGroups=4\)/);
    expect(() => new GroupNorm(0, 6)).toThrow(RangeError);
    expect(() => new GroupNorm(2.5 as never, 5)).toThrow(RangeError);
  });
  it('refuses a wrong channel count and PyTorch\'s one-value-per-group batch', () => {
    const gn = new GroupNorm(2, 4);
    gn.forward(t([2, 4, 3])); gn.backward(t([2, 4, 3]));
    expectRefused(gn, () => gn.forward(t([2, 6, 3])), RangeError, /expected 4 channels in dimension 1 of the input but got 6/);
    expectRefused(gn, () => gn.forward(t([4])), RangeError, /at least 2D/);
    const one = new GroupNorm(3, 3);
    expectRefused(one, () => one.forward(t([1, 3])), RangeError, /Expected more than 1 value per channel when training, got input size \[1, 3\]/);
    expect(() => F.groupNorm(t([2, 6, 3]), 4)).toThrow(/divisible by num_groups, but got input of shape \[2, 6, 3\] and num_groups=4/);
  });
});

describe('InstanceNorm', () => {
  it('refuses one spatial element when using input statistics', () => {
    const inorm = new InstanceNorm1d(3, { affine: true });
    expectRefused(inorm, () => inorm.forward(t([2, 3, 1])), RangeError, /Expected more than 1 spatial element when training, got input size \[2, 3, 1\]/);
  });
  it('checks rank and, with affine or running stats, the channel count', () => {
    const inorm = new InstanceNorm2d(3, { affine: true, trackRunningStats: true });
    inorm.forward(t([2, 3, 2, 2])); inorm.backward(t([2, 3, 2, 2]));
    expectRefused(inorm, () => inorm.forward(t([2, 3, 4])), RangeError, /size at dim=0 to match num_features \(3\), but got: 2/);
    expectRefused(inorm, () => inorm.forward(t([2, 3])), RangeError, /expected 3D or 4D input \(got 2D input/);
    expectRefused(inorm, () => inorm.forward(t([2, 4, 2, 2])), RangeError, /num_features \(3\), but got: 4/);
    expect(() => new InstanceNorm2d(3, { momentum: null } as never)).toThrow(TypeError);
    expect(() => new InstanceNorm2d(3, { channelsLast: true } as never)).toThrow(/unknown option "channelsLast"/);
  });
  it('accepts unbatched input and returns its shape', () => {
    const inorm = new InstanceNorm1d(2);
    const y = inorm.forward(tensor([1, 2, 3, 4, 5, 7], [2, 3]));
    expect(y.shape).toEqual([2, 3]);
    expect(inorm.backward(tensor([1, 0, 0, 0, 0, 1], [2, 3])).shape).toEqual([2, 3]);
  });
});
