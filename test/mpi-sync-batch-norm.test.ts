// SyncBatchNorm over MPI against SyncBatchNorm over a thread group: the same steps on the same shards (uneven, and
// empty on some ranks; sync and async; float32 and float64; channels last) must give the same bits on every rank
// — outputs, input gradients, parameter gradients, running statistics, and the eval output after. Both sides run
// test/helpers/sync-bn-trace.cjs on the built package, under `mpirun -np 3` and on 3 worker threads.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { threadGroup } from '../lib/index.js';
import { mpiSkipReason, mpirunNode, mpiTitle } from './helpers/mpirun.js';
import { results, runRanks } from './helpers/ranks.js';

const SIZE = 3;
type Trace = Array<{ name: string; steps: Array<Record<string, string | number | null>>; evalY: string }>;

(mpiSkipReason ? describe.skip : describe)(mpiTitle('SyncBatchNorm over MPI and over a thread group'), () => {
  it('gives bit-identical outputs, gradients and running statistics for the same shards, empty ones included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'normkit-mpi-sbn-'));
    const r = mpirunNode(SIZE, [join(__dirname, 'mpi', 'rank.cjs'), 'sync-batch-norm', dir]);
    expect(r.status, r.stderr).toBe(0);
    const mpi = Array.from({ length: SIZE }, (_, rank) => JSON.parse(readFileSync(join(dir, `rank${rank}.json`), 'utf8')) as Trace);
    const threads = results(await runRanks<Trace>(threadGroup(SIZE, { timeoutMs: 30_000 }), 'syncBnTrace', Array(SIZE).fill({})));
    for (let rank = 0; rank < SIZE; rank++) expect(mpi[rank], `rank ${rank}`).toEqual(threads[rank]);
    // The comparison covers what it claims: three cases, empty shards whose outputs are empty, and statistics that
    // moved and are shared by all ranks.
    expect(mpi[0]!.map((c) => c.name)).toHaveLength(3);
    expect(mpi[1]![0]!.steps[0]!.y).toBe('');  // rank 1 holds no rows in the first step
    const stats = (t: Trace) => t.map((c) => c.steps.map((s) => [s.runningMean, s.runningVar]));
    expect(stats(mpi[1]!)).toEqual(stats(mpi[0]!));
    expect(stats(mpi[2]!)).toEqual(stats(mpi[0]!));
    expect(mpi[0]![0]!.steps[0]!.runningMean).not.toBe(mpi[0]![0]!.steps[1]!.runningMean);
  });
});
