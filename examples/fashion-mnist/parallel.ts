// Data parallelism, as torch.nn.parallel.DistributedDataParallel does it: every rank holds the same model, takes its
// shard of every global batch, and after backward the ranks' gradients are averaged so every rank takes the same
// SGD step. Batch norm layers are SyncBatchNorm (network.ts), so they normalize with the global batch's statistics.
//
// The scaling that makes R ranks compute the single process's step: the single process differentiates the global
// batch's mean loss, (1/B) sum over all B rows. Rank r holds n_r of them and scales its loss gradient by R/B (not
// 1/n_r), so the mean over the ranks, (1/R) sum_r (R/B) sum over its rows, is (1/B) sum over all rows whatever
// the shard sizes, empty ones included. SyncBatchNorm's weight and bias grads are each rank's local share too, so
// one mean-allReduce of every gradient finishes the job.
import type { Communicator, StateDict } from 'normkit';
import type { Param } from './nn.js';

/** The rows [from, to) of a batch of n that rank `rank` of `size` takes: contiguous, sizes differing by at most 1. */
export function shardRange(n: number, rank: number, size: number): [from: number, to: number] {
  return [Math.floor((rank * n) / size), Math.floor(((rank + 1) * n) / size)];
}

/** What a rank divides its loss gradient by so the mean over ranks is the global batch's gradient (see above). */
export function lossDivisor(globalBatch: number, size: number): number {
  return globalBatch / size;
}

/**
 * Averages the parameters' gradients over the ranks in one allReduce('mean') of all of them (DDP's buckets, as one
 * bucket: one synchronization per step instead of one per parameter). A null grad (a parameter no backward
 * reached) counts as zeros, and receives the average.
 */
export function averageGradients(params: readonly Param[], comm: Communicator): void {
  const total = params.reduce((s, p) => s + p.data.length, 0);
  const flat = new Float32Array(total);
  let at = 0;
  for (const p of params) {
    if (p.grad) flat.set(p.grad, at);
    at += p.data.length;
  }
  comm.allReduce(flat, 'mean');
  at = 0;
  for (const p of params) {
    const g = flat.subarray(at, at + p.data.length);
    if (p.grad) p.grad.set(g); else p.grad = g.slice();
    at += p.data.length;
  }
}

/** The sums of `values` over the ranks (float64, rank order): the ranks' loss sums and correct counts. */
export function sumOverRanks(values: readonly number[], comm: Communicator | null): number[] {
  if (!comm) return [...values];
  const buf = Float64Array.from(values);
  comm.allReduce(buf, 'sum');
  return Array.from(buf);
}

/**
 * Copies rank 0's parameters and buffers (the whole state dict's float arrays) to every rank, as DDP does when
 * it wraps a model: the ranks start identical even if their initialization differed.
 */
export function broadcastState(arrays: readonly (Float32Array | Float64Array)[], comm: Communicator): void {
  for (const a of arrays) comm.broadcast(a, 0);
}

/**
 * Whether every rank holds bit-identical values in `arrays`: rank 0's are broadcast, each rank compares its own
 * bit for bit, and the mismatch counts are summed, so every rank gets the same answer.
 */
export function identicalOnAllRanks(arrays: readonly (Float32Array | Float64Array)[], comm: Communicator): boolean {
  let mismatches = 0;
  for (const a of arrays) {
    const root = a.slice();
    comm.broadcast(root, 0);
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], root[i])) mismatches++;
  }
  return sumOverRanks([mismatches], comm)[0] === 0;
}

/** The float arrays of a state dict (parameters and running statistics; num_batches_tracked is an integer). */
export function stateArrays(sd: StateDict): Array<Float32Array | Float64Array> {
  return Object.values(sd).flatMap((t) => (t.data instanceof Float32Array || t.data instanceof Float64Array ? [t.data] : []));
}
