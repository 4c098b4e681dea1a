// Instance normalization (torch.nn.functional.instance_norm): per sample and channel, over the spatial positions;
// affine per channel. With running stats, PyTorch's update: the EMA of the per-instance statistics averaged over
// the batch, with the unbiased variance.
import { formatShape, invalidType } from '../errors.js';
import { instanceNormView } from '../geometry.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { checkTensor, dtypeOf, isLike } from '../tensor.js';
import { checkChannelArray, checkSameTensor, checkSavedStat, isEmpty, outputArray } from './checks.js';
import type { AffineArgs, EpsArg, OutArg, RunningStatsArgs, SavedStatsArgs } from './options.js';
import { acceptAll, applyGrad, asDtype, backwardTrain, forwardTrain, gradSums, normalize, normalizeRelu, ofInputKind,
  perChannelParamGrads, perSampleChannel, type GradSums, type ReluBackward, type ReluForward, type StatsGuard } from './core.js';

/** Options of instanceNorm (torch.nn.functional.instance_norm's arguments). */
export interface InstanceNormOptions extends RunningStatsArgs, AffineArgs, EpsArg, OutArg {
  /** true (default): normalize with each instance's statistics (and update the running ones); false: with the running ones. */
  useInputStats?: boolean;
  /** Weight of the new batch in the running statistics update. Default 0.1. */
  momentum?: number;
}
/** What instanceNorm returns: y, and per (sample, channel) the mean and 1 / sqrt(var + eps) in float64. */
export interface InstanceNormResult<A extends FloatArray = FloatArray> { y: Tensor<A>; /** (N * C) */ saveMean: Float64Array; saveInvstd: Float64Array }
/** Options of instanceNormBackward. */
export interface InstanceNormBackwardOptions extends SavedStatsArgs, OutArg {
  /** The forward's weight (C). Default null: 1. */
  weight?: FloatArray | null;
  /** The forward's useInputStats (default true); false: dx = dy * weight * invstd. */
  useInputStats?: boolean;
}
/** What instanceNormBackward returns: dx, and dweight / dbias (returned, not accumulated). */
export interface InstanceNormBackwardResult<A extends FloatArray = FloatArray> { dx: Tensor<A>; dweight: A; dbias: A }

const isForward = <A extends FloatArray>(like: A, r: InstanceNormResult): r is InstanceNormResult<A> => isLike(like, r.y.data);
const isBackward = <A extends FloatArray>(like: A, r: InstanceNormBackwardResult): r is InstanceNormBackwardResult<A> =>
  isLike(like, r.dx.data) && isLike(like, r.dweight) && isLike(like, r.dbias);

const SPEC: OptionSpec<InstanceNormOptions> = {
  runningMean: { default: null, check: checks.floatArrayOrNull },
  runningVar: { default: null, check: checks.floatArrayOrNull },
  weight: { default: null, check: checks.floatArrayOrNull },
  bias: { default: null, check: checks.floatArrayOrNull },
  useInputStats: { default: true, check: checks.boolean },
  momentum: { default: 0.1, check: checks.finite },
  eps: { default: 1e-5, check: checks.nonNegative },
  out: { default: undefined, check: checks.floatArray },
};
const BACKWARD_SPEC: OptionSpec<InstanceNormBackwardOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  saveMean: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  saveInvstd: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  useInputStats: { default: true, check: checks.boolean },
  out: { default: undefined, check: checks.floatArray },
};

function layout(x: Tensor) {
  if (x.shape.length < 2) throw new RangeError(`instanceNorm: expected at least 2D input (N, C, ...) (got ${x.shape.length}D input of shape ${formatShape(x.shape)})`);
  const view = instanceNormView(x.shape);
  return { view, N: view.P, C: view.B, S: view.K };
}

/** `accept` sees the per-instance statistics (N × C) before the running ones are updated (nonFinite option). */
/** relu: the layers' fused activation, applied in the normalize pass. */
export function* instanceNormSteps(input: Tensor, options?: InstanceNormOptions, accept: StatsGuard = acceptAll,
  relu: ReluForward | null = null): Steps<InstanceNormResult> {
  const o = parseOptions<InstanceNormOptions>('instanceNorm', options, SPEC);
  const x = checkTensor(input, 'input');
  const { view, N, C, S } = layout(x);
  const dtype = dtypeOf(x.data);
  const rm = o.runningMean == null ? null : checkChannelArray(o.runningMean, 'runningMean', C, dtype);
  const rv = o.runningVar == null ? null : checkChannelArray(o.runningVar, 'runningVar', C, dtype);
  if ((rm === null) !== (rv === null)) throw new TypeError('runningMean and runningVar must be given together');
  if (!o.useInputStats && rm === null) throw new TypeError('Expected running_mean and running_var to be defined when use_input_stats is false');
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtype);
  const bias = o.bias == null ? null : checkChannelArray(o.bias, 'bias', C, dtype);
  const y = outputArray(o.out, 'out', x);
  if (o.useInputStats && !isEmpty(x) && S === 1) {
    throw new RangeError(`Expected more than 1 spatial element when training, got input size ${formatShape(x.shape)}`);
  }
  const G = N * C;
  if (isEmpty(x)) return { y: { data: y, shape: x.shape }, saveMean: new Float64Array(G), saveInvstd: new Float64Array(G) };
  const gamma = perSampleChannel(weight, N, C), beta = perSampleChannel(bias, N, C);
  if (!o.useInputStats) {
    const mean = perSampleChannel(rm, N, C)!;
    const invstd = perSampleChannel(Float64Array.from(rv!, (v) => 1 / Math.sqrt(v + o.eps!)), N, C)!;
    yield* normalize(view, x.data, y, mean, invstd.map((v, g) => v * (gamma ? gamma[g]! : 1)), beta ?? new Float64Array(G),
      null, null, relu);
    return { y: { data: y, shape: x.shape }, saveMean: mean, saveInvstd: invstd };
  }
  const s = yield* forwardTrain(view, x.data, y, o.eps!, gamma, beta, {}, relu);
  if (rm && rv && accept(s.mean, s.m2)) {  // committed last: nothing throws after
    const k = o.momentum!;
    for (let c = 0; c < C; c++) {
      let sm = 0, sv = 0;
      for (let n = 0; n < N; n++) { sm += s.mean[n * C + c]!; sv += s.m2[n * C + c]! / (S - 1); }
      rm[c] = (1 - k) * rm[c]! + k * (sm / N);
      rv[c] = (1 - k) * rv[c]! + k * (sv / N);
    }
  }
  return { y: { data: y, shape: x.shape }, saveMean: s.mean, saveInvstd: s.invstd };
}

