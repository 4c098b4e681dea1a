// Batch norm over the global batch of every rank of a Communicator (PyTorch's SyncBatchNorm, on CPU): the training
// forward and backward with one collective between two kernel calls.
//
// forward:  local (count, mean, M2) per channel   [moments kernel, one read of x]
//           allGather of [header, count, mean, M2] in double → Chan's merge in rank order (the same bits everywhere)
//           y = (x - mean) * invstd * gamma + beta  [normalize kernel, one read + one write]
// backward: local Σdy, Σdy·(x - mean)              [backwardReduce kernel]
//           allReduce of [Σdy, Σdy·(x - mean), count] in double
//           dx = a·dy + b·(x - mean) + c with the global sums and count   [backwardApply kernel]
//
// The single-read fused kernel (forwardTrain: statistics and normalize of a cache-resident channel in one pass)
// cannot be used: the statistics must be global before anything is normalized, so x is read twice. The bench
// (npm run bench) prints what that costs. With one rank the caller takes the fused BatchNorm path instead.
import { formatShape } from '../errors.js';
import type { View4 } from '../geometry.js';
import type { Communicator } from '../distributed/communicator.js';
import { communicate, type Steps } from '../native-steps.js';
import type { FloatArray } from '../tensor.js';
import { applyGrad, gradSums, moments, normalize, trainingCoefs, type GradSums, type NormalizeRelu, type ReluForward, type TrainStats } from './core.js';

const HEADER = 4;  // [channels, dtype (0 float32, 1 float64), channelsLast (0/1), count]

export interface SyncLayout { view: View4; channels: number; count: number; channelsLast: boolean; shape: readonly number[] }

/** What the forward leaves for the running-stat update: the merged statistics and the global count. */
export interface GlobalStats extends TrainStats { count: number }

const describeRank = (h: ArrayLike<number>) =>
  `${h[0]} channels, ${h[1] === 0 ? 'float32' : 'float64'}, ${h[2] === 1 ? 'channels last' : 'channels first'}`;

/** Runs a collective of SyncBatchNorm; any failure (mismatch, timeout) is rethrown with what this rank sent. */
function* collective<T>(what: string, lay: SyncLayout, x: FloatArray, sync: () => T, async: () => Promise<T>): Steps<T> {
  try {
    return yield* communicate(sync, async);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(`SyncBatchNorm: ${what} failed on this rank (input ${formatShape(lay.shape)}: ` +
      `${describeRank([lay.channels, x instanceof Float32Array ? 0 : 1, lay.channelsLast ? 1 : 0])}): ${message}`, { cause: e });
  }
}

/** The training forward over the global batch; writes y and returns the global statistics. */
export function* syncForwardTrain(comm: Communicator, lay: SyncLayout, x: FloatArray, y: FloatArray, eps: number,
  gamma: Float64Array | null, beta: Float64Array | null, relu: ReluForward | null = null): Steps<GlobalStats> {
  const C = lay.channels, size = comm.size;
  const local = lay.count > 0 ? yield* moments(lay.view, x) : { mean: new Float64Array(C), m2: new Float64Array(C) };
  const send = new Float64Array(HEADER + 2 * C);
  send.set([C, x instanceof Float32Array ? 0 : 1, lay.channelsLast ? 1 : 0, lay.count]);
  send.set(local.mean, HEADER); send.set(local.m2, HEADER + C);
  // Ranks with different numFeatures send different lengths (4 + 2 × numFeatures): the communicator refuses that on
  // every rank, and `collective` says what this rank sent.
  const all = yield* collective('the statistics all-gather (4 + 2 × numFeatures values per rank)', lay, x,
    () => comm.allGather(send), () => comm.allGatherAsync(send));
  const per = send.length, at = (r: number) => all.subarray(r * per, (r + 1) * per);
  // Every rank checks the same gathered headers, so every rank throws the same Error.
  for (let r = 1; r < size; r++) {
    if (at(r)[0] !== at(0)[0] || at(r)[1] !== at(0)[1] || at(r)[2] !== at(0)[2]) {
      const list = Array.from({ length: size }, (_, q) => `rank ${q}: ${describeRank(at(q))}`).join('; ');
      throw new Error(`SyncBatchNorm: ranks disagree on numFeatures, dtype or layout (${list}); every rank throws`);
    }
  }
  const g = mergeInRankOrder(all, size, C);
  if (g.count === 1) {
    const counts = Array.from({ length: size }, (_, q) => at(q)[3]).join(', ');
    throw new RangeError(`Expected more than 1 value per channel when training, got 1 value per channel in the global ` +
      `batch of ${size} ranks (values per channel on ranks 0…${size - 1}: ${counts})`);
  }
  const invstd = g.m2.map((v) => 1 / Math.sqrt(v / g.count + eps));
  if (lay.count > 0) {
    yield* normalize(lay.view, x, y, g.mean, invstd.map((v, c) => v * (gamma ? gamma[c]! : 1)), beta ?? new Float64Array(C),
      null, null, relu);
  }
  return { ...g, invstd };
}

/**
 * Chan's pairwise merge of per-rank (count, mean, M2), folded left in rank order in double:
 *   n = na + nb, δ = mb − ma, mean = ma + δ·nb/n, M2 = M2a + M2b + δ²·na·nb/n   (ranks with count 0 skipped).
 * `all` is the allGather of [header(4), mean(C), M2(C)] per rank, the count in header slot 3.
 */
export function mergeInRankOrder(all: Float64Array, size: number, C: number): { count: number; mean: Float64Array; m2: Float64Array } {
  const per = HEADER + 2 * C, mean = new Float64Array(C), m2 = new Float64Array(C);
  let count = 0;
  for (let r = 0; r < size; r++) {
    const nb = all[r * per + 3]!;
    if (nb === 0) continue;
    for (let c = 0; c < C; c++) {
      const mb = all[r * per + HEADER + c]!, m2b = all[r * per + HEADER + C + c]!;
      if (count === 0) { mean[c] = mb; m2[c] = m2b; continue; }
      const n = count + nb, d = mb - mean[c]!;
      mean[c] = mean[c]! + d * nb / n;
      m2[c] = m2[c]! + m2b + d * d * count * nb / n;
    }
    count += nb;
  }
  return { count, mean, m2 };
}

/** The training backward over the global batch: dx from the all-reduced sums; returns this rank's LOCAL sums. */
export function* syncBackwardTrain(comm: Communicator, lay: SyncLayout, dy: FloatArray, x: FloatArray, dx: FloatArray,
  mean: Float64Array, invstd: Float64Array, gamma: Float64Array | null, relu: NormalizeRelu | null = null): Steps<GradSums> {
  const C = lay.channels;
  const local = lay.count > 0 ? yield* gradSums(lay.view, dy, x, mean, null, relu) : { sumDy: new Float64Array(C), sumDyXmu: new Float64Array(C) };
  // One buffer, one collective: the sums and the count (the global count the forward used, exact in double).
  const buf = new Float64Array(2 * C + 1);
  buf.set(local.sumDy); buf.set(local.sumDyXmu, C); buf[2 * C] = lay.count;
  yield* collective('the gradient all-reduce', lay, x, () => comm.allReduce(buf, 'sum'), () => comm.allReduceAsync(buf, 'sum'));
  if (lay.count > 0) {
    const k = trainingCoefs(C, buf[2 * C]!, invstd, (c) => (gamma ? gamma[c]! : 1), buf.subarray(0, C), buf.subarray(C, 2 * C));
    yield* applyGrad(lay.view, dy, x, dx, mean, k, null, relu);
  }
  return local;
}
