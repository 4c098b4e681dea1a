// Async calls run off the event loop, pin their buffers, and never interleave on one layer.
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, tensor } from '../lib/index.js';
import { expectBitIdentical, randn } from './helpers/compare.js';

describe('forwardAsync / backwardAsync', () => {
  it('keep the event loop turning during a large forward', async () => {
    const shape = [32, 64, 56, 56];  // 6.4M floats: tens of milliseconds of kernel work
    const x = tensor(randn(32 * 64 * 56 * 56, 5, Float32Array), shape);
    const bn = new BatchNorm2d(64);
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 0);
    let total = 0;
    for (let i = 0; i < 5; i++) { await bn.forwardAsync(x); total++; }
    clearInterval(timer);
    expect(total).toBe(5);
    expect(ticks).toBeGreaterThan(0);
  });

  it('refuse a second call on a busy layer, with a clear error, and do not corrupt it', async () => {
    const x = tensor(randn(4 * 3 * 64 * 64, 6, Float32Array), [4, 3, 64, 64]);
    const bn = new BatchNorm2d(3), ref = new BatchNorm2d(3);
    const p = bn.forwardAsync(x);
    await expect(bn.forwardAsync(x)).rejects.toThrow(/BatchNorm2d is busy with forwardAsync/);
    expect(() => bn.forward(x)).toThrow(/busy with forwardAsync/);
    expect(() => bn.loadStateDict(ref.stateDict())).toThrow(/busy/);
    const y = await p;
    expectBitIdentical(y.data, ref.forward(x).data, 'y');
    expectBitIdentical(bn.runningMean!, ref.runningMean!, 'running_mean');
    expect(bn.numBatchesTracked).toBe(1);
  });

  it('hundreds of concurrent calls on many layers equal the sync results', async () => {
    const layers = Array.from({ length: 20 }, () => new BatchNorm2d(4));
    const refs = Array.from({ length: 20 }, () => new BatchNorm2d(4));
    const inputs = layers.map((_, i) => tensor(randn(3 * 4 * 20 * 20, 100 + i, Float32Array), [3, 4, 20, 20]));
    for (let round = 0; round < 10; round++) {
      const outs = await Promise.all(layers.map((l, i) => l.forwardAsync(inputs[i]!)));
      outs.forEach((y, i) => expectBitIdentical(y.data, refs[i]!.forward(inputs[i]!).data, `layer ${i} round ${round}`));
      const dxs = await Promise.all(layers.map((l, i) => l.backwardAsync(inputs[(i + 1) % 20]!)));
      dxs.forEach((dx, i) => expectBitIdentical(dx.data, refs[i]!.backward(inputs[(i + 1) % 20]!).data, `dx ${i}`));
    }
    layers.forEach((l, i) => expectBitIdentical(l.runningVar!, refs[i]!.runningVar!, `running_var ${i}`));
  });

  it('a bad input rejects the promise and changes nothing', async () => {
    const bn = new BatchNorm2d(3);
    await expect(bn.forwardAsync(tensor(new Float32Array(8), [2, 4, 1, 1]))).rejects.toThrow(RangeError);
    expect(bn.numBatchesTracked).toBe(0);
    await expect(bn.backwardAsync(tensor(new Float32Array(8), [2, 4, 1, 1]))).rejects.toThrow(/before forward/);
  });
});
