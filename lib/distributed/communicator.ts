// The communicator interface every distributed piece programs against (torch.distributed's ProcessGroup, reduced
// to what SyncBatchNorm and data-parallel training need). A communicator is a small object passed in, never a
// global. Implementations: thread-group.ts (worker_threads on one machine) and mpi.ts (Open MPI across machines).
//
// One rule makes results independent of the communicator: every reduction is defined here, element by element,
// and every implementation computes exactly that expression. Nothing is left to an engine's own reduction order
// (MPI_Allreduce's order is implementation-defined), so a thread group and MPI give the same bits.
import type { FloatArray } from '../tensor.js';

/** How allReduce combines the ranks' values: their rank-order sum, or that sum divided by the group's size. */
export type ReduceOp = 'sum' | 'mean';

/**
 * A group of ranks that exchange data in collectives every rank calls in the same order (torch.distributed's
 * ProcessGroup, reduced to what SyncBatchNorm and data-parallel training need): threadGroup/joinThreadGroup for
 * worker_threads, mpiWorld() for Open MPI. Every reduction is the rank-order expression of reduceInRankOrder, so
 * results do not depend on which communicator computed them.
 */
export interface Communicator {
  /** This participant's index, 0 … size - 1. */
  readonly rank: number;
  /** How many participants take part in every collective. */
  readonly size: number;
  /** size × local.length values in rank order, the same on every rank. Every rank passes the same length. */
  allGather(local: Float64Array): Float64Array;
  allGatherAsync(local: Float64Array): Promise<Float64Array>;
  /**
   * In place; every rank ends with the same bits. Element i becomes the rank-order sum of the ranks' values,
   * accumulated in double and rounded once to the buffer's dtype (see `reduceInRankOrder`); 'mean' divides that
   * double sum by size before rounding. Every rank passes the same dtype and length.
   */
  allReduce(buf: FloatArray, op?: ReduceOp): void;
  allReduceAsync(buf: FloatArray, op?: ReduceOp): Promise<void>;
  /** root's values (default rank 0) into every rank's buf. */
  broadcast(buf: FloatArray, root?: number): void;
  broadcastAsync(buf: FloatArray, root?: number): Promise<void>;
  barrier(): void;
  barrierAsync(): Promise<void>;
  /** Leaves the group; later calls on this communicator throw. */
  close(): void;
}

/**
 * The reduction every communicator computes for element i of an allReduce over parts.length ranks:
 *   s = double(v_0[i]); s += double(v_1[i]); … s += double(v_{size-1}[i]);  (rank order, double accumulation)
 *   'mean': s = s / size;   then one rounding to the buffer's dtype (the store into `out`).
 * `parts[r]` holds rank r's values. Writes into `out`, which may be one of the parts (element-wise, read first).
 */
export function reduceInRankOrder(parts: readonly ArrayLike<number>[], out: FloatArray, op: ReduceOp): void {
  const size = parts.length;
  for (let i = 0; i < out.length; i++) {
    let s = parts[0]![i]!;
    for (let r = 1; r < size; r++) s += parts[r]![i]!;
    out[i] = op === 'mean' ? s / size : s;
  }
}
