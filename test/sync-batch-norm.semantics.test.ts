// SyncBatchNorm semantics beyond the PyTorch fixtures: BatchNorm bit for bit without a communicator or with one
// rank, errors that every rank throws alike (global count 1, disagreeing ranks, a rank that never arrives), eval
// without communication, fromBatchNorm and state dicts, argument checks.
import { describe, expect, it } from 'vitest';
import {
  BatchNorm2d, functional as F, joinThreadGroup, SyncBatchNorm, tensor, threadGroup, type Communicator, type Tensor,
} from '../lib/index.js';
import { expectBitIdentical, randn } from './helpers/compare.js';
import { runRanks } from './helpers/ranks.js';

const input = (shape: number[], seed: number) => tensor(randn(shape.reduce((a, b) => a * b, 1), seed, Float32Array), shape);

/** Ranks of one group, all in this thread (their async forms can run concurrently here). */
const ranksHere = (size: number, timeoutMs = 30_000) => {
  const g = threadGroup(size, { timeoutMs });
  return Array.from({ length: size }, (_, r) => joinThreadGroup(g, r));
};

const messages = (outcomes: PromiseSettledResult<unknown>[]) =>
  outcomes.map((o) => (o.status === 'rejected' ? `${(o.reason as Error).name}: ${(o.reason as Error).message}` : 'resolved'));

describe('SyncBatchNorm without synchronization is BatchNorm, bit for bit', () => {
  for (const comm of ['no comm', 'a group of size 1'] as const) {
    it(`${comm}: outputs, gradients and running stats over several steps, NCHW and channels-last`, () => {
      for (const channelsLast of [false, true]) {
        const c: Communicator | null = comm === 'no comm' ? null : joinThreadGroup(threadGroup(1), 0);
        const sync = new SyncBatchNorm(5, { comm: c, channelsLast, momentum: null }), ref = new BatchNorm2d(5, { channelsLast, momentum: null });
        for (let step = 0; step < 3; step++) {
          const x = input(channelsLast ? [4, 3, 6, 5] : [4, 5, 3, 6], step), dy = input(x.shape as number[], 10 + step);
          expectBitIdentical(sync.forward(x).data, ref.forward(x).data, `y step ${step}`);
          expectBitIdentical(sync.backward(dy).data, ref.backward(dy).data, `dx step ${step}`);
        }
        expectBitIdentical(sync.weight!.grad!, ref.weight!.grad!, 'weight.grad');
        expectBitIdentical(sync.runningVar!, ref.runningVar!, 'running_var');
        expect(sync.numBatchesTracked).toBe(3);
        expect(sync.stateDict()).toEqual(ref.stateDict());
      }
    });
  }

  it('F.batchNorm / F.batchNormBackward with a size-1 comm equal the plain calls', () => {
    const c = joinThreadGroup(threadGroup(1), 0), x = input([6, 3, 4, 4], 1), dy = input([6, 3, 4, 4], 2);
    const run = (comm: Communicator | undefined) => {
      const rm = new Float32Array(3), rv = new Float32Array(3).fill(1);
      const r = F.batchNorm(x, { training: true, runningMean: rm, runningVar: rv, comm });
      return { r, rv, g: F.batchNormBackward(dy, x, { saveMean: r.saveMean, saveInvstd: r.saveInvstd, comm }) };
    };
    const a = run(c), b = run(undefined);
    expectBitIdentical(a.r.y.data, b.r.y.data, 'y');
    expectBitIdentical(a.rv, b.rv, 'running_var');
    expectBitIdentical(a.g.dx.data, b.g.dx.data, 'dx');
  });
});

