// Layer normalization and RMS normalization (torch.nn.functional.layer_norm / rms_norm): statistics over the
// trailing `normalizedShape` dims of each row, with per-position weight and bias. One group per row.
import { formatShape, invalidRange, invalidType } from '../errors.js';
import { rowView, type View4 } from '../geometry.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { checkTensor, dtypeOf, numel } from '../tensor.js';
import { checkChannelArray, checkSameTensor, checkSavedStat, isEmpty, outputArray } from './checks.js';
import { asDtype, backwardTrain, forwardTrain } from './core.js';

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
    throw new RangeError(`Given normalized_shape=${formatShape(shape)}, expected input with shape [*, ${shape.join(', ')}], ` +
      `but got input of size${formatShape(x.shape)}`);
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

export interface LayerNormOptions { weight?: FloatArray | null; bias?: FloatArray | null; eps?: number; out?: FloatArray }
export interface LayerNormResult { y: Tensor; saveMean: Float64Array; saveInvstd: Float64Array }
export interface LayerNormBackwardOptions {
  weight?: FloatArray | null; bias?: FloatArray | null; saveMean: FloatArray; saveInvstd: FloatArray; out?: FloatArray;
}
/** dweight / dbias are null where the forward had no weight / bias. */
export interface LayerNormBackwardResult { dx: Tensor; dweight: FloatArray | null; dbias: FloatArray | null }

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

export function* layerNormSteps(input: Tensor, normalizedShape: number | readonly number[], options?: LayerNormOptions): Steps<LayerNormResult> {
  const o = parseOptions<LayerNormOptions>('layerNorm', options, LN_SPEC);
  const { x, view, weight, bias, out } = checkInput(input, normalizedShape, o.weight, o.bias, o.out);
  if (isEmpty(x)) return { y: { data: out, shape: x.shape }, saveMean: new Float64Array(view.P), saveInvstd: new Float64Array(view.P) };
  // Statistics and normalize per row block in one kernel: a row is normalized while it is still in L1.
  const s = yield* forwardTrain(view, x.data, out, o.eps!, null, null, { w: weight, b: bias });
  return { y: { data: out, shape: x.shape }, saveMean: s.mean, saveInvstd: s.invstd };
}

export function* layerNormBackwardSteps(dyIn: Tensor, xIn: Tensor, normalizedShape: number | readonly number[],
  options: LayerNormBackwardOptions): Steps<LayerNormBackwardResult> {
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
  const r = yield* backwardTrain(view, dy.data, x.data, out, mean, invstd, null, { w: weight, columns: weight !== null || bias !== null });
  return grads(r.dw ?? [], r.db ?? []);
}

export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], options?: LayerNormOptions): LayerNormResult {
  return runSync(layerNormSteps(x, normalizedShape, options));
}
export function layerNormBackward(dy: Tensor, x: Tensor, normalizedShape: number | readonly number[], options: LayerNormBackwardOptions): LayerNormBackwardResult {
  return runSync(layerNormBackwardSteps(dy, x, normalizedShape, options));
}
export function layerNormAsync(x: Tensor, normalizedShape: number | readonly number[], options?: LayerNormOptions): Promise<LayerNormResult> {
  return runAsync(layerNormSteps(x, normalizedShape, options));
}

// ----------------------------------------------------------------------------------------------------------------
// RMS norm: y = x / sqrt(mean(x^2) + eps) * weight. No mean is subtracted; eps null = the dtype's machine epsilon.
// ----------------------------------------------------------------------------------------------------------------

export interface RmsNormOptions { weight?: FloatArray | null; eps?: number | null; out?: FloatArray }
export interface RmsNormResult { y: Tensor; saveInvRms: Float64Array }
export interface RmsNormBackwardOptions { weight?: FloatArray | null; saveInvRms: FloatArray; out?: FloatArray }
export interface RmsNormBackwardResult { dx: Tensor; dweight: FloatArray | null }

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

export function* rmsNormBackwardSteps(dyIn: Tensor, xIn: Tensor, normalizedShape: number | readonly number[],
  options: RmsNormBackwardOptions): Steps<RmsNormBackwardResult> {
  const o = parseOptions<RmsNormBackwardOptions>('rmsNormBackward', options, RMS_BACKWARD_SPEC);
  const { x, view, D, weight, out } = checkInput(xIn, normalizedShape, o.weight, null, o.out);
  const dy = checkTensor(dyIn, 'dy');
  checkSameTensor(dy, x);
  if (o.saveInvRms === undefined) throw invalidType('rmsNormBackward saveInvRms', 'a Float64Array', undefined);
  const invRms = checkSavedStat(o.saveInvRms, 'saveInvRms', view.P);
  if (isEmpty(x)) return { dx: { data: out, shape: x.shape }, dweight: weight ? asDtype(x.data, new Float64Array(D)) : null };
  // dx = r * (dy * w) - x * r^3 * sum(dy * w * x) / D: the centered formulas with mean 0 and no sum(dy) term.
  const zeros = new Float64Array(view.P);
  const r = yield* backwardTrain(view, dy.data, x.data, out, zeros, invRms, null, { w: weight, rms: true, columns: weight !== null });
  return { dx: { data: out, shape: x.shape }, dweight: r.dw ? asDtype(x.data, r.dw) : null };
}

export function rmsNorm(x: Tensor, normalizedShape: number | readonly number[], options?: RmsNormOptions): RmsNormResult {
  return runSync(rmsNormSteps(x, normalizedShape, options));
}
export function rmsNormBackward(dy: Tensor, x: Tensor, normalizedShape: number | readonly number[], options: RmsNormBackwardOptions): RmsNormBackwardResult {
  return runSync(rmsNormBackwardSteps(dy, x, normalizedShape, options));
}
