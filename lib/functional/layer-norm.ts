// Layer normalization and RMS normalization (torch.nn.functional.layer_norm / rms_norm): statistics over the
// trailing `normalizedShape` dims of each row, with per-position weight and bias. One group per row.
import { formatShape, invalidRange, invalidType } from '../errors.js';
import { rowView, type View4 } from '../geometry.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { checkTensor, dtypeOf, isLike, numel } from '../tensor.js';
import { checkChannelArray, checkSameTensor, checkSavedStat, isEmpty, outputArray } from './checks.js';
import type { AffineArgs, EpsArg, OutArg, SavedStatsArgs } from './options.js';
import { asDtype, backwardTrain, forwardTrain, ofInputKind, type ReluBackward, type ReluForward } from './core.js';

/** A normalizedShape argument: a positive integer or a non-empty array of them. */
export function checkNormalizedShape(value: unknown, name = 'normalizedShape'): readonly number[] {
  const dims = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(dims) || dims.length === 0) throw invalidType(name, 'a positive integer or a non-empty array of them', value);
  dims.forEach((d: unknown, i) => {
    if (typeof d !== 'number') throw invalidType(`${name}[${i}]`, 'a positive integer', d);
    if (!Number.isInteger(d) || d < 1) throw invalidRange(`${name}[${i}]`, 'a positive integer', d);
  });
  return Object.freeze([...(dims as number[])]);
}

/** The input's trailing dims must equal normalizedShape (PyTorch's message). */
function checkTrailing(x: Tensor, shape: readonly number[]): void {
  const r = x.shape.length, k = shape.length;
  if (r < k || shape.some((d, i) => x.shape[r - k + i] !== d)) {
    throw new RangeError(`Given normalizedShape=${formatShape(shape)}, expected input with shape [*, ${shape.join(', ')}], ` +
      `but got input of size ${formatShape(x.shape)}`);
  }
}

interface Checked { x: Tensor; view: View4; D: number; weight: FloatArray | null; bias: FloatArray | null; out: FloatArray }

function checkInput(x: unknown, normalizedShape: unknown, weight: unknown, bias: unknown, out: unknown): Checked {
  const t = checkTensor(x, 'input');
  const shape = checkNormalizedShape(normalizedShape);
  checkTrailing(t, shape);
  const D = numel(shape), dtype = dtypeOf(t.data);
  return {
    x: t, view: rowView(t.data.length, D), D,
    weight: weight == null ? null : checkChannelArray(weight, 'weight', D, dtype),
    bias: bias == null ? null : checkChannelArray(bias, 'bias', D, dtype),
    out: outputArray(out, 'out', t),
  };
}

/** Options of layerNorm: weight and bias per position (shape normalizedShape). */
export interface LayerNormOptions extends AffineArgs, EpsArg, OutArg {}
/** What layerNorm returns: y, and per row the mean and 1 / sqrt(var + eps) in float64. */
export interface LayerNormResult<A extends FloatArray = FloatArray> { y: Tensor<A>; saveMean: Float64Array; saveInvstd: Float64Array }
/** Options of layerNormBackward: the forward's weight and bias, and its saved statistics. */
export interface LayerNormBackwardOptions extends AffineArgs, SavedStatsArgs, OutArg {}
/** What layerNormBackward returns; dweight / dbias are null where the forward had no weight / bias. */
export interface LayerNormBackwardResult<A extends FloatArray = FloatArray> { dx: Tensor<A>; dweight: A | null; dbias: A | null }

/** Whether every array of a result that exists is of `like`'s array type. */
const allLike = (like: FloatArray, ...arrays: Array<FloatArray | null>) => arrays.every((a) => a === null || isLike(like, a));
const isLnForward = <A extends FloatArray>(like: A, r: LayerNormResult): r is LayerNormResult<A> => isLike(like, r.y.data);
const isLnBackward = <A extends FloatArray>(like: A, r: LayerNormBackwardResult): r is LayerNormBackwardResult<A> =>
  allLike(like, r.dx.data, r.dweight, r.dbias);

