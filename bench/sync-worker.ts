// One rank of the SyncBatchNorm bench (bench/sync.ts): 1 OpenMP thread, its half of the batch. Every timed call
// starts after a barrier, so both ranks run it together (sharing the memory bandwidth, as in training); each
// SyncBatchNorm call is paired with a 1-thread copy of the same half run the same way.
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { functional as F, joinThreadGroup, setNumThreads, type FloatArray, type ThreadGroup } from 'normkit';
import { median, timeOnce } from './timing.js';

interface Job { group: ThreadGroup; rank: number; shape: number[]; reps: number; collectiveCalls: number; root: string }
const job = workerData as Job;
const binding = (require(join(job.root, 'dist/cjs/binding.js')) as { native(): { copy(s: FloatArray, d: FloatArray, t: number): void } }).native();

setNumThreads(1);
const comm = joinThreadGroup(job.group, job.rank);
const n = job.shape.reduce((a, b) => a * b, 1), C = job.shape[1]!;
const x = new Float32Array(n), dy = new Float32Array(n), y = new Float32Array(n), dx = new Float32Array(n), dst = new Float32Array(n);
for (let i = 0; i < n; i++) { x[i] = Math.sin(i * 0.37 + job.rank) * 2 + (i % 7); dy[i] = Math.cos(i * 0.11); }
const t = { data: x, shape: job.shape }, dyT = { data: dy, shape: job.shape };
const rm = new Float32Array(C), rv = new Float32Array(C).fill(1), weight = new Float32Array(C).fill(1), bias = new Float32Array(C);
const saved = F.batchNorm(t, { training: true, weight, bias, comm });

const ops = {
  fwd: () => F.batchNorm(t, { training: true, runningMean: rm, runningVar: rv, weight, bias, out: y, comm }),
  bwd: () => F.batchNormBackward(dyT, t, { weight, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, out: dx, comm }),
  // The same work on this rank alone: the fused single-read training forward SyncBatchNorm cannot use.
  fwdLocal: () => F.batchNorm(t, { training: true, runningMean: rm, runningVar: rv, weight, bias, out: y }),
  bwdLocal: () => F.batchNormBackward(dyT, t, { weight, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, out: dx }),
  copy: () => binding.copy(x, dst, 1),
};
type Name = keyof typeof ops;
const times: Record<Name, number[]> = { fwd: [], bwd: [], fwdLocal: [], bwdLocal: [], copy: [] };
const ratios: Record<Name, number[]> = { fwd: [], bwd: [], fwdLocal: [], bwdLocal: [], copy: [] };
for (const f of Object.values(ops)) f();  // warm: pages, code
for (let i = 0; i < job.reps; i++) {
  comm.barrier();
  const c = timeOnce(ops.copy);
  for (const name of ['fwd', 'bwd', 'fwdLocal', 'bwdLocal'] as const) {
    comm.barrier();
    const ms = timeOnce(ops[name]);
    times[name].push(ms); ratios[name].push(ms / c);
  }
  times.copy.push(c);
}

// The collective alone, as SyncBatchNorm uses it: the statistics gather (4 + 2C values) and the gradient
// all-reduce (2C + 1 values), µs per call over many back-to-back calls.
const gatherBuf = new Float64Array(4 + 2 * C), reduceBuf = new Float64Array(2 * C + 1);
const perCall = (f: () => void) => {
  comm.barrier();
  const batches: number[] = [];
  for (let b = 0; b < 5; b++) batches.push(timeOnce(() => { for (let i = 0; i < job.collectiveCalls; i++) f(); }) * 1000 / job.collectiveCalls);
  return median(batches);
};
const gatherUs = perCall(() => { comm.allGather(gatherBuf); });
const reduceUs = perCall(() => { reduceBuf.fill(0); comm.allReduce(reduceBuf, 'sum'); });
comm.close();
const med = (r: Record<Name, number[]>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)]));
parentPort!.postMessage({ ms: med(times), ratio: med(ratios), gatherUs, reduceUs });
