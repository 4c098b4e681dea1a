// PyTorch's batch-norm semantics that hold for any input, checked against formulas and a float64 JS reference.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, functional as F, tensor } from '../lib/index.js';
import { expectClose, randn } from './helpers/compare.js';
import { refBackward, refForward } from './helpers/reference.js';

const f64 = (n: number, seed: number) => randn(n, seed, Float64Array) as Float64Array;

describe('training forward', () => {
  it('normalizes each channel to mean 0 and biased variance var/(var+eps) without affine', () => {
    const x = tensor(f64(2 * 3 * 4 * 5, 1).map((v, i) => v * 3 + (i % 7)), [2, 3, 4, 5]);
    const bn = new BatchNorm2d(3, { affine: false, dtype: 'float64' });
    const y = bn.forward(x);
    const ref = refForward(x.data, x.shape, false, bn.eps);
    for (let c = 0; c < 3; c++) {
      let s = 0, ss = 0, n = 0;
      for (let b = 0; b < 2; b++) for (let i = 0; i < 20; i++) { const v = y.data[(b * 3 + c) * 20 + i]!; s += v; ss += v * v; n++; }
      expect(Math.abs(s / n)).toBeLessThan(1e-12);
      const v = ref.varBiased[c]!;
      expect(ss / n).toBeCloseTo(v / (v + bn.eps), 12);
    }
  });

  it('updates running stats with momentum 0.1 and the UNBIASED variance', () => {
    const x = tensor(f64(8 * 4, 2), [8, 4]);
    const bn = new BatchNorm1d(4, { dtype: 'float64' });
    bn.forward(x);
    const ref = refForward(x.data, x.shape, false, bn.eps);
    expectClose(bn.runningMean!, ref.mean.map((m) => 0.1 * m), { rtol: 1e-12, atol: 1e-15 }, 'running_mean');
    expectClose(bn.runningVar!, ref.varUnbiased.map((v) => 0.9 + 0.1 * v), { rtol: 1e-12, atol: 1e-15 }, 'running_var');
    expect(bn.numBatchesTracked).toBe(1);
  });

  it('momentum null keeps the cumulative average of the batch statistics', () => {
    const bn = new BatchNorm1d(3, { momentum: null, dtype: 'float64' });
    const means: Float64Array[] = [], vars: Float64Array[] = [];
    for (let step = 0; step < 4; step++) {
      const x = tensor(f64(10 * 3, 10 + step).map((v) => v * (step + 1) + step), [10, 3]);
      bn.forward(x);
      const r = refForward(x.data, x.shape, false, bn.eps);
      means.push(r.mean); vars.push(r.varUnbiased);
    }
    const avg = (arrs: Float64Array[], c: number) => arrs.reduce((s, a) => s + a[c]!, 0) / arrs.length;
    // cumulative average starting from the initial running stats (0 and 1) counted as the 0th "batch" weight 0
    for (let c = 0; c < 3; c++) {
      expect(bn.runningMean![c]).toBeCloseTo(avg(means, c), 12);
      expect(bn.runningVar![c]).toBeCloseTo(avg(vars, c), 12);
    }
    expect(bn.numBatchesTracked).toBe(4);
  });

  it('a constant channel normalizes to beta, never NaN', () => {
    const data = new Float32Array(100 * 10).map((_, i) => (i % 10 === 3 ? 7.5 : Math.sin(i) * 10));
    const bn = new BatchNorm1d(10);
    bn.bias!.data[3] = 0.25;
    const y = bn.forward(tensor(data, [100, 10]));
    for (let r = 0; r < 100; r++) expect(y.data[r * 10 + 3]).toBe(0.25);
    const dx = bn.backward(tensor(new Float32Array(1000).fill(1), [100, 10]));
    expect(dx.data.every(Number.isFinite)).toBe(true);
  });

  it('eval normalizes with the running stats and changes no state', () => {
    const bn = new BatchNorm2d(2, { dtype: 'float64' });
    bn.runningMean!.set([1, -2]); bn.runningVar!.set([4, 0.25]); bn.weight!.data.set([2, 3]); bn.bias!.data.set([0.5, -1]);
    bn.eval();
    const x = tensor(Float64Array.from([1, 3, -2, -1.5, 5, 1, 0, -2]), [1, 2, 2, 2]);
    const y = bn.forward(x);
    const expected = Array.from(x.data, (v, i) => {
      const c = Math.floor(i / 4), m = [1, -2][c]!, v2 = [4, 0.25][c]!;
      return ((v - m) / Math.sqrt(v2 + 1e-5)) * [2, 3][c]! + [0.5, -1][c]!;
    });
    expectClose(y.data, expected, { rtol: 1e-14, atol: 1e-14 });
    expect(Array.from(bn.runningMean!)).toEqual([1, -2]);
    expect(Array.from(bn.runningVar!)).toEqual([4, 0.25]);
    expect(bn.numBatchesTracked).toBe(0);
  });

  it('trackRunningStats false uses batch statistics in train and eval alike', () => {
    const bn = new BatchNorm1d(3, { trackRunningStats: false, dtype: 'float64' });
    const x = tensor(f64(12, 5), [4, 3]);
    const a = bn.forward(x).data.slice();
    const b = bn.eval().forward(x).data;
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(bn.runningMean).toBeNull();
    expect(bn.stateDict()).toHaveProperty('weight');
    expect(Object.keys(bn.stateDict())).toEqual(['weight', 'bias']);
  });

  it('an empty batch returns an empty output and changes no state', () => {
    const bn = new BatchNorm2d(3);
    const y = bn.forward(tensor(new Float32Array(0), [0, 3, 4, 4]));
    expect(y.shape).toEqual([0, 3, 4, 4]);
    expect(y.data.length).toBe(0);
    expect(bn.numBatchesTracked).toBe(0);
    expect(Array.from(bn.runningVar!)).toEqual([1, 1, 1]);
  });

  it('BatchNorm3d and channels-last agree with the channels-first layout', () => {
    const N = 2, C = 3, D = 2, H = 3, W = 4;
    const x = f64(N * C * D * H * W, 9);
    const xl = new Float64Array(x.length);  // (N, D, H, W, C)
    const S = D * H * W;
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) xl[(n * S + s) * C + c] = x[(n * C + c) * S + s]!;
    const y = new BatchNorm3d(C, { dtype: 'float64' }).forward(tensor(x, [N, C, D, H, W]));
    const yl = new BatchNorm3d(C, { dtype: 'float64', channelsLast: true }).forward(tensor(xl, [N, D, H, W, C]));
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) {
      expect(yl.data[(n * S + s) * C + c]).toBeCloseTo(y.data[(n * C + c) * S + s]!, 13);
    }
  });

  it('matches the float64 reference on random shapes, layouts and sizes (property)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 9 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 40 }),
      fc.boolean(), fc.integer({ min: 0, max: 1e6 }), (N, C, S, channelsLast, seed) => {
        const shape = channelsLast ? [N, S, C] : [N, C, S];
        const x = f64(N * C * S, seed).map((v, i) => v * (1 + (i % 3)) + 5);
        const dy = f64(N * C * S, seed + 1);
        const weight = f64(C, seed + 2), bias = f64(C, seed + 3);
        const r = F.batchNorm({ data: x, shape }, { training: true, weight, bias, channelsLast });
        const ref = refForward(x, shape, channelsLast, 1e-5, weight, bias);
        expectClose(r.y.data, ref.y, { rtol: 1e-9, atol: 1e-9 }, 'y');
        const g = F.batchNormBackward({ data: dy, shape }, { data: x, shape }, { weight, saveMean: r.saveMean, saveInvstd: r.saveInvstd, channelsLast });
        const rg = refBackward(x, dy, shape, channelsLast, 1e-5, weight);
        expectClose(g.dx.data, rg.dx, { rtol: 1e-8, atol: 1e-9 }, 'dx');
        expectClose(g.dweight, rg.dweight, { rtol: 1e-9, atol: 1e-9 }, 'dweight');
        expectClose(g.dbias, rg.dbias, { rtol: 1e-9, atol: 1e-9 }, 'dbias');
      }), { numRuns: 60, seed: 42 });
  });
});

