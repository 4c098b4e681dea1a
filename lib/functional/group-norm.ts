// Group normalization (torch.nn.functional.group_norm): per sample, statistics over each group of C/G channels
// and all spatial positions; affine per channel. Statistics run on the group view; normalize and backward run on
// the channel view with the group's statistics expanded to its channels (see geometry.ts groupNormViews).
import { formatShape, invalidType } from '../errors.js';
import { groupNormViews } from '../geometry.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checkPositiveInt, checks, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { checkTensor, dtypeOf, isLike, numel } from '../tensor.js';
import { checkChannelArray, checkSameTensor, checkSavedStat, isEmpty, outputArray } from './checks.js';
import type { AffineArgs, ChannelsLastArg, EpsArg, OutArg, SavedStatsArgs } from './options.js';
import { asDtype, backwardTrain, forwardTrain, ofInputKind, perChannelParamGrads, perSampleChannel, type ReluBackward,
  type ReluForward } from './core.js';

/** Options of groupNorm: weight and bias per channel (C). */
export interface GroupNormOptions extends AffineArgs, EpsArg, ChannelsLastArg, OutArg {}
/** What groupNorm returns: y, and per (sample, group) the mean and 1 / sqrt(var + eps) in float64. */
export interface GroupNormResult<A extends FloatArray = FloatArray> { y: Tensor<A>; /** (N * G) */ saveMean: Float64Array; saveInvstd: Float64Array }
/** Options of groupNormBackward. */
export interface GroupNormBackwardOptions extends SavedStatsArgs, ChannelsLastArg, OutArg {
  /** The forward's weight (C). Default null: 1. */
  weight?: FloatArray | null;
}
/** What groupNormBackward returns: dx, and dweight / dbias (returned, not accumulated). */
export interface GroupNormBackwardResult<A extends FloatArray = FloatArray> { dx: Tensor<A>; dweight: A; dbias: A }

const isForward = <A extends FloatArray>(like: A, r: GroupNormResult): r is GroupNormResult<A> => isLike(like, r.y.data);
const isBackward = <A extends FloatArray>(like: A, r: GroupNormBackwardResult): r is GroupNormBackwardResult<A> =>
  isLike(like, r.dx.data) && isLike(like, r.dweight) && isLike(like, r.dbias);

const SPEC: OptionSpec<GroupNormOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  bias: { default: null, check: checks.floatArrayOrNull },
  eps: { default: 1e-5, check: checks.nonNegative },
  channelsLast: { default: false, check: checks.boolean },
  out: { default: undefined, check: checks.floatArray },
};
const BACKWARD_SPEC: OptionSpec<GroupNormBackwardOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  saveMean: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  saveInvstd: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  channelsLast: { default: false, check: checks.boolean },
  out: { default: undefined, check: checks.floatArray },
};

function layout(x: Tensor, numGroups: unknown, channelsLast: boolean) {
  const G = checkPositiveInt(numGroups, 'numGroups');
  const rank = x.shape.length;
  if (rank < 2) throw new RangeError(`groupNorm: expected at least 2D input (got ${rank}D input of shape ${formatShape(x.shape)})`);
  const N = x.shape[0]!, C = x.shape[channelsLast ? rank - 1 : 1]!;
  if (C % G !== 0) {
    throw new RangeError(`Expected number of channels in input to be divisible by num_groups, but got input of shape ${formatShape(x.shape)} and num_groups=${G}`);
  }
  const S = channelsLast ? numel(x.shape.slice(1, rank - 1)) : numel(x.shape.slice(2));
  // PyTorch's _verify_batch_size([N * C / G, G, *spatial]): one value per group of the whole batch is refused.
  if (N * (C / G) * S === 1) {
    throw new RangeError(`Expected more than 1 value per channel when training, got input size ${formatShape([N * C / G, G, ...(channelsLast ? x.shape.slice(1, rank - 1) : x.shape.slice(2))])}`);
  }
  return { G, N, C, S, views: groupNormViews(x.shape, G, channelsLast) };
}

