// The thread-group Communicator on its own: every collective against an independent computation, sync (worker
// ranks, the main thread as one of them) and async (several ranks in one thread), chunking, mismatches, timeouts,
// close, and argument checks.
import { describe, expect, it } from 'vitest';
import { joinThreadGroup, threadGroup, type Communicator, type FloatArray } from '../lib/index.js';
import { expectBitIdentical } from './helpers/compare.js';
import { results, runRanks } from './helpers/ranks.js';

/** Values whose double sum depends on the order (1e16 + 1 - 1e16 = 0 in double, but 1 in another order). */
const VALUES = [[1e16, 0.1, 3, -7.25], [1, 0.2, -1e-9, 1e300], [-1e16, 0.3, 5.5, -1e300]];

/** Rank-order double sum, rounded once, written out here independently of lib/distributed/communicator.ts. */
function expected(dtype: 'float32' | 'float64', op: 'sum' | 'mean'): FloatArray {
  const out = dtype === 'float32' ? new Float32Array(4) : new Float64Array(4);
  for (let i = 0; i < 4; i++) {
    const v = VALUES.map((row) => (dtype === 'float32' ? Math.fround(row[i]!) : row[i]!));
    const s = (v[0]! + v[1]!) + v[2]!;
    out[i] = op === 'mean' ? s / 3 : s;
  }
  return out;
}

const joinAll = (size: number, opts?: Parameters<typeof threadGroup>[1]) => {
  const g = threadGroup(size, opts);
  return Array.from({ length: size }, (_, r) => joinThreadGroup(g, r));
};

