// foldBatchNorm against the composition it replaces, written here from the formulas: Linear (or Conv) then
// BatchNorm in eval mode, z = (W x + b − runningMean) / sqrt(runningVar + eps) · gamma + beta.
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, foldBatchNorm, tensor, type DType } from '../lib/index.js';
import { expectClose, randn } from './helpers/compare.js';

/** A BatchNorm with non-trivial statistics and affine parameters. */
function trained(C: number, dtype: DType, two = false) {
  const bn = two ? new BatchNorm2d(C, { dtype }) : new BatchNorm1d(C, { dtype });
  bn.runningMean!.set(randn(C, 11, Float64Array));
  bn.runningVar!.set(Array.from(randn(C, 12, Float64Array), (v) => 0.5 + v * v));
  bn.weight!.data.set(randn(C, 13, Float64Array));
  bn.bias!.data.set(randn(C, 14, Float64Array));
  return bn.eval();
}

const bnEval = (v: number, c: number, bn: ReturnType<typeof trained>) =>
  (v - bn.runningMean![c]!) / Math.sqrt(bn.runningVar![c]! + bn.eps) * bn.weight!.data[c]! + bn.bias!.data[c]!;

describe('foldBatchNorm', () => {
  for (const dtype of ['float32', 'float64'] as const) {
    const Arr = dtype === 'float32' ? Float32Array : Float64Array;
    const tol = dtype === 'float32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 1e-12, atol: 1e-12 };

    it(`Linear (out, in) → BatchNorm1d(eval) equals the folded Linear (${dtype})`, () => {
      const out = 4, inF = 3, bn = trained(out, dtype);
      const W = Arr.from(randn(out * inF, 1, Float64Array)), b = Arr.from(randn(out, 2, Float64Array));
      const f = foldBatchNorm(bn, { weight: tensor(W, [out, inF]), bias: b });
      expect(f.weight).toBeInstanceOf(Arr);
      const x = randn(inF, 3, Float64Array);
      const composed: number[] = [], folded: number[] = [];
      for (let o = 0; o < out; o++) {
        let y = b[o]!, z = f.bias[o]!;
        for (let i = 0; i < inF; i++) { y += W[o * inF + i]! * x[i]!; z += f.weight[o * inF + i]! * x[i]!; }
        composed.push(bnEval(y, o, bn)); folded.push(z);
      }
      expectClose(folded, composed, tol, 'folded output');
      // the layer itself agrees with the composition written here
      const yLin = new Arr(composed.length).map((_, o) => { let y = b[o]!; for (let i = 0; i < inF; i++) y += W[o * inF + i]! * x[i]!; return y; });
      expectClose(bn.forward(tensor(yLin, [1, out])).data, composed, tol, 'BatchNorm1d eval');
    });

    it(`Conv (out, in, 3, 3) → BatchNorm2d(eval) equals the folded Conv, no conv bias (${dtype})`, () => {
      const out = 3, inC = 2, k = 3, H = 4, bn = trained(out, dtype, true);
      const W = Arr.from(randn(out * inC * k * k, 4, Float64Array));
      const f = foldBatchNorm(bn, { weight: W });
      const x = randn(inC * H * H, 5, Float64Array), Ho = H - k + 1;
      const conv = (w: ArrayLike<number>, o: number, r: number, c: number) => {
        let s = 0;
        for (let i = 0; i < inC; i++) for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) {
          s += w[((o * inC + i) * k + u) * k + v]! * x[(i * H + r + u) * H + c + v]!;
        }
        return s;
      };
      const composed: number[] = [], folded: number[] = [];
      for (let o = 0; o < out; o++) for (let r = 0; r < Ho; r++) for (let c = 0; c < Ho; c++) {
        composed.push(bnEval(conv(W, o, r, c), o, bn));
        folded.push(conv(f.weight, o, r, c) + f.bias[o]!);
      }
      expectClose(folded, composed, tol, 'folded conv');
    });
  }

  it('without affine: gamma 1, beta 0', () => {
    const bn = new BatchNorm1d(2, { affine: false, dtype: 'float64' });
    bn.runningMean!.set([1, -1]); bn.runningVar!.set([3, 0]);
    const f = foldBatchNorm(bn, { weight: new Float64Array([2, 4]) });
    expectClose(f.weight, [2 / Math.sqrt(3 + 1e-5), 4 / Math.sqrt(1e-5)], { rtol: 1e-14, atol: 0 });
    expectClose(f.bias, [-1 / Math.sqrt(3 + 1e-5), 1 / Math.sqrt(1e-5)], { rtol: 1e-14, atol: 0 });
  });

  it('bad input: clear errors, the layer and the weight unchanged', () => {
    const bn = trained(3, 'float32'), w = new Float32Array(6).fill(1), rm = Array.from(bn.runningMean!);
    expect(() => foldBatchNorm(new BatchNorm1d(3, { trackRunningStats: false }), { weight: w })).toThrow(/no running statistics/);
    expect(() => foldBatchNorm(bn, { weight: new Float32Array(7) })).toThrow(/positive multiple of 3.*got length 7/);
    expect(() => foldBatchNorm(bn, { weight: tensor(w, [2, 3]) })).toThrow(/shape \(3, in, …\).*got shape \[2, 3\]|shape \(3, in, …\).*got shape/);
    expect(() => foldBatchNorm(bn, { weight: new Float64Array(6) })).toThrow(TypeError);
    expect(() => foldBatchNorm(bn, { weight: w, bias: new Float32Array(2) })).toThrow(/bias of length 3.*got length 2/);
    expect(() => foldBatchNorm(bn, { weight: [1, 2, 3] as unknown as Float32Array })).toThrow(TypeError);
    expect(() => foldBatchNorm({} as BatchNorm1d, { weight: w })).toThrow(TypeError);
    expect(() => foldBatchNorm(bn, { weight: w, scale: 2 } as never)).toThrow(/unknown option "scale"/);
    expect(Array.from(bn.runningMean!)).toEqual(rm);
    expect(Array.from(w)).toEqual([1, 1, 1, 1, 1, 1]);
  });
});
