// The [P][A][B][K] view each layer reduces over (see native/core/geometry.h for the table of layers).
// Computed here from a checked shape; the native glue re-checks lengths against it.
import { numel } from './tensor.js';

export interface View4 {
  readonly P: number;
  readonly A: number;
  readonly B: number;
  readonly K: number;
}

/** Batch norm: one group per channel, over the batch and every spatial position. Shape has rank >= 2. */
export function batchNormView(shape: readonly number[], channelsLast: boolean): View4 {
  const rank = shape.length;
  if (channelsLast || rank === 2) return { P: 1, A: numel(shape.slice(0, rank - 1)), B: shape[rank - 1]!, K: 1 };
  return { P: 1, A: shape[0]!, B: shape[1]!, K: numel(shape.slice(2)) };
}

/** The channel axis of a batch-norm input. */
export function channelAxis(rank: number, channelsLast: boolean): number {
  return channelsLast ? rank - 1 : 1;
}

export function viewArgs(v: View4, threads: number): [number, number, number, number, number] {
  return [v.P, v.A, v.B, v.K, threads];
}

/** Instance norm (N, C, *): one group per sample and channel, over the spatial positions. */
export function instanceNormView(shape: readonly number[]): View4 {
  return { P: shape[0]!, A: 1, B: shape[1]!, K: numel(shape.slice(2)) };
}

/**
 * Group norm over (N, C, *) (or (N, *, C) channels last): the statistics view (one group per sample and group
 * of C/G channels) and the channel view (one group per sample and channel) the normalize and backward run on.
 */
export function groupNormViews(shape: readonly number[], groups: number, channelsLast: boolean): { stats: View4; channel: View4 } {
  const rank = shape.length, N = shape[0]!, C = shape[channelsLast ? rank - 1 : 1]!;
  const S = channelsLast ? numel(shape.slice(1, rank - 1)) : numel(shape.slice(2));
  return channelsLast
    ? { stats: { P: N, A: S, B: groups, K: C / groups }, channel: { P: N, A: S, B: C, K: 1 } }
    : { stats: { P: N, A: 1, B: groups, K: (C / groups) * S }, channel: { P: N, A: 1, B: C, K: S } };
}

/** Layer norm / RMS norm over the trailing D elements: one group per row. */
export function rowView(total: number, D: number): View4 {
  return { P: D === 0 ? 0 : total / D, A: 1, B: 1, K: D };
}