describe('thread group collectives (async, all ranks in this thread)', () => {
  it('allReduce sum and mean equal the rank-order double reduction, the same bits on every rank', async () => {
    for (const dtype of ['float32', 'float64'] as const) {
      for (const op of ['sum', 'mean'] as const) {
        const comms = joinAll(3);
        const bufs = comms.map((_, r) => (dtype === 'float32' ? Float32Array.from(VALUES[r]!) : Float64Array.from(VALUES[r]!)));
        await Promise.all(comms.map((c, r) => c.allReduceAsync(bufs[r]!, op)));
        bufs.forEach((b, r) => expectBitIdentical(b, expected(dtype, op), `${dtype} ${op} rank ${r}`));
        expect(bufs[0]![0]).toBe(0);  // 1e16 + 1 - 1e16 in rank order (float64); the order is part of the contract
      }
    }
  });

  it('allGather returns every rank\'s values in rank order; buffers longer than the staging area go in chunks', async () => {
    const comms = joinAll(3, { chunkElements: 7 });
    const local = comms.map((_, r) => Float64Array.from({ length: 100 }, (_, i) => r * 1000 + i));
    const out = await Promise.all(comms.map((c, r) => c.allGatherAsync(local[r]!)));
    const want = Float64Array.from({ length: 300 }, (_, i) => Math.floor(i / 100) * 1000 + (i % 100));
    out.forEach((o, r) => expectBitIdentical(o, want, `allGather rank ${r}`));
    const big = comms.map((_, r) => Float32Array.from({ length: 50 }, (_, i) => r + i / 8));
    await Promise.all(comms.map((c, r) => c.allReduceAsync(big[r]!, 'sum')));
    big.forEach((b) => expectBitIdentical(b, Float32Array.from({ length: 50 }, (_, i) => 3 + 3 * (i / 8)), 'chunked allReduce'));
  });

  it('broadcast copies the root\'s values (root 2) into every rank, float32 and float64', async () => {
    const comms = joinAll(4);
    for (const T of [Float32Array, Float64Array]) {
      const bufs = comms.map((_, r) => T.from([r, r + 0.5, -r]));
      await Promise.all(comms.map((c, r) => c.broadcastAsync(bufs[r]!, 2)));
      bufs.forEach((b) => expectBitIdentical(b, T.from([2, 2.5, -2]), `broadcast ${T.name}`));
    }
  });

  it('barrier: no rank leaves before the last one arrives', async () => {
    const [a, b] = joinAll(2), log: string[] = [];
    const first = a!.barrierAsync().then(() => log.push('a passed'));
    await new Promise((r) => setTimeout(r, 50));
    log.push('b arrives');
    await Promise.all([first, b!.barrierAsync().then(() => log.push('b passed'))]);
    expect(log[0]).toBe('b arrives');
    expect(log.slice(1).sort()).toEqual(['a passed', 'b passed']);
  });

  it('ranks that disagree on length, dtype, root or operation all throw the same Error; the group stays usable', async () => {
    const comms = joinAll(2);
    const cases: ((c: Communicator, r: number) => Promise<unknown>)[] = [
      (c, r) => c.allReduceAsync(new Float64Array(3 + r)),
      (c, r) => c.allReduceAsync(r === 0 ? new Float32Array(3) : new Float64Array(3)),
      (c, r) => c.allReduceAsync(new Float64Array(3), r === 0 ? 'sum' : 'mean'),
      (c) => c.broadcastAsync(new Float64Array(3), c.rank),
      (c, r) => (r === 0 ? c.barrierAsync() : c.allGatherAsync(new Float64Array(1))),
    ];
    for (const call of cases) {
      const outcomes = await Promise.allSettled(comms.map((c, r) => call(c, r)));
      const reasons = outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : 'resolved'));
      expect(reasons[0]).toMatch(/ranks called different collectives \(rank 0: .*rank 1: /);
      expect(reasons[1]).toBe(reasons[0]);
      const ok = comms.map((_, r) => Float64Array.of(r + 1));
      await Promise.all(comms.map((c, r) => c.allReduceAsync(ok[r]!)));
      expect(Array.from(ok[1]!)).toEqual([3]);
    }
  });

  it('a rank that does not arrive: every waiting rank throws naming the operation and the missing ranks; the group is closed', async () => {
    const comms = joinAll(3, { timeoutMs: 150 });
    const t0 = performance.now();
    const outcomes = await Promise.allSettled([comms[0]!.allReduceAsync(new Float64Array(2)), comms[1]!.allReduceAsync(new Float64Array(2))]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason.message).toMatch(/allReduce timed out after 150 ms waiting for rank 2 \(group of 3\); the group is closed/);
    }
    // Every later call, on every rank, the late one included, throws instead of going out of step.
    for (const c of comms) expect(() => c.barrier()).toThrow(/allReduce timed out .* rank 2/);
    await expect(comms[2]!.allGatherAsync(new Float64Array(1))).rejects.toThrow(/the group is closed/);
  });

  it('close(): later calls on that rank throw; ranks waiting for it fail at once, naming it', async () => {
    const [a, b] = joinAll(2, { timeoutMs: 60_000 });
    const waiting = a!.barrierAsync();
    b!.close();
    b!.close();  // idempotent
    await expect(waiting).rejects.toThrow(/barrier failed: rank 1 left the group \(close\(\)\)/);
    expect(() => b!.barrier()).toThrow(/after close\(\)/);
    await expect(b!.allReduceAsync(new Float64Array(1))).rejects.toThrow(/after close\(\)/);
  });

  it('one call at a time per communicator', async () => {
    const [a, b] = joinAll(2);
    const p = a!.barrierAsync();
    expect(() => a!.barrier()).toThrow(/busy with barrierAsync/);
    expect(() => a!.close()).toThrow(/in flight/);
    await Promise.all([p, b!.barrierAsync()]);
  });
});

describe('thread group collectives (sync, worker ranks and the main thread)', () => {
  it('every collective in its blocking form across 3 worker ranks', async () => {
    const g = threadGroup(3);
    const marks = new SharedArrayBuffer(12);
    const out = results(await runRanks<{ sum32: Float32Array; mean64: Float64Array; gathered: Float64Array; bcast: Float64Array;
      seen: number[]; afterClose: { message: string } }>(g, 'collectives', [0, 1, 2].map(() => ({ values: VALUES, root: 1, marks }))));
    out.forEach((o, r) => {
      expectBitIdentical(o.sum32, expected('float32', 'sum'), `sum rank ${r}`);
      expectBitIdentical(o.mean64, expected('float64', 'mean'), `mean rank ${r}`);
      expectBitIdentical(o.gathered, Float64Array.from([0, 0, -0, 1, 10, -1, 2, 20, -2]), `gather rank ${r}`);
      expectBitIdentical(o.bcast, Float64Array.from(VALUES[1]!), `broadcast rank ${r}`);
      expect(o.seen).toEqual([1, 2, 3]);
      expect(o.afterClose.message).toMatch(/after close\(\)/);
    });
  });

  it('the main thread as rank 0 (blocking) with a worker as rank 1', async () => {
    const g = threadGroup(2, { timeoutMs: 30_000 });
    const main = joinThreadGroup(g, 0);
    const worker = runRanks<{ error?: { message: string }; next: Float64Array }>(g, 'mismatched',
      [null, { dtype: ['float64', 'float64'], length: [2, 3] }], { absent: [0] });
    expect(() => main.allReduce(new Float64Array(2))).toThrow(/rank 0: allReduce\(float64\[2\], 'sum'\), rank 1: allReduce\(float64\[3\], 'sum'\)/);
    const next = Float64Array.of(0);
    main.allReduce(next);
    const [, w] = await worker;
    expect(w!.ok && w!.result.error?.message).toMatch(/ranks called different collectives/);
    expect(Array.from(next)).toEqual([1]);
  });
});

