// SyncBatchNorm against PyTorch: each case of test/fixtures/sync-batch-norm.json.gz is BatchNorm on the whole
// batch (torch, float64 on the exact inputs); here every step's x and dy are split along N over 1-4 worker ranks
// ("shards", zeros included) and the ranks' outputs, concatenated, must equal torch's. Running statistics must be
// bit-identical on every rank; sync and async calls, and 1 and 2 OpenMP threads per rank, must give the same bits.
import { describe, expect, it } from 'vitest';
import { threadGroup } from '../lib/index.js';
import { expectBitIdentical, expectClose, tolerance } from './helpers/compare.js';
import { loadCases, type FixtureCase, type FixtureTensor } from './helpers/fixtures.js';
import { results, runRanks } from './helpers/ranks.js';

type Arr = Float32Array | Float64Array;
interface StepOut { y: Arr; dx: Arr | null; weightGrad: Arr | null; biasGrad: Arr | null; runningMean: Arr | null; runningVar: Arr | null; numBatchesTracked: number }
type RankOut = StepOut[][];  // [case][step]

const cases = loadCases('sync-batch-norm.json.gz') as (FixtureCase & { shards: number[] })[];

/** Rows [from, from + n) of a tensor along its first axis. */
function shard(t: FixtureTensor, from: number, n: number): FixtureTensor {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: [n, ...t.shape.slice(1)], data: t.data.slice(from * per, (from + n) * per) };
}

/** Rank r's view of a case: its rows of every step. */
function rankCase(c: FixtureCase & { shards: number[] }, r: number) {
  const from = c.shards.slice(0, r).reduce((a, b) => a + b, 0), n = c.shards[r]!;
  return {
    numFeatures: c.numFeatures, dtype: c.dtype, options: c.options, initial: c.initial ?? {},
    steps: c.steps.map((s) => ({ mode: s.mode, x: shard(s.x, from, n), dy: s.dy ? shard(s.dy, from, n) : null })),
  };
}

/** float64: within 1e-12 of the reference, relative to the largest magnitude in the array; float32 as elsewhere. */
function tol(dtype: string, expected: ArrayLike<number>) {
  if (dtype === 'float32') return tolerance('float32');
  let max = 0;
  for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i]!));
  // Scaled by the larger of the array's magnitude and 1 (the inputs' scale): outputs near 0 come from cancellation.
  return { rtol: 1e-12, atol: 1e-12 * Math.max(1, max) };
}

const concat = (parts: Arr[]) => parts.flatMap((p) => Array.from(p));
const sizes = [...new Set(cases.map((c) => c.shards.length))].sort();

async function run(size: number, mode: { async: boolean; threads: number }): Promise<RankOut[]> {
  const mine = cases.filter((c) => c.shards.length === size);
  const data = Array.from({ length: size }, (_, r) => ({ ...mode, cases: mine.map((c) => rankCase(c, r)) }));
  return results(await runRanks<RankOut>(threadGroup(size, { timeoutMs: 30_000 }), 'replay', data));
}

describe('SyncBatchNorm over worker ranks matches BatchNorm on the concatenated batch (PyTorch)', () => {
  it('has the cases the issue asks for', () => {
    expect(sizes).toEqual([1, 2, 3, 4]);
    expect(cases.some((c) => c.shards.includes(0))).toBe(true);
    expect(new Set(cases.map((c) => c.layer))).toEqual(new Set(['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d']));
    for (const o of ['channelsLast', 'affine', 'trackRunningStats'] as const) expect(cases.some((c) => c.options[o] !== (o === 'channelsLast' ? false : true))).toBe(true);
    expect(cases.some((c) => c.options.momentum === null)).toBe(true);
    expect(new Set(cases.map((c) => c.dtype))).toEqual(new Set(['float32', 'float64']));
  });

  for (const size of sizes) {
    it(`${size} rank(s): every case, forward, backward and state over all steps; sync = async = 2 threads, bit for bit`, async () => {
      const [sync, asyncRun, twoThreads] = [
        await run(size, { async: false, threads: 1 }), await run(size, { async: true, threads: 1 }), await run(size, { async: false, threads: 2 }),
      ];
      const mine = cases.filter((c) => c.shards.length === size);
      mine.forEach((c, ci) => {
        c.steps.forEach((step, si) => {
          const at = `${c.name} (${c.dtype}) step ${si + 1} (${step.mode})`;
          const outs = sync.map((rank) => rank[ci]![si]!);
          expectClose(concat(outs.map((o) => o.y)), step.y, tol(c.dtype, step.y), `${at} y`);
          if (step.dx) expectClose(concat(outs.map((o) => o.dx!)), step.dx, tol(c.dtype, step.dx), `${at} dx`);
          // Parameter gradients are each rank's local part; their sum is the gradient of the whole batch.
          for (const [key, got] of [['weight_grad', 'weightGrad'], ['bias_grad', 'biasGrad']] as const) {
            const want = step.state[key] as number[] | null | undefined;
            if (want === undefined || want === null) continue;
            const sum = want.map((_, k) => outs.reduce((s, o) => s + o[got]![k]!, 0));
            expectClose(sum, want, tol(c.dtype, want), `${at} sum of ${key}`);
          }
          for (const [key, got] of [['running_mean', 'runningMean'], ['running_var', 'runningVar']] as const) {
            const want = step.state[key] as number[] | undefined;
            if (want === undefined) { expect(outs[0]![got]).toBeNull(); continue; }
            expectClose(outs[0]![got]!, want, tol(c.dtype, want), `${at} ${key}`);
            outs.forEach((o, r) => expectBitIdentical(o[got]!, outs[0]![got]!, `${at} ${key} on rank ${r} vs rank 0`));
          }
          if (typeof step.state.num_batches_tracked === 'number') {
            outs.forEach((o) => expect(o.numBatchesTracked, `${at} num_batches_tracked`).toBe(step.state.num_batches_tracked));
          }
          // The same bits whatever the call form or the thread count.
          for (const [name, other] of [['async', asyncRun], ['2 threads', twoThreads]] as const) {
            other.forEach((rank, r) => {
              const a = rank[ci]![si]!, b = outs[r]!;
              expectBitIdentical(a.y, b.y, `${at} y, ${name} vs sync 1 thread, rank ${r}`);
              if (b.dx) expectBitIdentical(a.dx!, b.dx, `${at} dx, ${name}, rank ${r}`);
              if (b.weightGrad) expectBitIdentical(a.weightGrad!, b.weightGrad, `${at} weight.grad, ${name}, rank ${r}`);
              if (b.runningVar) expectBitIdentical(a.runningVar!, b.runningVar, `${at} running_var, ${name}, rank ${r}`);
            });
          }
        });
      });
    });
  }
});
