// The SyncBatchNorm rows of npm run bench: 2 worker ranks × 1 thread, each on half of [64,128,56,56] NCHW float32,
// as ratios to a 1-thread copy of a half (targets: forward <= 1.6×, backward <= 2.6×: 2 reads + 1 write and
// 4 reads + 1 write at copy speed), the collective's own time per call (target <= 20 µs), and beside it BatchNorm
// with 2 threads on the full batch in this process.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { functional as F, setNumThreads, threadGroup, type FloatArray } from 'normkit';
import { paired } from './timing.js';

export interface SyncRow { ms: Record<string, number>; ratio: Record<string, number>; gatherUs: number; reduceUs: number }
export interface SyncBench { ranks: SyncRow[]; full: { fwd: { ms: number; ratio: number }; bwd: { ms: number; ratio: number } } }

const FULL = [64, 128, 56, 56], HALF = [32, 128, 56, 56];

export async function benchSync(root: string, quick: boolean): Promise<SyncBench> {
  const group = threadGroup(2);
  const reps = quick ? 5 : 11, collectiveCalls = quick ? 500 : 2000;
  const ranks = await Promise.all([0, 1].map((rank) => new Promise<SyncRow>((resolve, reject) => {
    const w = new Worker(join(__dirname, 'sync-worker.js'), { workerData: { group, rank, shape: HALF, reps, collectiveCalls, root } });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  // BatchNorm with 2 threads on the full batch, against a 2-thread copy of the full batch.
  const binding = (require(join(root, 'dist/cjs/binding.js')) as { native(): { copy(s: FloatArray, d: FloatArray, t: number, streaming?: boolean): void } }).native();
  setNumThreads(2);
  const n = FULL.reduce((a, b) => a * b, 1), C = FULL[1]!;
  const x = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 2 + (i % 7)), dy = new Float32Array(n).map((_, i) => Math.cos(i * 0.11));
  const y = new Float32Array(n), dx = new Float32Array(n), dst = new Float32Array(n);
  const t = { data: x, shape: FULL }, weight = new Float32Array(C).fill(1), bias = new Float32Array(C);
  const s = F.batchNorm(t, { training: true, weight, bias });
  const copy = () => binding.copy(x, dst, 2), ntCopy = () => binding.copy(x, dst, 2, true);
  const fwd = paired(() => F.batchNorm(t, { training: true, weight, bias, out: y }), copy, ntCopy, reps);
  const bwd = paired(() => F.batchNormBackward({ data: dy, shape: FULL }, t, { weight, saveMean: s.saveMean, saveInvstd: s.saveInvstd, out: dx }), copy, ntCopy, reps);
  return { ranks, full: { fwd: { ms: fwd.ms, ratio: fwd.ratio }, bwd: { ms: bwd.ms, ratio: bwd.ratio } } };
}

export function printSync(r: SyncBench): void {
  const worst = (f: (row: SyncRow) => number) => Math.max(...r.ranks.map(f));
  const line = (label: string, key: string, target: number | null) => {
    const ms = worst((row) => row.ms[key]!), ratio = worst((row) => row.ratio[key]!);
    console.log(`  ${label.padEnd(44)} ${ms.toFixed(2).padStart(7)} ms  ${ratio.toFixed(2)}× copy${target ? ` (target <= ${target}×${ratio <= target ? ', met' : ', MISSED'})` : ''}`);
  };
  console.log('\nSyncBatchNorm: 2 worker ranks × 1 thread, each on [32,128,56,56] NCHW float32 (half of [64,128,56,56])');
  console.log(`  per rank, the slower of the two; × copy = against a 1-thread copy of a half run at the same time (${worst((row) => row.ms.copy!).toFixed(2)} ms)`);
  line('SyncBatchNorm forward (moments, gather, normalize)', 'fwd', 1.6);
  line('SyncBatchNorm backward (sums, all-reduce, apply)', 'bwd', 2.6);
  line('BatchNorm forward, this rank alone (fused)', 'fwdLocal', null);
  line('BatchNorm backward, this rank alone (fused)', 'bwdLocal', null);
  const g = worst((row) => row.gatherUs), a = worst((row) => row.reduceUs);
  console.log(`  the collective alone: allGather of 260 values ${g.toFixed(1)} µs, allReduce of 257 values ${a.toFixed(1)} µs per call ` +
    `(target <= 20 µs${Math.max(g, a) <= 20 ? ', met' : ', MISSED'})`);
  console.log(`BatchNorm2d, 2 threads, the full [64,128,56,56] in one process: forward ${r.full.fwd.ms.toFixed(2)} ms (${r.full.fwd.ratio.toFixed(2)}× a 2-thread copy), ` +
    `backward ${r.full.bwd.ms.toFixed(2)} ms (${r.full.bwd.ratio.toFixed(2)}×)`);
}
