// The math every layer of the family shares, over a View4 (see lib/geometry.ts): group statistics, the
// normalize pass, and the backward's sums and coefficients. Layers differ only in the view and in how groups map
// to affine parameters; the native kernels behind these steps are the same for all.
import type { View4 } from '../geometry.js';
import { viewArgs } from '../geometry.js';
import { call, type Steps } from '../native-steps.js';
import { getNumThreads } from '../runtime.js';
import type { FloatArray } from '../tensor.js';

export const geo = (v: View4) => viewArgs(v, getNumThreads());
export const groupsOf = (v: View4) => v.P * v.B;
export const groupSize = (v: View4) => v.A * v.K;

export interface Moments { mean: Float64Array; m2: Float64Array }

/**
 * The fused activation 'relu' of a layer (see modules/layer.ts), forward: y = relu(norm(x) + r) in the normalize pass
 * itself; r is the residual, or null.
 */
export interface ReluForward { r: FloatArray | null }

/**
 * Its backward: the kernels read dz = (norm(x) + r > 0) ? dy : 0 wherever they read dy, the mask recomputed from the
 * saved input with what the forward normalized with (no mask kept). dr receives dz (the residual's gradient), or null.
 */
export interface ReluBackward { r: FloatArray | null; dr: FloatArray | null }

/** ReluBackward of a `normalize` forward (eval, SyncBatchNorm): the scale and shift it was given. */
export interface NormalizeRelu extends ReluBackward { scale: Float64Array; shift: Float64Array }

/** The NormalizeRelu of a forward whose scale was invstd · gamma and shift beta (zeros without), per group. */
export function normalizeRelu(relu: ReluBackward, invstd: Float64Array, gamma: ArrayLike<number> | null,
  beta: ArrayLike<number> | null): NormalizeRelu {
  const G = invstd.length;
  return { r: relu.r, dr: relu.dr, scale: invstd.map((v, g) => v * (gamma ? gamma[g]! : 1)), shift: beta ? Float64Array.from(beta) : new Float64Array(G) };
}

/** ReluBackward of a `forwardTrain` forward: its beta and per-position b (gamma, w and the statistics are shared). */
export interface TrainRelu extends ReluBackward { beta: Float64Array | null; b: FloatArray | null }

/** Per-group mean and M2 = sum((x - mean)^2), from the native two-pass tiles + Chan merge. */
export function* moments(v: View4, x: FloatArray): Steps<Moments> {
  const mean = new Float64Array(groupsOf(v)), m2 = new Float64Array(groupsOf(v));
  yield call('moments', ...geo(v), x, mean, m2);
  return { mean, m2 };
}

/** y = (x - mean) * scale + shift per group; w, b: optional per-position params (LayerNorm, RMSNorm). */
export function* normalize(v: View4, x: FloatArray, y: FloatArray, mean: Float64Array, scale: Float64Array,
  shift: Float64Array, w: FloatArray | null = null, b: FloatArray | null = null, relu: ReluForward | null = null): Steps<void> {
  yield relu ? call('normalize', ...geo(v), x, y, mean, scale, shift, w, b, true, relu.r)
    : call('normalize', ...geo(v), x, y, mean, scale, shift, w, b);
}

export interface GradSums { sumDy: Float64Array; sumDyXmu: Float64Array }

/** Per group: sum(dy * w) and sum(dy * w * (x - mean)); w: optional per-position params. */
export function* gradSums(v: View4, dy: FloatArray, x: FloatArray, mean: Float64Array, w: FloatArray | null = null,
  relu: NormalizeRelu | null = null): Steps<GradSums> {
  const sumDy = new Float64Array(groupsOf(v)), sumDyXmu = new Float64Array(groupsOf(v));
  yield relu ? call('backwardReduce', ...geo(v), dy, x, mean, sumDy, sumDyXmu, w, true, relu.r, null, relu.scale, relu.shift)
    : call('backwardReduce', ...geo(v), dy, x, mean, sumDy, sumDyXmu, w);
  return { sumDy, sumDyXmu };
}

/**
 * dx through the batch statistics of groups of M elements, for y = (x - mean) * invstd * gamma + beta:
 *   dx = a * dy + b * (x - mean) + c,  a = gamma * invstd,  b = -a * invstd^2 * sum(dy (x - mean)) / M,
 *   c = -a * sum(dy) / M.
 * `gamma(g)` is the scale of group g; `sums(g)` its (sumDy, sumDyXmu) (already weighted when gamma varies inside
 * the group, as in GroupNorm and LayerNorm — then pass gamma = 1 and weight dy in the kernel).
 */
export function trainingCoefs(G: number, M: number, invstd: Float64Array, gamma: (g: number) => number,
  sumDy: ArrayLike<number>, sumDyXmu: ArrayLike<number>): { a: Float64Array; b: Float64Array; c: Float64Array } {
  const a = new Float64Array(G), b = new Float64Array(G), c = new Float64Array(G);
  for (let g = 0; g < G; g++) {
    const inv = invstd[g]!;
    a[g] = gamma(g) * inv;
    b[g] = -a[g]! * inv * inv * sumDyXmu[g]! / M;
    c[g] = -a[g]! * sumDy[g]! / M;
  }
  return { a, b, c };
}

/** dx = a * (dy * w) + b * (x - mean) + c per group; b = c = null: dx = a * (dy * w). */
export function* applyGrad(v: View4, dy: FloatArray, x: FloatArray, dx: FloatArray, mean: Float64Array,
  coefs: { a: Float64Array; b: Float64Array | null; c: Float64Array | null }, w: FloatArray | null = null,
  relu: NormalizeRelu | null = null): Steps<void> {
  yield relu ? call('backwardApply', ...geo(v), dy, x, dx, mean, coefs.a, coefs.b, coefs.c, w, true, relu.r, relu.dr, relu.scale, relu.shift)
    : call('backwardApply', ...geo(v), dy, x, dx, mean, coefs.a, coefs.b, coefs.c, w);
}