/**
 * paramGrads false (frozen weight and bias): the eval pass that only dweight / dbias need is skipped (zeros).
 * relu: the backward of the layers' fused activation, with the forward's bias.
 */
export function* instanceNormBackwardSteps(dyIn: Tensor, xIn: Tensor, options: InstanceNormBackwardOptions, paramGrads = true,
  relu: (ReluBackward & { bias: FloatArray | null }) | null = null): Steps<InstanceNormBackwardResult> {
  const o = parseOptions<InstanceNormBackwardOptions>('instanceNormBackward', options, BACKWARD_SPEC);
  const x = checkTensor(xIn, 'input'), dy = checkTensor(dyIn, 'dy');
  checkSameTensor(dy, x);
  const { view, N, C, S } = layout(x);
  if (o.saveMean === undefined || o.saveInvstd === undefined) throw invalidType('instanceNormBackward saveMean/saveInvstd', 'Float64Arrays', undefined);
  const mean = checkSavedStat(o.saveMean, 'saveMean', N * C), invstd = checkSavedStat(o.saveInvstd, 'saveInvstd', N * C);
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtypeOf(x.data));
  const dx = outputArray(o.out, 'out', x);
  const dweight = new Float64Array(C), dbias = new Float64Array(C);
  const result = () => ({ dx: { data: dx, shape: x.shape }, dweight: asDtype(x.data, dweight), dbias: asDtype(x.data, dbias) });
  if (isEmpty(x)) return result();
  const gamma = perSampleChannel(weight, N, C), beta = perSampleChannel(relu?.bias ?? null, N, C);
  let s: GradSums;
  if (o.useInputStats) {
    s = yield* backwardTrain(view, dy.data, x.data, dx, mean, invstd, gamma, {}, relu && { r: relu.r, dr: relu.dr, beta, b: null });
  } else {
    const viaNormalize = relu && normalizeRelu(relu, invstd, gamma, beta);
    s = paramGrads ? yield* gradSums(view, dy.data, x.data, mean, null, viaNormalize) : { sumDy: new Float64Array(N * C), sumDyXmu: new Float64Array(N * C) };
    yield* applyGrad(view, dy.data, x.data, dx, mean, { a: invstd.map((v, g) => v * (gamma ? gamma[g]! : 1)), b: null, c: null },
      null, viaNormalize);
  }
  perChannelParamGrads(s.sumDy, s.sumDyXmu, invstd, N, C, 1, dweight, dbias);
  return result();
}

/**
 * torch.nn.functional.instance_norm over (N, C, *) input: each (sample, channel) normalized over its positions
 * (biased variance); with running statistics and useInputStats, they are updated in place.
 */
export function instanceNorm<T extends Tensor>(x: T, options?: InstanceNormOptions): InstanceNormResult<T['data']> {
  const r = runSync(instanceNormSteps(x, options));
  return ofInputKind(x.data, r, isForward);
}
/** The gradient of instanceNorm: dx, and dweight / dbias (returned, not accumulated). */
export function instanceNormBackward<T extends Tensor>(dy: T, x: T, options: InstanceNormBackwardOptions): InstanceNormBackwardResult<T['data']> {
  const r = runSync(instanceNormBackwardSteps(dy, x, options));
  return ofInputKind(x.data, r, isBackward);
}
/** instanceNorm with the kernels on the libuv pool (same bits). */
export async function instanceNormAsync<T extends Tensor>(x: T, options?: InstanceNormOptions): Promise<InstanceNormResult<T['data']>> {
  const r = await runAsync(instanceNormSteps(x, options));
  return ofInputKind(x.data, r, isForward);
}
/** instanceNormBackward with the kernels on the libuv pool (same bits). */
export async function instanceNormBackwardAsync<T extends Tensor>(dy: T, x: T, options: InstanceNormBackwardOptions): Promise<InstanceNormBackwardResult<T['data']>> {
  const r = await runAsync(instanceNormBackwardSteps(dy, x, options));
  return ofInputKind(x.data, r, isBackward);
}
