// tensor() and its dtype option, and outputs that own their shape: a frozen copy, never the input's array.
import { describe, expect, it } from 'vitest';
import {
  BatchNorm1d, BatchNorm2d, functional as F, GroupNorm, InstanceNorm1d, LayerNorm, RMSNorm, tensor, type Module, type Tensor,
} from '../lib/index.js';

describe('tensor()', () => {
  it('makes float32 from a number[] by default and float64 on request', () => {
    expect(tensor([1, 2], [2]).data).toBeInstanceOf(Float32Array);
    const t = tensor([1, 2.5], [1, 2], { dtype: 'float64' });
    expect(t.data).toBeInstanceOf(Float64Array);
    expect(Array.from(t.data)).toEqual([1, 2.5]);
    // so a float64 layer can be fed without building a Float64Array by hand
    expect(new BatchNorm1d(2, { dtype: 'float64' }).forward(tensor([1, 2, 3, 5], [2, 2], { dtype: 'float64' })).data).toBeInstanceOf(Float64Array);
  });

  it('uses a typed array of the asked dtype as is, and converts one of the other dtype', () => {
    const a = Float32Array.of(1, 2);
    expect(tensor(a, [2]).data).toBe(a);
    expect(tensor(a, [2], { dtype: 'float32' }).data).toBe(a);
    const b = tensor(a, [2], { dtype: 'float64' });
    expect(b.data).toBeInstanceOf(Float64Array);
    expect(Array.from(b.data)).toEqual([1, 2]);
    expect(Array.from(tensor(Float64Array.of(0.1), [1], { dtype: 'float32' }).data)).toEqual([Math.fround(0.1)]);
  });

  it('refuses bad options and elements, naming expected and given', () => {
    expect(() => tensor([1], [1], { dtype: 'int8' as never })).toThrow(/Expected "float32" or "float64" for tensor option "dtype" but received string "int8"/);
    expect(() => tensor([1], [1], { dtyp: 'float64' } as never)).toThrow(/unknown option "dtyp" for tensor/);
    expect(() => tensor([1, 'a'] as never, [2])).toThrow(/Expected a number for tensor data\[1\] but received string "a"/);
    expect(() => tensor([1, 2], [3])).toThrow(RangeError);
  });
});

describe('output shapes', () => {
  const x3 = () => tensor(Float32Array.from({ length: 24 }, (_, i) => Math.sin(i)), [2, 3, 4]);
  const cases: Array<[string, () => Module, () => Tensor]> = [
    ['BatchNorm1d', () => new BatchNorm1d(3), x3],
    ['BatchNorm2d', () => new BatchNorm2d(3), () => tensor(x3().data, [2, 3, 2, 2])],
    ['InstanceNorm1d unbatched', () => new InstanceNorm1d(3), () => tensor(x3().data.subarray(0, 12), [3, 4])],
    ['GroupNorm', () => new GroupNorm(3, 3), x3],
    ['LayerNorm', () => new LayerNorm(4), x3],
    ['RMSNorm', () => new RMSNorm(4), x3],
  ];
  for (const [name, make, input] of cases) {
    it(`${name}: y and dx get a frozen copy of the shape, not the input's array`, () => {
      const layer = make(), x = input();
      const y = layer.forward(x);
      expect(y.shape).not.toBe(x.shape);
      expect(y.shape).toEqual(x.shape);
      expect(Object.isFrozen(y.shape)).toBe(true);
      const dy = { data: y.data.slice(), shape: [...y.shape] };
      const dx = layer.backward(dy);
      expect(dx.shape).not.toBe(dy.shape);
      expect(dx.shape).toEqual(x.shape);
      expect(Object.isFrozen(dx.shape)).toBe(true);
    });
  }

  it('functional outputs too', () => {
    const x = { data: new Float32Array(8).map((_, i) => i), shape: [2, 4] };
    const r = F.batchNorm(x, { training: true });
    expect(r.y.shape).not.toBe(x.shape);
    (x.shape as number[]).push(1);                  // the caller's array changes; the output's does not
    expect(r.y.shape).toEqual([2, 4]);
    expect(F.layerNorm({ data: x.data, shape: [2, 4] }, 4).y.shape).toEqual([2, 4]);
  });
});
