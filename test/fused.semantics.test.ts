// The fused activation's contract beyond the fixtures: bad input for each new option (clear TypeError/RangeError,
// state unchanged), SyncBatchNorm over two ranks equal to BatchNorm on the whole batch, and activation null
// leaving PyTorch's layers bit for bit as they were.
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, GroupNorm, InstanceNorm1d, joinThreadGroup, LayerNorm, SyncBatchNorm, tensor, threadGroup } from '../lib/index.js';
import { expectBitIdentical, expectClose, randn } from './helpers/compare.js';

const x = tensor(randn(2 * 3 * 4, 1, Float32Array) as Float32Array, [2, 3, 2, 2]);
const dy = tensor(randn(2 * 3 * 4, 2, Float32Array) as Float32Array, [2, 3, 2, 2]);
const r = tensor(randn(2 * 3 * 4, 3, Float32Array) as Float32Array, [2, 3, 2, 2]);
const snapshot = (bn: BatchNorm2d) => ({
  mean: Array.from(bn.runningMean!), variance: Array.from(bn.runningVar!), n: bn.numBatchesTracked,
  wg: bn.weight!.grad && Array.from(bn.weight!.grad), rg: bn.residualGrad && Array.from(bn.residualGrad.data),
});

describe('activation option', () => {
  it('defaults to null on every layer that takes it, and is refused when not null or relu', () => {
    for (const layer of [new BatchNorm2d(3), new InstanceNorm1d(3), new GroupNorm(1, 3), new LayerNorm(3), new SyncBatchNorm(3)]) {
      expect(layer.activation).toBeNull();
    }
    expect(() => new BatchNorm2d(3, { activation: 'gelu' as 'relu' })).toThrow(/Expected 'relu' or null for BatchNorm2d option "activation" but received string "gelu"/);
    expect(() => new GroupNorm(1, 3, { activation: true as unknown as 'relu' })).toThrow(TypeError);
    expect(() => new LayerNorm(3, { activation: 'ReLU' as 'relu' })).toThrow(TypeError);
  });

  it('null leaves the layer as PyTorch\'s, bit for bit (no activation applied)', () => {
    const a = new BatchNorm2d(3), b = new BatchNorm2d(3, { activation: null });
    expectBitIdentical(b.forward(x).data, a.forward(x).data as Float32Array, 'y');
    expectBitIdentical(b.backward(dy).data, a.backward(dy).data as Float32Array, 'dx');
    expect(Array.from(a.forward(x).data).some((v) => v < 0)).toBe(true);
  });

  it('relu without residual: y ≥ 0, and equals relu of the plain layer', () => {
    const plain = new LayerNorm([2, 2]).forward(x), fused = new LayerNorm([2, 2], { activation: 'relu' }).forward(x);
    expectClose(fused.data, Array.from(plain.data, (v) => Math.max(v, 0)), { rtol: 0, atol: 0 });
  });
});