/**
 * Called with a training batch's statistics (mean and M2 per group, in float64) before the running statistics are
 * updated from them: false skips the update (the layers' nonFinite option); it may also throw.
 */
export type StatsGuard = (mean: Float64Array, m2: Float64Array) => boolean;
export const acceptAll: StatsGuard = () => true;

export interface TrainStats { mean: Float64Array; m2: Float64Array; invstd: Float64Array }

/**
 * What a training op applies besides the group statistics, beyond one gamma/beta per group:
 * `segments` parts per group with a gamma/beta each (GroupNorm: a group's C/G channels; gamma, beta, and the
 * backward's sums then have groups * segments entries), per-position `w`/`b` (LayerNorm, length K), and `rms`
 * (RMSNorm: centred at 0, invstd = 1 / sqrt(mean(x^2) + eps), no sum(dy) term in the backward).
 */
export interface Affine { segments?: number; w?: FloatArray | null; b?: FloatArray | null; rms?: boolean }

/**
 * The whole training forward of any layer: statistics, then y = (x - mean) * invstd * gamma * w + (beta or b) —
 * fused per group in the kernel where a group stays cache-resident (one read of x from memory).
 */
export function* forwardTrain(v: View4, x: FloatArray, y: FloatArray, eps: number, gamma: Float64Array | null,
  beta: Float64Array | null, af: Affine = {}, relu: ReluForward | null = null): Steps<TrainStats> {
  const G = groupsOf(v), mean = new Float64Array(G), m2 = new Float64Array(G), invstd = new Float64Array(G);
  const args = [...geo(v), x, y, eps, gamma, beta, mean, m2, invstd, af.segments ?? 1, af.w ?? null, af.b ?? null,
    af.rms ?? false] as const;
  yield relu ? call('forwardTrain', ...args, true, relu.r) : call('forwardTrain', ...args);
  return { mean, m2, invstd };
}

export interface TrainGrads extends GradSums { dw: Float64Array | null; db: Float64Array | null }

/**
 * The whole training backward: dx through the batch statistics, the sums of every segment, and with `columns`
 * the per-position gradients dw[k] = sum dy * (x - mean) * invstd, db[k] = sum dy from the same pass.
 */
export function* backwardTrain(v: View4, dy: FloatArray, x: FloatArray, dx: FloatArray, mean: Float64Array,
  invstd: Float64Array, gamma: Float64Array | null, af: Affine & { columns?: boolean } = {},
  relu: TrainRelu | null = null): Steps<TrainGrads> {
  const n = groupsOf(v) * (af.segments ?? 1), sumDy = new Float64Array(n), sumDyXmu = new Float64Array(n);
  const dw = af.columns ? new Float64Array(v.K) : null, db = af.columns ? new Float64Array(v.K) : null;
  const args = [...geo(v), dy, x, dx, mean, invstd, gamma, sumDy, sumDyXmu, af.segments ?? 1, af.w ?? null, dw, db,
    af.rms ?? false] as const;
  yield relu ? call('backwardTrain', ...args, true, relu.r, relu.dr, relu.beta, relu.b) : call('backwardTrain', ...args);
  return { sumDy, sumDyXmu, dw, db };
}

/**
 * A per-channel parameter repeated for every sample: one entry per (sample, channel), as GroupNorm's segments and
 * InstanceNorm's groups take them (null for none). A plain loop: Float64Array.from({ length }, fn) looks each index up
 * on the length object through V8's generic path, which took 0.4 ms of a 0.7 ms GroupNorm(32, 256) forward on
 * [8,256,16,16] (N * C = 2048 entries, twice).
 */
export function perSampleChannel(p: ArrayLike<number> | null, N: number, C: number,
  out: Float64Array = new Float64Array(p ? N * C : 0)): Float64Array | null {
  if (!p) return null;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] = p[c]!;
  return out;
}

/**
 * The per-channel weight and bias gradients of a per-sample norm (GroupNorm with groups of `per` channels,
 * InstanceNorm with per = 1) from the backward's per-(sample, channel) sums and the per-(sample, group) invstd,
 * added into dweight and dbias (float64) sample by sample: the layers' fast path and the functional ops alike.
 */
export function perChannelParamGrads(sumDy: Float64Array, sumDyXmu: Float64Array, invstd: Float64Array, N: number, C: number,
  per: number, dweight: Float64Array, dbias: Float64Array): void {
  const G = C / per;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) {
    const i = n * C + c, g = n * G + Math.floor(c / per);
    dbias[c]! += sumDy[i]!; dweight[c]! += sumDyXmu[i]! * invstd[g]!;
  }
}

/**
 * r, typed with the input's array type: the kernels write every output array in the input's dtype, which `is`
 * checks (a mismatch would be a bug here, never the caller's), so float32 callers get Float32Array without casts.
 */
export function ofInputKind<A extends FloatArray, R, N extends R>(like: A, r: R, is: (like: A, r: R) => r is N): N {
  if (is(like, r)) return r;
  throw new Error('normkit internal: a result does not have its input\'s dtype');
}

/** A float array of `like`'s dtype holding `values`. */
export function asDtype(like: FloatArray, values: ArrayLike<number>): FloatArray {
  return like instanceof Float32Array ? Float32Array.from(values) : Float64Array.from(values);
}
