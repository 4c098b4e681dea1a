// Every layer's and every functional op's async form (libuv pool, and for SyncBatchNorm the async collective)
// gives the same bits as its sync form: one test per layer.
import { describe, expect, it } from 'vitest';
import {
  BatchNorm2d, functional as F, GroupNorm, InstanceNorm2d, joinThreadGroup, LayerNorm, RMSNorm, SyncBatchNorm, tensor,
  threadGroup, type Module, type Tensor,
} from '../lib/index.js';
import { expectBitIdentical, randn } from './helpers/compare.js';

const SHAPE = [3, 4, 5, 6];
const x = tensor(randn(360, 1), SHAPE), dy = tensor(randn(360, 2), SHAPE);
const param = (n: number, seed: number) => Float64Array.from(randn(n, seed), (v) => 1 + 0.3 * v);

type Layer = Module & { weight: { grad: Float32Array | Float64Array | null } | null };

/** Two fresh copies of a layer: one driven by forward/backward, one by forwardAsync/backwardAsync, over 3 steps. */
async function sameBits(make: () => Layer): Promise<void> {
  const a = make(), b = make();
  for (let step = 0; step < 3; step++) {
    expectBitIdentical(await b.forwardAsync(x).then((t) => t.data), a.forward(x).data, `y step ${step}`);
    expectBitIdentical(await b.backwardAsync(dy).then((t) => t.data), a.backward(dy).data, `dx step ${step}`);
  }
  if (a.weight) expectBitIdentical(b.weight!.grad!, a.weight.grad!, 'weight.grad');
  expect(b.stateDict()).toEqual(a.stateDict());
}

