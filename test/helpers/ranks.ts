// Runs a job of rank-jobs.cjs on several ranks of one thread group, each rank in its own worker_thread.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ThreadGroup } from '../../lib/index.js';

const root = join(__dirname, '..', '..');
const entry = join(__dirname, 'rank-worker.cjs');

export type RankOutcome<R> = { ok: true; result: R } | { ok: false; error: { name: string; message: string } };

/** One worker per entry of `data` (rank r gets data[r]); `join: false` ranks never join (they stay away). */
export function runRanks<R>(group: ThreadGroup, job: string, data: readonly unknown[], opts: { absent?: readonly number[] } = {}): Promise<RankOutcome<R>[]> {
  return Promise.all(data.map((d, rank) => new Promise<RankOutcome<R>>((resolve, reject) => {
    const w = new Worker(entry, { workerData: { root, group, rank, job, data: d, join: !opts.absent?.includes(rank) } });
    w.once('message', (m: RankOutcome<R>) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`rank ${rank} exited with code ${code} before reporting`)));
  })));
}

/** The results of ranks that must all have succeeded. */
export function results<R>(outcomes: RankOutcome<R>[]): R[] {
  return outcomes.map((o, rank) => {
    if (!o.ok) throw new Error(`rank ${rank} failed: ${o.error.name}: ${o.error.message}`);
    return o.result;
  });
}