describe('bad input for residual and residualOut: clear errors, no state change', () => {
  it('forward', () => {
    const bn = new BatchNorm2d(3, { activation: 'relu' });
    bn.forward(x, { residual: r }); bn.backward(dy);
    const before = snapshot(bn);
    expect(() => new BatchNorm2d(3).forward(x, { residual: r })).toThrow(/residual option needs a layer built with activation 'relu'/);
    expect(() => bn.forward(x, { residual: tensor(new Float64Array(24), [2, 3, 2, 2]) } as never)).toThrow(/expected a float32 residual/);
    expect(() => bn.forward(x, { residual: tensor(new Float32Array(24), [2, 3, 4, 1]) })).toThrow(/residual of the input's shape \[2, 3, 2, 2\] but got \[2, 3, 4, 1\]/);
    expect(() => bn.forward(x, { residual: r, out: r.data })).toThrow(/out must not share memory with the residual/);
    expect(() => bn.forward(x, { residual: [1, 2] as never })).toThrow(TypeError);
    expect(() => bn.forward(x, { residul: r } as never)).toThrow(/unknown option "residul".*did you mean "residual"/);
    expect(snapshot(bn)).toEqual(before);
  });

  it('backward', () => {
    const bn = new BatchNorm2d(3, { activation: 'relu' });
    expect(() => bn.backward(dy)).toThrow(/backward called before forward/);
    bn.forward(x);
    expect(() => bn.backward(dy, { residualOut: new Float32Array(24) })).toThrow(/residualOut needs a forward with a residual/);
    bn.forward(x, { residual: r });
    const before = snapshot(bn);
    expect(() => bn.backward(dy, { residualOut: new Float32Array(5) })).toThrow(/residualOut to be a float32 array of length 24/);
    expect(() => bn.backward(dy, { residualOut: new Float64Array(24) } as never)).toThrow(/expected residualOut to be a float32 array \(the layer's dtype\)/);
    expect(() => bn.backward(dy, { residualOut: dy.data })).toThrow(/residualOut must not share memory/);
    expect(() => bn.backward(dy, { residualOut: r.data })).toThrow(/residualOut must not share memory/);
    const shared = new Float32Array(24);
    expect(() => bn.backward(dy, { residualOut: shared, out: shared })).toThrow(/residualOut must not share memory/);
    expect(() => bn.backward(tensor(new Float32Array(24), [2, 3, 4, 1]))).toThrow(/dy of the output's shape/);
    expect(() => bn.backward(tensor(new Float64Array(24), [2, 3, 2, 2]))).toThrow(/expected float32 dy/);
    expect(() => new BatchNorm2d(3).backward(dy, { residualOut: new Float32Array(24) } as never)).toThrow(/residualOut needs a layer built with activation/);
    expect(snapshot(bn)).toEqual(before);
  });
});

describe('backward without residual runs in place in dx', () => {
  it('gives the same bits with and without out, for each layer kind; out may not be dy', async () => {
    const makers = [() => new BatchNorm2d(3, { activation: 'relu' }), () => new GroupNorm(3, 3, { activation: 'relu' }),
      () => new LayerNorm([2, 2], { activation: 'relu' }), () => new InstanceNorm1d(3, { activation: 'relu', affine: true })];
    for (const make of makers) {
      const a = make(), b = make(), shaped = (t: typeof x) => (a instanceof InstanceNorm1d ? tensor(t.data, [2, 3, 4]) : t);
      a.forward(shaped(x)); b.forward(shaped(x));
      const dx = a.backward(shaped(dy)), out = new Float32Array(24);
      expect((await b.backwardAsync(shaped(dy), { out })).data).toBe(out);
      expectBitIdentical(out, dx.data as Float32Array, a.constructor.name);
      expect(b.residualGrad).toBeNull();
      expect(() => b.backward(shaped(dy), { out: dy.data })).toThrow(/out must not share memory with dy/);
    }
  });
});

describe('SyncBatchNorm with activation', () => {
  it('two ranks equal BatchNorm + residual + relu on the whole batch', async () => {
    const g = threadGroup(2, { timeoutMs: 30_000 });
    const ranks = [0, 1].map((k) => new SyncBatchNorm(3, { comm: joinThreadGroup(g, k), activation: 'relu', dtype: 'float64' }));
    const whole = new BatchNorm2d(3, { activation: 'relu', dtype: 'float64' });
    const X = Float64Array.from(x.data), R = Float64Array.from(r.data), DY = Float64Array.from(dy.data), half = 12;
    const yWhole = whole.forward(tensor(X, x.shape), { residual: tensor(R, x.shape) });
    const dxWhole = whole.backward(tensor(DY, x.shape));
    const shard = (a: Float64Array, k: number) => tensor(a.slice(k * half, (k + 1) * half), [1, 3, 2, 2]);
    const ys = await Promise.all(ranks.map((l, k) => l.forwardAsync(shard(X, k), { residual: shard(R, k) })));
    const dxs = await Promise.all(ranks.map((l, k) => l.backwardAsync(shard(DY, k))));
    const tol = { rtol: 1e-12, atol: 1e-12 };
    expectClose([...ys[0]!.data, ...ys[1]!.data], yWhole.data, tol, 'y');
    expectClose([...dxs[0]!.data, ...dxs[1]!.data], dxWhole.data, tol, 'dx');
    expectClose([...ranks[0]!.residualGrad!.data, ...ranks[1]!.residualGrad!.data], whole.residualGrad!.data, tol, 'residual grad');
    expect(SyncBatchNorm.fromBatchNorm(whole, joinThreadGroup(threadGroup(1), 0)).activation).toBe('relu');
  });
});