const LN_SPEC: OptionSpec<LayerNormOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  bias: { default: null, check: checks.floatArrayOrNull },
  eps: { default: 1e-5, check: checks.nonNegative },
  out: { default: undefined, check: checks.floatArray },
};
const LN_BACKWARD_SPEC: OptionSpec<LayerNormBackwardOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  bias: { default: null, check: checks.floatArrayOrNull },
  saveMean: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  saveInvstd: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  out: { default: undefined, check: checks.floatArray },
};

/** relu: the layers' fused activation, applied in the normalize pass. */
export function* layerNormSteps(input: Tensor, normalizedShape: number | readonly number[], options?: LayerNormOptions,
  relu: ReluForward | null = null): Steps<LayerNormResult> {
  const o = parseOptions<LayerNormOptions>('layerNorm', options, LN_SPEC);
  const { x, view, weight, bias, out } = checkInput(input, normalizedShape, o.weight, o.bias, o.out);
  if (isEmpty(x)) return { y: { data: out, shape: x.shape }, saveMean: new Float64Array(view.P), saveInvstd: new Float64Array(view.P) };
  // Statistics and normalize per row block in one kernel: a row is normalized while it is still in L1.
  const s = yield* forwardTrain(view, x.data, out, o.eps!, null, null, { w: weight, b: bias }, relu);
  return { y: { data: out, shape: x.shape }, saveMean: s.mean, saveInvstd: s.invstd };
}

/**
 * paramGrads false (frozen weight and bias): the per-position column sums are skipped (zeros). relu: the backward of
 * the layers' fused activation (the forward's bias is the `bias` option).
 */
export function* layerNormBackwardSteps(dyIn: Tensor, xIn: Tensor, normalizedShape: number | readonly number[],
  options: LayerNormBackwardOptions, paramGrads = true, relu: ReluBackward | null = null): Steps<LayerNormBackwardResult> {
  const o = parseOptions<LayerNormBackwardOptions>('layerNormBackward', options, LN_BACKWARD_SPEC);
  const { x, view, D, weight, bias, out } = checkInput(xIn, normalizedShape, o.weight, o.bias, o.out);
  const dy = checkTensor(dyIn, 'dy');
  checkSameTensor(dy, x);
  if (o.saveMean === undefined || o.saveInvstd === undefined) throw invalidType('layerNormBackward saveMean/saveInvstd', 'Float64Arrays', undefined);
  const mean = checkSavedStat(o.saveMean, 'saveMean', view.P), invstd = checkSavedStat(o.saveInvstd, 'saveInvstd', view.P);
  const grads = (dw: ArrayLike<number>, db: ArrayLike<number>) => ({
    dx: { data: out, shape: x.shape }, dweight: weight ? asDtype(x.data, dw) : null, dbias: bias ? asDtype(x.data, db) : null,
  });
  if (isEmpty(x)) return grads(new Float64Array(D), new Float64Array(D));
  // One pass: per row sum(dy * w) and sum(dy * w * (x - mean)), dx from the L1-resident row, and the weight/bias
  // column sums into per-block partials (dxhat = dy * w: the kernel weights dy, so the group scale is 1).
  const r = yield* backwardTrain(view, dy.data, x.data, out, mean, invstd, null, { w: weight, columns: paramGrads && (weight !== null || bias !== null) },
    relu && { r: relu.r, dr: relu.dr, beta: null, b: bias });
  return grads(r.dw ?? new Float64Array(D), r.db ?? new Float64Array(D));
}