describe('argument checks', () => {
  it('threadGroup and joinThreadGroup', () => {
    expect(() => threadGroup('2' as unknown as number)).toThrow(TypeError);
    expect(() => threadGroup(0)).toThrow(/Expected an integer in \[1, 4096\] for threadGroup size but received number 0/);
    expect(() => threadGroup(1.5)).toThrow(RangeError);
    expect(() => threadGroup(2, { timeoutMs: -1 })).toThrow(RangeError);
    expect(() => threadGroup(2, { timeoutMs: '5' as unknown as number })).toThrow(TypeError);
    expect(() => threadGroup(2, { timeout: 5 } as object)).toThrow(/unknown option "timeout"/);
    expect(() => threadGroup(2, { chunkElements: 0 })).toThrow(RangeError);
    const g = threadGroup(2);
    expect(() => joinThreadGroup({} as never, 0)).toThrow(TypeError);
    expect(() => joinThreadGroup(g, 2)).toThrow(/Expected an integer in \[0, 1\] for joinThreadGroup rank but received number 2/);
    expect(() => joinThreadGroup(g, '0' as unknown as number)).toThrow(TypeError);
    joinThreadGroup(g, 0);
    expect(() => joinThreadGroup(g, 0)).toThrow(/rank 0 of this group has already been joined/);
  });

  it('every Communicator method, sync and async, before anything is exchanged', async () => {
    const g = threadGroup(2), c = joinThreadGroup(g, 0);
    const bad: [() => unknown, ErrorConstructor, RegExp][] = [
      [() => c.allGather(new Float32Array(1) as never), TypeError, /Float64Array for allGather buffer but received Float32Array/],
      [() => c.allGather([1] as never), TypeError, /allGather buffer/],
      [() => c.allReduce(new Int32Array(1) as never), TypeError, /Float32Array or Float64Array for allReduce buffer/],
      [() => c.allReduce(new Float64Array(1), 'max' as never), RangeError, /"sum" or "mean" for allReduce op but received string "max"/],
      [() => c.allReduce(new Float64Array(1), 1 as never), TypeError, /allReduce op/],
      [() => c.broadcast(null as never), TypeError, /broadcast buffer/],
      [() => c.broadcast(new Float64Array(1), 2), RangeError, /an integer rank in \[0, 1\] for broadcast root but received number 2/],
      [() => c.broadcast(new Float64Array(1), 0.5), RangeError, /broadcast root/],
      [() => c.broadcast(new Float64Array(1), '1' as never), TypeError, /broadcast root/],
    ];
    for (const [call, E, message] of bad) expect(call).toThrow(E), expect(call).toThrow(message);
    await expect(c.allGatherAsync(new Float32Array(1) as never)).rejects.toThrow(TypeError);
    await expect(c.allReduceAsync(new Float64Array(1), 'max' as never)).rejects.toThrow(RangeError);
    await expect(c.broadcastAsync(new Float64Array(1), -1)).rejects.toThrow(RangeError);
    // Nothing was sent: the communicator is still usable and in step with its peer.
    const peer = joinThreadGroup(g, 1), ones = [Float64Array.of(1), Float64Array.of(2)];
    await Promise.all([c.allReduceAsync(ones[0]!), peer.allReduceAsync(ones[1]!)]);
    expect(ones.map((o) => o[0])).toEqual([3, 3]);
  });
});