describe('backward', () => {
  // loss = sum(y * r): its gradient w.r.t. x is backward(dy = r).
  function numericGrad(f: (x: Float64Array) => Float64Array, x: Float64Array, r: Float64Array, i: number): number {
    const h = 1e-6, xp = x.slice(), xm = x.slice();
    xp[i]! += h; xm[i]! -= h;
    const lp = f(xp).reduce((s, v, j) => s + v * r[j]!, 0), lm = f(xm).reduce((s, v, j) => s + v * r[j]!, 0);
    return (lp - lm) / (2 * h);
  }

  for (const mode of ['train', 'eval'] as const) {
    it(`matches central finite differences in ${mode} mode (float64)`, () => {
      const shape = [3, 2, 5];
      const x = f64(30, 21).map((v, i) => v + (i % 2)), r = f64(30, 22);
      const make = () => {
        const bn = new BatchNorm1d(2, { dtype: 'float64' });
        bn.weight!.data.set([1.5, -0.7]); bn.bias!.data.set([0.2, 0.1]);
        bn.runningMean!.set([0.3, -0.2]); bn.runningVar!.set([1.7, 0.6]);
        return mode === 'train' ? bn : bn.eval();
      };
      const f = (xx: Float64Array) => make().forward(tensor(xx, shape)).data as Float64Array;
      const bn = make();
      bn.forward(tensor(x, shape));
      const dx = bn.backward(tensor(r, shape));
      for (let i = 0; i < 30; i++) expect(dx.data[i]).toBeCloseTo(numericGrad(f, x, r, i), 6);
      // dweight and dbias by differencing the parameters
      for (let c = 0; c < 2; c++) {
        const fw = (delta: number, which: 'weight' | 'bias') => {
          const m = make(); m[which]!.data[c]! += delta;
          return Array.from(m.forward(tensor(x, shape)).data).reduce((s, v, j) => s + v * r[j]!, 0);
        };
        expect(bn.weight!.grad![c]).toBeCloseTo((fw(1e-6, 'weight') - fw(-1e-6, 'weight')) / 2e-6, 6);
        expect(bn.bias!.grad![c]).toBeCloseTo((fw(1e-6, 'bias') - fw(-1e-6, 'bias')) / 2e-6, 6);
      }
    });
  }

  it('eval backward is dy * weight / sqrt(runningVar + eps)', () => {
    const bn = new BatchNorm1d(2, { dtype: 'float64' }).eval();
    bn.weight!.data.set([2, -3]); bn.runningVar!.set([0.5, 3]);
    bn.forward(tensor(f64(8, 3), [4, 2]));
    const dy = f64(8, 4);
    const dx = bn.backward(tensor(dy, [4, 2]));
    expectClose(dx.data, Array.from(dy, (v, i) => v * [2, -3][i % 2]! / Math.sqrt([0.5, 3][i % 2]! + 1e-5)), { rtol: 1e-14, atol: 1e-15 });
  });

  it('adds into weight.grad and bias.grad across calls; zeroGrad sets them to null (PyTorch 2) or zeroes them', () => {
    const bn = new BatchNorm1d(3, { dtype: 'float64' });
    const x = tensor(f64(15, 7), [5, 3]), dy = tensor(f64(15, 8), [5, 3]);
    bn.forward(x); bn.backward(dy);
    const once = { w: bn.weight!.grad!.slice(), b: bn.bias!.grad!.slice() };
    bn.forward(x); bn.backward(dy);
    expectClose(bn.weight!.grad!, Array.from(once.w, (v) => 2 * v), { rtol: 1e-14, atol: 0 });
    expectClose(bn.bias!.grad!, Array.from(once.b, (v) => 2 * v), { rtol: 1e-14, atol: 0 });
    bn.zeroGrad({ setToNone: false });
    expect(Array.from(bn.weight!.grad!)).toEqual([0, 0, 0]);
    bn.zeroGrad();
    expect(bn.weight!.grad).toBeNull();
    expect(bn.bias!.grad).toBeNull();
    bn.forward(x); bn.backward(dy);                       // a fresh grad holds exactly one backward's contribution
    expect(Array.from(bn.weight!.grad!)).toEqual(Array.from(once.w));
    expect(() => bn.zeroGrad({ setToNone: 1 } as never)).toThrow(TypeError);
  });

  it('throws before any forward', () => {
    expect(() => new BatchNorm2d(2).backward(tensor(new Float32Array(8), [1, 2, 2, 2]))).toThrow(/backward called before forward/);
  });
});