describe('async forms equal sync forms, bit for bit', () => {
  it('BatchNorm2d', () => sameBits(() => new BatchNorm2d(4, { dtype: 'float64' })));
  it('InstanceNorm2d (affine, running stats)', () => sameBits(() => new InstanceNorm2d(4, { dtype: 'float64', affine: true, trackRunningStats: true })));
  it('GroupNorm', () => sameBits(() => new GroupNorm(2, 4, { dtype: 'float64' })));
  it('LayerNorm', () => sameBits(() => new LayerNorm([5, 6], { dtype: 'float64' })));
  it('RMSNorm', () => sameBits(() => new RMSNorm([6], { dtype: 'float64' })));

  it('SyncBatchNorm over 2 ranks in one thread (async == sync bit for bit over workers: sync-batch-norm.parity.test.ts)', async () => {
    // Two ranks in this thread (N = 1 and 2), driven concurrently by the async forms; the reference is BatchNorm
    // on the whole batch.
    const g = threadGroup(2), comms = [joinThreadGroup(g, 0), joinThreadGroup(g, 1)];
    const layers = comms.map((comm) => new SyncBatchNorm(4, { dtype: 'float64', comm })), ref = new BatchNorm2d(4, { dtype: 'float64' });
    const parts = [{ data: x.data.subarray(0, 120), shape: [1, 4, 5, 6] }, { data: x.data.subarray(120), shape: [2, 4, 5, 6] }];
    const dparts = [{ data: dy.data.subarray(0, 120), shape: [1, 4, 5, 6] }, { data: dy.data.subarray(120), shape: [2, 4, 5, 6] }];
    const ys = await Promise.all(layers.map((l, r) => l.forwardAsync(parts[r]!)));
    const dxs = await Promise.all(layers.map((l, r) => l.backwardAsync(dparts[r]!)));
    const y = ref.forward(x), dx = ref.backward(dy);
    const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${what}[${i}]`).toBeLessThan(1e-12);
    };
    close([...ys[0]!.data, ...ys[1]!.data], y.data, 'y');
    close([...dxs[0]!.data, ...dxs[1]!.data], dx.data, 'dx');
    expectBitIdentical(layers[0]!.runningVar!, layers[1]!.runningVar!, 'running_var on both ranks');
  });
});

describe('functional async forms equal the sync ones', () => {
  const w = param(4, 3), b = param(4, 4), w30 = param(30, 5), b30 = param(30, 6), w6 = param(6, 7);
  const pairs: [string, () => Promise<object>, () => object][] = [
    ['batchNorm', () => F.batchNormAsync(x, { training: true, weight: w, bias: b }), () => F.batchNorm(x, { training: true, weight: w, bias: b })],
    ['layerNorm', () => F.layerNormAsync(x, [5, 6], { weight: w30, bias: b30 }), () => F.layerNorm(x, [5, 6], { weight: w30, bias: b30 })],
    ['rmsNorm', () => F.rmsNormAsync(x, 6, { weight: w6 }), () => F.rmsNorm(x, 6, { weight: w6 })],
    ['groupNorm', () => F.groupNormAsync(x, 2, { weight: w, bias: b }), () => F.groupNorm(x, 2, { weight: w, bias: b })],
    ['instanceNorm', () => F.instanceNormAsync(x, { weight: w, bias: b }), () => F.instanceNorm(x, { weight: w, bias: b })],
  ];
  const ln = F.layerNorm(x, [5, 6], { weight: w30, bias: b30 }), rms = F.rmsNorm(x, 6, { weight: w6 });
  const gn = F.groupNorm(x, 2, { weight: w }), inn = F.instanceNorm(x, { weight: w }), bn = F.batchNorm(x, { training: true, weight: w });
  pairs.push(
    ['batchNormBackward', () => F.batchNormBackwardAsync(dy, x, { weight: w, saveMean: bn.saveMean, saveInvstd: bn.saveInvstd }),
      () => F.batchNormBackward(dy, x, { weight: w, saveMean: bn.saveMean, saveInvstd: bn.saveInvstd })],
    ['layerNormBackward', () => F.layerNormBackwardAsync(dy, x, [5, 6], { weight: w30, bias: b30, saveMean: ln.saveMean, saveInvstd: ln.saveInvstd }),
      () => F.layerNormBackward(dy, x, [5, 6], { weight: w30, bias: b30, saveMean: ln.saveMean, saveInvstd: ln.saveInvstd })],
    ['rmsNormBackward', () => F.rmsNormBackwardAsync(dy, x, 6, { weight: w6, saveInvRms: rms.saveInvRms }),
      () => F.rmsNormBackward(dy, x, 6, { weight: w6, saveInvRms: rms.saveInvRms })],
    ['groupNormBackward', () => F.groupNormBackwardAsync(dy, x, 2, { weight: w, saveMean: gn.saveMean, saveInvstd: gn.saveInvstd }),
      () => F.groupNormBackward(dy, x, 2, { weight: w, saveMean: gn.saveMean, saveInvstd: gn.saveInvstd })],
    ['instanceNormBackward', () => F.instanceNormBackwardAsync(dy, x, { weight: w, saveMean: inn.saveMean, saveInvstd: inn.saveInvstd }),
      () => F.instanceNormBackward(dy, x, { weight: w, saveMean: inn.saveMean, saveInvstd: inn.saveInvstd })],
  );
  for (const [name, asyncForm, syncForm] of pairs) {
    it(name, async () => {
      const a = new Map(Object.entries(await asyncForm())), s = new Map(Object.entries(syncForm()));
      expect([...a.keys()]).toEqual([...s.keys()]);
      for (const [key, vs] of s) {
        const va = a.get(key);
        const arr = (v: unknown) => (v && typeof v === 'object' && 'data' in v ? (v as Tensor).data : v);
        if (arr(vs) instanceof Float64Array || arr(vs) instanceof Float32Array) expectBitIdentical(arr(va) as Float64Array, arr(vs) as Float64Array, `${name}.${key}`);
        else expect(va, `${name}.${key}`).toEqual(vs);
      }
    });
  }
});