/** torch.nn.functional.layer_norm: normalizes each row over the trailing normalizedShape dims (biased variance). */
export function layerNorm<T extends Tensor>(x: T, normalizedShape: number | readonly number[], options?: LayerNormOptions): LayerNormResult<T['data']> {
  const r = runSync(layerNormSteps(x, normalizedShape, options));
  return ofInputKind(x.data, r, isLnForward);
}
/** The gradient of layerNorm: dx, and dweight / dbias (returned, not accumulated). */
export function layerNormBackward<T extends Tensor>(dy: T, x: T, normalizedShape: number | readonly number[], options: LayerNormBackwardOptions): LayerNormBackwardResult<T['data']> {
  const r = runSync(layerNormBackwardSteps(dy, x, normalizedShape, options));
  return ofInputKind(x.data, r, isLnBackward);
}
/** layerNorm with the kernels on the libuv pool (same bits). */
export async function layerNormAsync<T extends Tensor>(x: T, normalizedShape: number | readonly number[], options?: LayerNormOptions): Promise<LayerNormResult<T['data']>> {
  const r = await runAsync(layerNormSteps(x, normalizedShape, options));
  return ofInputKind(x.data, r, isLnForward);
}

// ----------------------------------------------------------------------------------------------------------------
// RMS norm: y = x / sqrt(mean(x^2) + eps) * weight. No mean is subtracted; eps null = the dtype's machine epsilon.
// ----------------------------------------------------------------------------------------------------------------

/** Options of rmsNorm. */
export interface RmsNormOptions extends OutArg {
  /** The per-position scale (shape normalizedShape), of the input's dtype. Default null: none. */
  weight?: FloatArray | null;
  /** Added to mean(x²). Default null: the machine epsilon of the input's dtype (torch.finfo(dtype).eps). */
  eps?: number | null;
}
/** What rmsNorm returns: y, and per row 1 / sqrt(mean(x²) + eps) in float64. */
export interface RmsNormResult<A extends FloatArray = FloatArray> { y: Tensor<A>; saveInvRms: Float64Array }
/** Options of rmsNormBackward. */
export interface RmsNormBackwardOptions extends OutArg {
  /** The forward's weight. Default null: none. */
  weight?: FloatArray | null;
  /** The forward result's saveInvRms. */
  saveInvRms: FloatArray;
}
/** What rmsNormBackward returns; dweight is null where the forward had no weight. */
export interface RmsNormBackwardResult<A extends FloatArray = FloatArray> { dx: Tensor<A>; dweight: A | null }

const isRmsForward = <A extends FloatArray>(like: A, r: RmsNormResult): r is RmsNormResult<A> => isLike(like, r.y.data);
const isRmsBackward = <A extends FloatArray>(like: A, r: RmsNormBackwardResult): r is RmsNormBackwardResult<A> =>
  allLike(like, r.dx.data, r.dweight);

const RMS_SPEC: OptionSpec<RmsNormOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  eps: { default: null, check: (v, n) => { if (v !== null) checks.nonNegative(v, n); } },
  out: { default: undefined, check: checks.floatArray },
};
const RMS_BACKWARD_SPEC: OptionSpec<RmsNormBackwardOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  saveInvRms: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  out: { default: undefined, check: checks.floatArray },
};

/** torch.finfo(dtype).eps: RMSNorm's default eps. */
export function machineEpsilon(x: FloatArray): number {
  return x instanceof Float32Array ? 2 ** -23 : Number.EPSILON;
}

export function* rmsNormSteps(input: Tensor, normalizedShape: number | readonly number[], options?: RmsNormOptions): Steps<RmsNormResult> {
  const o = parseOptions<RmsNormOptions>('rmsNorm', options, RMS_SPEC);
  const { x, view, weight, out } = checkInput(input, normalizedShape, o.weight, null, o.out);
  if (isEmpty(x)) return { y: { data: out, shape: x.shape }, saveInvRms: new Float64Array(view.P) };
  const eps = o.eps ?? machineEpsilon(x.data);  // null: the dtype's machine epsilon, as torch.nn.RMSNorm
  // The kernel's invstd in rms mode: 1 / sqrt(M2 / D + mean^2 + eps) = 1 / sqrt(mean(x^2) + eps), no cancellation.
  const s = yield* forwardTrain(view, x.data, out, eps, null, null, { w: weight, rms: true });
  return { y: { data: out, shape: x.shape }, saveInvRms: s.invstd };
}

