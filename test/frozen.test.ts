// Parameter.requiresGrad = false (PyTorch's requires_grad): backward leaves the frozen grad exactly as it was
// (null stays null) while dx and the other parameter's grad match a float64 reference written from the formulas.
import { describe, expect, it, vi } from 'vitest';
import { native } from '../lib/binding.js';
import { BatchNorm2d, GroupNorm, InstanceNorm1d, LayerNorm, Parameter, RMSNorm, Sequential, tensor } from '../lib/index.js';
import { expectClose, randn } from './helpers/compare.js';
import { byRow, refBackward, refNormBackward } from './helpers/reference.js';

const tol = { rtol: 1e-10, atol: 1e-12 };
const f64 = (n: number, seed: number) => randn(n, seed, Float64Array) as Float64Array;

describe('Parameter.requiresGrad', () => {
  it('defaults to true and refuses a non-boolean, keeping its value', () => {
    const p = new Parameter(new Float32Array(2));
    expect(p.requiresGrad).toBe(true);
    expect(() => { (p as { requiresGrad: unknown }).requiresGrad = 0; }).toThrow(/boolean for Parameter.requiresGrad but received number 0/);
    expect(p.requiresGrad).toBe(true);
  });

  it('BatchNorm training: frozen weight keeps a null grad, bias and dx are the reference', () => {
    const shape = [2, 3, 2, 2], x = tensor(f64(24, 1), shape), dy = tensor(f64(24, 2), shape);
    const bn = new BatchNorm2d(3, { dtype: 'float64' });
    bn.weight!.data.set([0.5, -1.5, 2]);
    bn.weight!.requiresGrad = false;
    bn.forward(x);
    const dx = bn.backward(dy);
    const ref = refBackward(x.data, dy.data, shape, false, bn.eps, bn.weight!.data);
    expectClose(dx.data, ref.dx, tol, 'dx');
    expect(bn.weight!.grad).toBeNull();
    expectClose(bn.bias!.grad!, ref.dbias, tol, 'bias grad');
  });

  it('BatchNorm eval, both frozen (frozen BatchNorm of fine-tuning): dx = dy·w·invstd, grads untouched', () => {
    const shape = [2, 3, 4], x = tensor(f64(24, 3), [2, 3, 4]), dy = tensor(f64(24, 4), shape);
    const bn = new BatchNorm2d(3, { dtype: 'float64' });
    const net = new Sequential(bn);
    net.eval();
    bn.runningMean!.set([0.1, -0.2, 0.3]); bn.runningVar!.set([2, 0.5, 1.5]); bn.weight!.data.set([1, 2, -3]);
    for (const p of net.parameters()) p.requiresGrad = false;
    const before = Float64Array.from([7, 8, 9]);
    bn.bias!.grad = before.slice();
    const x4 = tensor(x.data, [2, 3, 4, 1]);
    bn.forward(x4);
    const dx = bn.backward(tensor(dy.data, [2, 3, 4, 1]));
    const want = dy.data.map((g, i) => {
      const c = Math.floor(i / 4) % 3;
      return g * bn.weight!.data[c]! / Math.sqrt(bn.runningVar![c]! + bn.eps);
    });
    expectClose(dx.data, want, tol, 'dx');
    expect(bn.weight!.grad).toBeNull();
    expect(Array.from(bn.bias!.grad!)).toEqual(Array.from(before));
  });

  it('skips the reductions only the frozen parameters needed (eval BatchNorm sums, LayerNorm column sums)', () => {
    const nb = native(), reduce = vi.spyOn(nb, 'backwardReduce'), train = vi.spyOn(nb, 'backwardTrain');
    // backwardTrain(P, A, B, K, threads, dy, x, dx, mean, invstd, gamma, sumDy, sumDyXmu, segments, w, dw, db, rms):
    // dw null = no per-position column sums.
    const columns = (call: number) => train.mock.calls[call]![15];
    try {
      const x = tensor(f64(24, 7), [2, 3, 4]), dy = tensor(f64(24, 8), [2, 3, 4]);
      const bn = new BatchNorm2d(3, { dtype: 'float64' }).eval(), x4 = tensor(x.data, [2, 3, 4, 1]), dy4 = tensor(dy.data, [2, 3, 4, 1]);
      bn.forward(x4); bn.backward(dy4);
      expect(reduce).toHaveBeenCalledTimes(1);
      bn.weight!.requiresGrad = false; bn.bias!.requiresGrad = false;
      bn.backward(dy4);
      expect(reduce).toHaveBeenCalledTimes(1);
      const ln = new LayerNorm(4, { dtype: 'float64' });
      ln.forward(x); train.mockClear(); ln.backward(dy);
      expect(columns(0)).toBeInstanceOf(Float64Array);
      ln.weight!.requiresGrad = false; ln.bias!.requiresGrad = false;
      ln.backward(dy);
      expect(columns(1)).toBeNull();
    } finally {
      reduce.mockRestore(); train.mockRestore();
    }
  });

  it('zeroGrad clears frozen grads too, as PyTorch zero_grad; to(dtype) and loadStateDict keep the flag', () => {
    const bn = new BatchNorm2d(2);
    bn.weight!.requiresGrad = false;
    bn.weight!.grad = new Float32Array([1, 2]);
    bn.zeroGrad();
    expect(bn.weight!.grad).toBeNull();
    bn.to('float64').loadStateDict(new BatchNorm2d(2, { dtype: 'float64' }).stateDict());
    expect(bn.weight!.requiresGrad).toBe(false);
    expect(bn.bias!.requiresGrad).toBe(true);
  });

  it('LayerNorm, RMSNorm, GroupNorm, InstanceNorm: frozen grads untouched, dx the reference', () => {
    const x = tensor(f64(24, 5), [2, 3, 4]), dy = tensor(f64(24, 6), [2, 3, 4]);
    const ln = new LayerNorm(4, { dtype: 'float64' });
    ln.weight!.data.set([1, -2, 0.5, 3]);
    ln.weight!.requiresGrad = false; ln.bias!.requiresGrad = false;
    ln.forward(x);
    expectClose(ln.backward(dy).data, refNormBackward(x.data, dy.data, byRow(24, 4), ln.eps, { weight: ln.weight!.data }).dx, tol, 'LayerNorm dx');
    expect(ln.weight!.grad).toBeNull(); expect(ln.bias!.grad).toBeNull();

    const rms = new RMSNorm(4, { dtype: 'float64' });
    rms.weight!.requiresGrad = false;
    rms.forward(x);
    expectClose(rms.backward(dy).data, refNormBackward(x.data, dy.data, byRow(24, 4), rms.eps ?? 2 ** -52, { rms: true }).dx, tol, 'RMSNorm dx');
    expect(rms.weight!.grad).toBeNull();

    for (const layer of [new GroupNorm(1, 3, { dtype: 'float64' }), new InstanceNorm1d(3, { affine: true, dtype: 'float64' })]) {
      layer.weight!.requiresGrad = false;
      layer.forward(x);
      layer.backward(dy);
      expect(layer.weight!.grad, layer.constructor.name).toBeNull();
      expect(layer.bias!.grad, layer.constructor.name).not.toBeNull();
    }
  });
});