describe('errors every rank throws alike', () => {
  it('a global count of 1 value per channel: the same RangeError on every rank (blocking calls in workers), no state changed', async () => {
    const g = threadGroup(2, { timeoutMs: 30_000 });
    const outs = await runRanks<{ error?: { name: string; message: string }; numBatchesTracked: number; runningVar: Float32Array }>(
      g, 'forwardOnce', [{ C: 3, dtype: 'float32', shape: [1, 3] }, { C: 3, dtype: 'float32', shape: [0, 3] }]);
    const errs = outs.map((o) => (o.ok ? o.result.error : undefined));
    expect(errs[0]?.name).toBe('RangeError');
    expect(errs[0]?.message).toMatch(/^Expected more than 1 value per channel when training, got 1 value per channel in the global batch of 2 ranks \(values per channel on ranks 0…1: 1, 0\)/);
    expect(errs[1]).toEqual(errs[0]);
    for (const o of outs) {
      expect(o.ok && o.result.numBatchesTracked).toBe(0);
      expect(o.ok && Array.from(o.result.runningVar)).toEqual([1, 1, 1]);
    }
  });

  it('one value per channel on a rank is fine when the global batch has more', async () => {
    const [a, b] = ranksHere(2), x = input([1, 3], 4);
    const layers = [new SyncBatchNorm(3, { comm: a }), new SyncBatchNorm(3, { comm: b })];
    const [ya, yb] = await Promise.all(layers.map((l) => l.forwardAsync(x)));
    // Two equal rows: the global batch has zero variance, so both normalize to the bias.
    expect(Array.from(ya!.data)).toEqual([0, 0, 0]);
    expect(Array.from(yb!.data)).toEqual([0, 0, 0]);
  });

  const disagreements: [string, (r: number) => [number, object, number[]]][] = [
    ['numFeatures', (r) => [3 + r, {}, [2, 3 + r, 4]]],
    ['dtype', (r) => [3, { dtype: r === 0 ? 'float32' : 'float64' }, [2, 3, 4]]],
    ['layout', (r) => [3, { channelsLast: r === 1 }, r === 1 ? [2, 4, 3] : [2, 3, 4]]],
  ];
  for (const [what, setup] of disagreements) {
    it(`ranks that disagree on ${what}: an Error on every rank, nothing hangs, no state changed`, async () => {
      const comms = ranksHere(3);
      const layers = comms.map((comm, r) => { const [C, o] = setup(r); return new SyncBatchNorm(C, { ...o, comm }); });
      const xs = layers.map((l, r) => {
        const shape = setup(r)[2];
        const n = shape.reduce((a, b) => a * b, 1);
        return { data: l.dtype === 'float32' ? randn(n, r, Float32Array) : randn(n, r), shape } as Tensor;
      });
      const m = messages(await Promise.allSettled(layers.map((l, r) => l.forwardAsync(xs[r]!))));
      for (const msg of m) expect(msg).toMatch(/^Error: SyncBatchNorm: /);
      if (what === 'numFeatures') for (const msg of m) expect(msg).toMatch(/statistics all-gather \(4 \+ 2 × numFeatures values per rank\) failed on this rank \(input \[2, \d, 4\]: \d channels.*ranks called different collectives/);
      else for (const msg of m) expect(msg).toBe(m[0]);
      if (what !== 'numFeatures') expect(m[0]).toMatch(/ranks disagree on numFeatures, dtype or layout \(rank 0: 3 channels, float32, channels first; rank 1: 3 channels, float/);
      for (const l of layers) expect(l.numBatchesTracked).toBe(0);
    });
  }

  it('a rank that never calls: the others throw a timeout Error naming the operation and the rank; state unchanged', async () => {
    const comms = ranksHere(3, 200);
    const layers = [new SyncBatchNorm(3, { comm: comms[0] }), new SyncBatchNorm(3, { comm: comms[1] })];
    const m = messages(await Promise.allSettled(layers.map((l) => l.forwardAsync(input([2, 3], 1)))));
    for (const msg of m) expect(msg).toMatch(/SyncBatchNorm: the statistics all-gather .* failed .*thread group: allGather timed out after 200 ms waiting for rank 2 \(group of 3\)/);
    for (const l of layers) expect(l.numBatchesTracked).toBe(0), expect(Array.from(l.runningMean!)).toEqual([0, 0, 0]);
    // The group is closed: the late rank and the others throw instead of going out of step.
    expect(() => new SyncBatchNorm(3, { comm: comms[2] }).forward(input([2, 3], 1))).toThrow(/timed out .* rank 2/);
  });

  it('a worker rank that never calls (blocking calls in workers)', async () => {
    const g = threadGroup(2, { timeoutMs: 200 });
    const outs = await runRanks<{ error?: { message: string } } | null>(g, 'forwardOnce', [{ C: 2, dtype: 'float64', shape: [3, 2] }, null]);
    expect(outs[0]!.ok && outs[0]!.result?.error?.message).toMatch(/allGather timed out after 200 ms waiting for rank 1/);
  });
});

describe('eval, fromBatchNorm, state dicts', () => {
  it('eval forward and backward on one rank alone complete (eval never communicates)', () => {
    const comm = joinThreadGroup(threadGroup(2, { timeoutMs: 60_000 }), 0);  // rank 1 never joins
    for (const trackRunningStats of [true, false]) {
      const s = new SyncBatchNorm(3, { comm, trackRunningStats }).eval(), ref = new BatchNorm2d(3, { trackRunningStats }).eval();
      const x = input([2, 3, 4, 4], 9);
      expectBitIdentical(s.forward(x).data, ref.forward(x).data, `eval y, trackRunningStats ${trackRunningStats}`);
      expectBitIdentical(s.backward(x).data, ref.backward(x).data, 'eval dx');
    }
  });

  it('fromBatchNorm copies options and state; checkpoints go both ways under BatchNorm\'s keys', () => {
    const bn = new BatchNorm2d(4, { momentum: 0.3, eps: 1e-3 });
    bn.forward(input([3, 4, 2, 2], 1)); bn.backward(input([3, 4, 2, 2], 2));
    const comm = joinThreadGroup(threadGroup(1), 0), s = SyncBatchNorm.fromBatchNorm(bn.eval(), comm);
    expect([s.momentum, s.eps, s.training, s.comm, s.numBatchesTracked]).toEqual([0.3, 1e-3, false, comm, 1]);
    expect(s.stateDict()).toEqual(bn.stateDict());
    expect(Object.keys(s.stateDict())).toEqual(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']);
    expectBitIdentical(s.weight!.grad!, bn.weight!.grad!, 'grad copied');
    expect(s.runningMean).not.toBe(bn.runningMean);  // a copy, not shared
    const back = new BatchNorm2d(4);
    back.loadStateDict(s.stateDict());
    expect(back.stateDict()).toEqual(bn.stateDict());
  });

  it('takes (N, C, *) of any rank >= 2', () => {
    const s = new SyncBatchNorm(2);
    expect(s.forward(input([2, 2, 2, 1, 2, 2], 3)).shape).toEqual([2, 2, 2, 1, 2, 2]);
    expect(() => s.forward(input([4], 3))).toThrow(/SyncBatchNorm: expected at least 2D input \(got 1D input of shape \[4\]\)/);
  });

  it('refuses what is not a Communicator', () => {
    expect(() => new SyncBatchNorm(2, { comm: {} as Communicator })).toThrow(TypeError);
    expect(() => new SyncBatchNorm(2, { comm: 3 as unknown as Communicator })).toThrow(/Expected a Communicator/);
    expect(() => F.batchNorm(input([2, 2], 1), { training: true, comm: { size: 2 } as unknown as Communicator })).toThrow(TypeError);
    expect(() => SyncBatchNorm.fromBatchNorm({} as BatchNorm2d, joinThreadGroup(threadGroup(1), 0))).toThrow(TypeError);
    expect(() => SyncBatchNorm.fromBatchNorm(new BatchNorm2d(2), null as unknown as Communicator)).toThrow(TypeError);
  });
});