/** relu: the layers' fused activation, applied in the normalize pass. */
export function* groupNormSteps(input: Tensor, numGroups: number, options?: GroupNormOptions,
  relu: ReluForward | null = null): Steps<GroupNormResult> {
  const o = parseOptions<GroupNormOptions>('groupNorm', options, SPEC);
  const x = checkTensor(input, 'input');
  const { G, N, C, views } = layout(x, numGroups, o.channelsLast!);
  const dtype = dtypeOf(x.data);
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtype);
  const bias = o.bias == null ? null : checkChannelArray(o.bias, 'bias', C, dtype);
  const y = outputArray(o.out, 'out', x);
  if (isEmpty(x)) return { y: { data: y, shape: x.shape }, saveMean: new Float64Array(N * G), saveInvstd: new Float64Array(N * G) };
  // Per group: statistics, then each of its C/G channels (the kernel's segments) normalized with its own affine,
  // while the group is still in cache.
  const s = yield* forwardTrain(views.stats, x.data, y, o.eps!, perSampleChannel(weight, N, C), perSampleChannel(bias, N, C),
    { segments: C / G }, relu);
  return { y: { data: y, shape: x.shape }, saveMean: s.mean, saveInvstd: s.invstd };
}

/** relu: the backward of the layers' fused activation, with the forward's bias. */
export function* groupNormBackwardSteps(dyIn: Tensor, xIn: Tensor, numGroups: number, options: GroupNormBackwardOptions,
  relu: (ReluBackward & { bias: FloatArray | null }) | null = null): Steps<GroupNormBackwardResult> {
  const o = parseOptions<GroupNormBackwardOptions>('groupNormBackward', options, BACKWARD_SPEC);
  const x = checkTensor(xIn, 'input'), dy = checkTensor(dyIn, 'dy');
  checkSameTensor(dy, x);
  const { G, N, C, views } = layout(x, numGroups, o.channelsLast!);
  if (o.saveMean === undefined || o.saveInvstd === undefined) throw invalidType('groupNormBackward saveMean/saveInvstd', 'Float64Arrays', undefined);
  const mean = checkSavedStat(o.saveMean, 'saveMean', N * G), invstd = checkSavedStat(o.saveInvstd, 'saveInvstd', N * G);
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtypeOf(x.data));
  const dx = outputArray(o.out, 'out', x);
  const dweight = new Float64Array(C), dbias = new Float64Array(C);
  const result = () => ({ dx: { data: dx, shape: x.shape }, dweight: asDtype(x.data, dweight), dbias: asDtype(x.data, dbias) });
  if (isEmpty(x)) return result();
  const per = C / G;
  // Per group, in one kernel: each channel's sum(dy) and sum(dy (x - mean)); the group's dxhat sums weigh them by
  // w_c; dx while the group is in cache.
  const s = yield* backwardTrain(views.stats, dy.data, x.data, dx, mean, invstd, perSampleChannel(weight, N, C), { segments: per },
    relu && { r: relu.r, dr: relu.dr, beta: perSampleChannel(relu.bias, N, C), b: null });
  perChannelParamGrads(s.sumDy, s.sumDyXmu, invstd, N, C, per, dweight, dbias);
  return result();
}

/**
 * torch.nn.functional.group_norm over (N, C, *) input: per sample, each group of C / numGroups channels is
 * normalized over its channels and positions (biased variance), then scaled and shifted per channel.
 */
export function groupNorm<T extends Tensor>(x: T, numGroups: number, options?: GroupNormOptions): GroupNormResult<T['data']> {
  const r = runSync(groupNormSteps(x, numGroups, options));
  return ofInputKind(x.data, r, isForward);
}
/** The gradient of groupNorm: dx, and dweight / dbias (returned, not accumulated). */
export function groupNormBackward<T extends Tensor>(dy: T, x: T, numGroups: number, options: GroupNormBackwardOptions): GroupNormBackwardResult<T['data']> {
  const r = runSync(groupNormBackwardSteps(dy, x, numGroups, options));
  return ofInputKind(x.data, r, isBackward);
}
/** groupNorm with the kernels on the libuv pool (same bits). */
export async function groupNormAsync<T extends Tensor>(x: T, numGroups: number, options?: GroupNormOptions): Promise<GroupNormResult<T['data']>> {
  const r = await runAsync(groupNormSteps(x, numGroups, options));
  return ofInputKind(x.data, r, isForward);
}
/** groupNormBackward with the kernels on the libuv pool (same bits). */
export async function groupNormBackwardAsync<T extends Tensor>(dy: T, x: T, numGroups: number, options: GroupNormBackwardOptions): Promise<GroupNormBackwardResult<T['data']>> {
  const r = await runAsync(groupNormBackwardSteps(dy, x, numGroups, options));
  return ofInputKind(x.data, r, isBackward);
}