/** paramGrads false (frozen weight): the per-position reduction is skipped (zeros). */
export function* rmsNormBackwardSteps(dyIn: Tensor, xIn: Tensor, normalizedShape: number | readonly number[],
  options: RmsNormBackwardOptions, paramGrads = true): Steps<RmsNormBackwardResult> {
  const o = parseOptions<RmsNormBackwardOptions>('rmsNormBackward', options, RMS_BACKWARD_SPEC);
  const { x, view, D, weight, out } = checkInput(xIn, normalizedShape, o.weight, null, o.out);
  const dy = checkTensor(dyIn, 'dy');
  checkSameTensor(dy, x);
  if (o.saveInvRms === undefined) throw invalidType('rmsNormBackward saveInvRms', 'a Float64Array', undefined);
  const invRms = checkSavedStat(o.saveInvRms, 'saveInvRms', view.P);
  if (isEmpty(x)) return { dx: { data: out, shape: x.shape }, dweight: weight ? asDtype(x.data, new Float64Array(D)) : null };
  // dx = r * (dy * w) - x * r^3 * sum(dy * w * x) / D: the centered formulas with mean 0 and no sum(dy) term.
  const zeros = new Float64Array(view.P);
  const r = yield* backwardTrain(view, dy.data, x.data, out, zeros, invRms, null, { w: weight, rms: true, columns: weight !== null && paramGrads });
  return { dx: { data: out, shape: x.shape }, dweight: weight ? asDtype(x.data, r.dw ?? new Float64Array(D)) : null };
}

/** torch.nn.functional.rms_norm: y = x / sqrt(mean(x²) + eps) * weight over the trailing normalizedShape dims. */
export function rmsNorm<T extends Tensor>(x: T, normalizedShape: number | readonly number[], options?: RmsNormOptions): RmsNormResult<T['data']> {
  const r = runSync(rmsNormSteps(x, normalizedShape, options));
  return ofInputKind(x.data, r, isRmsForward);
}
/** The gradient of rmsNorm: dx, and dweight (returned, not accumulated). */
export function rmsNormBackward<T extends Tensor>(dy: T, x: T, normalizedShape: number | readonly number[], options: RmsNormBackwardOptions): RmsNormBackwardResult<T['data']> {
  const r = runSync(rmsNormBackwardSteps(dy, x, normalizedShape, options));
  return ofInputKind(x.data, r, isRmsBackward);
}
/** layerNormBackward with the kernels on the libuv pool (same bits). */
export async function layerNormBackwardAsync<T extends Tensor>(dy: T, x: T, normalizedShape: number | readonly number[], options: LayerNormBackwardOptions): Promise<LayerNormBackwardResult<T['data']>> {
  const r = await runAsync(layerNormBackwardSteps(dy, x, normalizedShape, options));
  return ofInputKind(x.data, r, isLnBackward);
}
/** rmsNorm with the kernels on the libuv pool (same bits). */
export async function rmsNormAsync<T extends Tensor>(x: T, normalizedShape: number | readonly number[], options?: RmsNormOptions): Promise<RmsNormResult<T['data']>> {
  const r = await runAsync(rmsNormSteps(x, normalizedShape, options));
  return ofInputKind(x.data, r, isRmsForward);
}
/** rmsNormBackward with the kernels on the libuv pool (same bits). */
export async function rmsNormBackwardAsync<T extends Tensor>(dy: T, x: T, normalizedShape: number | readonly number[], options: RmsNormBackwardOptions): Promise<RmsNormBackwardResult<T['data']>> {
  const r = await runAsync(rmsNormBackwardSteps(dy, x, normalizedShape, options));
  return ofInputKind(x.data, r, isRmsBackward);
}