describe('parameters and buffers', () => {
  it('has PyTorch defaults and resets', () => {
    const bn = new BatchNorm2d(3);
    expect(bn.training).toBe(true);
    expect(bn.eps).toBe(1e-5);
    expect(bn.momentum).toBe(0.1);
    expect(Array.from(bn.weight!.data)).toEqual([1, 1, 1]);
    expect(Array.from(bn.bias!.data)).toEqual([0, 0, 0]);
    expect(bn.parameters()).toHaveLength(2);
    expect(bn.weight!.data).toBeInstanceOf(Float32Array);
    bn.forward(tensor(new Float32Array(24).map((_, i) => i), [2, 3, 2, 2]));
    bn.weight!.data[0] = 5;
    bn.resetParameters();
    expect(Array.from(bn.runningMean!)).toEqual([0, 0, 0]);
    expect(Array.from(bn.runningVar!)).toEqual([1, 1, 1]);
    expect(bn.numBatchesTracked).toBe(0);
    expect(bn.weight!.data[0]).toBe(1);
    expect(new BatchNorm1d(2, { affine: false }).parameters()).toEqual([]);
    expect(new BatchNorm1d(2, { dtype: 'float64' }).runningMean).toBeInstanceOf(Float64Array);
  });

  it('train() and eval() switch mode and return the layer', () => {
    const bn = new BatchNorm1d(2);
    expect(bn.eval()).toBe(bn);
    expect(bn.training).toBe(false);
    expect(bn.train()).toBe(bn);
    expect(bn.training).toBe(true);
    expect(bn.train(false).training).toBe(false);
  });
});
