// Batch normalization, the math only (torch.nn.functional.batch_norm): no module state, explicit `training`.
// Each op is a generator of native steps (see native-steps.ts) so the sync and async forms share every line.
import { formatShape, invalidRange, invalidType } from '../errors.js';
import { batchNormView, channelAxis, type View4 } from '../geometry.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { allocate, checkTensor, dtypeOf, isLike } from '../tensor.js';
import { checkChannelArray, checkSameTensor, checkSavedStat, isEmpty, outputArray, verifyBatchSize } from './checks.js';
import type { AffineArgs, ChannelsLastArg, EpsArg, OutArg, RunningStatsArgs, SavedStatsArgs } from './options.js';
import { acceptAll, applyGrad, asDtype, backwardTrain, forwardTrain, gradSums, normalize, normalizeRelu, ofInputKind, type GradSums,
  type ReluBackward, type ReluForward, type StatsGuard } from './core.js';
import type { Communicator } from '../distributed/communicator.js';
import { checkCommunicator } from '../distributed/checks.js';
import { syncBackwardTrain, syncForwardTrain, type SyncLayout } from './sync-batch-norm.js';

/** Options of batchNorm (torch.nn.functional.batch_norm's arguments). */
export interface BatchNormOptions extends RunningStatsArgs, AffineArgs, EpsArg, ChannelsLastArg, OutArg {
  /** Required. true: normalize with batch statistics and update the running ones; false: use the running ones. */
  training: boolean;
  /** Weight of the new batch in the running statistics update (a number here; the layers resolve null). Default 0.1. */
  momentum?: number;
  /**
   * Training statistics over the global batch of every rank of `comm` (SyncBatchNorm). Every rank must call with
   * the same channels, dtype and layout; a rank with N = 0 still takes part. Ignored when not training; with
   * size 1 this is plain batchNorm, bit for bit. Default null: this process alone.
   */
  comm?: Communicator | null;
}

/** What batchNorm returns: the output and what batchNormBackward needs. */
export interface BatchNormResult<A extends FloatArray = FloatArray> {
  /** The output, of the input's dtype and shape. */
  y: Tensor<A>;
  /** Values per channel the statistics came from: N x spatial, summed over the ranks with `comm` (0: nothing changed). */
  count: number;
  /** The mean used to normalize (the batch mean when training, else the running mean), in float64. */
  saveMean: Float64Array;
  /** 1 / sqrt(var + eps) of the variance used to normalize, in float64. */
  saveInvstd: Float64Array;
}

/** Options of batchNormBackward. */
export interface BatchNormBackwardOptions extends SavedStatsArgs, ChannelsLastArg, OutArg {
  /** The forward's weight (C). Default null: 1. */
  weight?: FloatArray | null;
  /** Whether the forward normalized with batch statistics (default true); false: dx = dy * weight * invstd. */
  training?: boolean;
  /**
   * The communicator of a training forward with `comm`: Σdy and Σdy·(x − mean) are all-reduced so dx is the
   * gradient through the global statistics. dweight / dbias stay this rank's local contribution. Default null.
   */
  comm?: Communicator | null;
}

/** What batchNormBackward returns: dx, and the parameter gradients (returned, not accumulated). */
export interface BatchNormBackwardResult<A extends FloatArray = FloatArray> {
  /** The gradient of the input. */
  dx: Tensor<A>;
  /** The gradient of the weight (C). */
  dweight: A;
  /** The gradient of the bias (C). */
  dbias: A;
}

const isForward = <A extends FloatArray>(like: A, r: BatchNormResult): r is BatchNormResult<A> => isLike(like, r.y.data);
const isBackward = <A extends FloatArray>(like: A, r: BatchNormBackwardResult): r is BatchNormBackwardResult<A> =>
  isLike(like, r.dx.data) && isLike(like, r.dweight) && isLike(like, r.dbias);

const FORWARD_SPEC: OptionSpec<BatchNormOptions> = {
  runningMean: { default: null, check: checks.floatArrayOrNull },
  runningVar: { default: null, check: checks.floatArrayOrNull },
  weight: { default: null, check: checks.floatArrayOrNull },
  bias: { default: null, check: checks.floatArrayOrNull },
  training: { default: false, check: checks.boolean },
  momentum: { default: 0.1, check: checks.finite },
  eps: { default: 1e-5, check: checks.nonNegative },
  channelsLast: { default: false, check: checks.boolean },
  out: { default: undefined, check: checks.floatArray },
  comm: { default: null, check: (v, name) => { if (v !== null) checkCommunicator(v, name); } },
};

const BACKWARD_SPEC: OptionSpec<BatchNormBackwardOptions> = {
  weight: { default: null, check: checks.floatArrayOrNull },
  saveMean: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  saveInvstd: { default: undefined as unknown as FloatArray, check: checks.floatArray },
  training: { default: true, check: checks.boolean },
  channelsLast: { default: false, check: checks.boolean },
  out: { default: undefined, check: checks.floatArray },
  comm: { default: null, check: (v, name) => { if (v !== null) checkCommunicator(v, name); } },
};

/** The communicator a call synchronizes over: only with more than one rank (one rank is plain batch norm). */
function distributed(comm: Communicator | null | undefined, training: boolean): Communicator | null {
  return training && comm && comm.size > 1 ? comm : null;
}

const syncLayout = (x: Tensor, lay: Layout, channelsLast: boolean): SyncLayout =>
  ({ view: lay.view, channels: lay.channels, count: isEmpty(x) ? 0 : lay.perChannel, channelsLast, shape: x.shape });

interface Layout { view: View4; channels: number; perChannel: number }

function layoutOf(x: Tensor, name: string, channelsLast: boolean): Layout {
  if (x.shape.length < 2) {
    throw new RangeError(`${name}: expected at least 2D input (got ${x.shape.length}D input of shape ${formatShape(x.shape)})`);
  }
  const view = batchNormView(x.shape, channelsLast);
  return { view, channels: x.shape[channelAxis(x.shape.length, channelsLast)]!, perChannel: view.A * view.K };
}

/** Checks everything batchNorm will touch; changes nothing. */
function checkForward(x: unknown, options: unknown) {
  const t = checkTensor(x, 'input');
  const o = parseOptions<BatchNormOptions>('batchNorm', options, FORWARD_SPEC);
  if (options === undefined || (options as { training?: unknown }).training === undefined) {
    throw invalidType('batchNorm option "training"', 'a boolean', undefined);
  }
  const dtype = dtypeOf(t.data);
  const lay = layoutOf(t, 'batchNorm', o.channelsLast ?? false);
  const C = lay.channels;
  const rm = o.runningMean == null ? null : checkChannelArray(o.runningMean, 'runningMean', C, dtype);
  const rv = o.runningVar == null ? null : checkChannelArray(o.runningVar, 'runningVar', C, dtype);
  if ((rm === null) !== (rv === null)) throw new TypeError('runningMean and runningVar must be given together');
  if (!o.training && rm === null) throw new TypeError('runningMean and runningVar must be defined in evaluation mode');
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtype);
  const bias = o.bias == null ? null : checkChannelArray(o.bias, 'bias', C, dtype);
  const y = outputArray(o.out, 'out', t);
  const comm = distributed(o.comm, o.training);
  // With comm the check is on the global count, after the statistics are gathered (every rank throws alike).
  if (o.training && !comm && !isEmpty(t)) verifyBatchSize(t.shape, lay.perChannel);
  return { x: t, o, lay, rm, rv, weight, bias, y, comm };
}

/**
 * `accept` sees the training statistics before the running ones are updated (the layers' nonFinite option); `relu`:
 * the layers' fused activation, applied in the normalize pass.
 */
export function* batchNormSteps(input: Tensor, options: BatchNormOptions, accept: StatsGuard = acceptAll,
  relu: ReluForward | null = null): Steps<BatchNormResult> {
  const { x, o, lay, rm, rv, weight, bias, y, comm } = checkForward(input, options);
  const C = lay.channels, eps = o.eps!, momentum = o.momentum!;
  const f64 = (a: FloatArray | null) => a && Float64Array.from(a);  // not in eval, which needs neither
  if (comm) {  // an empty rank still takes part: every rank must make the same collectives
    const gamma = f64(weight), beta = f64(bias);
    const g = yield* syncForwardTrain(comm, syncLayout(x, lay, o.channelsLast!), x.data, y, eps, gamma, beta, relu);
    if (g.count > 0 && rm && rv && accept(g.mean, g.m2)) updateRunningStats(rm, rv, g.mean, g.m2, g.count, momentum);
    return { y: { data: y, shape: x.shape }, count: g.count, saveMean: g.mean, saveInvstd: g.invstd };
  }
  const n = lay.perChannel;
  if (isEmpty(x)) return { y: { data: y, shape: x.shape }, count: 0, saveMean: new Float64Array(C), saveInvstd: new Float64Array(C) };
  if (!o.training) {
    const k = { mean: new Float64Array(C), invstd: new Float64Array(C), scale: new Float64Array(C), shift: new Float64Array(C) };
    evalCoefs(rm!, rv!, eps, weight, bias, k);
    yield* normalize(lay.view, x.data, y, k.mean, k.scale, k.shift, null, null, relu);
    return { y: { data: y, shape: x.shape }, count: n, saveMean: k.mean, saveInvstd: k.invstd };
  }
  const s = yield* forwardTrain(lay.view, x.data, y, eps, f64(weight), f64(bias), {}, relu);  // biased variance to normalize
  if (rm && rv && accept(s.mean, s.m2)) updateRunningStats(rm, rv, s.mean, s.m2, n, momentum);
  return { y: { data: y, shape: x.shape }, count: n, saveMean: s.mean, saveInvstd: s.invstd };
}

/** Per-channel arrays (C), filled by evalCoefs. */
export interface EvalCoefs { mean: Float64Array; invstd: Float64Array; scale: Float64Array; shift: Float64Array }

/**
 * Eval's normalize from the running statistics: mean, invstd = 1 / sqrt(var + eps), scale = invstd * weight and
 * shift = bias (weight null: 1, bias null: 0), written into `into`.
 */
export function evalCoefs(rm: FloatArray, rv: FloatArray, eps: number, weight: FloatArray | null, bias: FloatArray | null,
  into: EvalCoefs): void {
  const { mean, invstd, scale, shift } = into;
  for (let c = 0; c < mean.length; c++) {
    mean[c] = rm[c]!;
    invstd[c] = 1 / Math.sqrt(rv[c]! + eps);
    shift[c] = bias ? bias[c]! : 0;
  }
  scaled(invstd, weight, scale);
}

/** into[c] = invstd[c] * weight[c] (weight null: 1): the per-channel factor of eval's normalize and its dx. */
export function scaled(invstd: Float64Array, weight: ArrayLike<number> | null, into: Float64Array): Float64Array {
  for (let c = 0; c < into.length; c++) into[c] = invstd[c]! * (weight ? weight[c]! : 1);
  return into;
}

/** The weight's gradient sum(dy * (x - mean)) * invstd per channel, into `into` (of the input's dtype: rounded). */
export function weightGrad(sumDyXmu: Float64Array, invstd: Float64Array, into: FloatArray): FloatArray {
  for (let c = 0; c < into.length; c++) into[c] = sumDyXmu[c]! * invstd[c]!;
  return into;
}

/** running = (1 - momentum) * running + momentum * batch, the variance unbiased (n / (n - 1)), as PyTorch. */
export function updateRunningStats(rm: FloatArray, rv: FloatArray, mean: Float64Array, m2: Float64Array, n: number, momentum: number): void {
  // Committed last by every caller: nothing throws after.
  for (let c = 0; c < rm.length; c++) {
    rm[c] = (1 - momentum) * rm[c]! + momentum * mean[c]!;
    rv[c] = (1 - momentum) * rv[c]! + momentum * (m2[c]! / (n - 1));
  }
}

/**
 * torch.nn.functional.batch_norm over (N, C, *) input (channels last: (N, *, C)): training normalizes with the batch
 * mean and biased variance and updates runningMean/runningVar in place (unbiased variance); otherwise normalizes
 * with them. Throws TypeError/RangeError on bad input, changing nothing.
 */
export function batchNorm<T extends Tensor>(x: T, options: BatchNormOptions): BatchNormResult<T['data']> {
  const r = runSync(batchNormSteps(x, options));
  return ofInputKind(x.data, r, isForward);
}

/** batchNorm with the kernels on the libuv pool (same bits). */
export async function batchNormAsync<T extends Tensor>(x: T, options: BatchNormOptions): Promise<BatchNormResult<T['data']>> {
  const r = await runAsync(batchNormSteps(x, options));
  return ofInputKind(x.data, r, isForward);
}

function checkBackward(dy: unknown, x: unknown, options: unknown) {
  const tdy = checkTensor(dy, 'dy'), tx = checkTensor(x, 'input');
  const o = parseOptions<BatchNormBackwardOptions>('batchNormBackward', options, BACKWARD_SPEC);
  checkSameTensor(tdy, tx);
  const lay = layoutOf(tx, 'batchNormBackward', o.channelsLast ?? false);
  const C = lay.channels;
  if (o.saveMean === undefined) throw invalidType('batchNormBackward option "saveMean"', 'a Float64Array', undefined);
  if (o.saveInvstd === undefined) throw invalidType('batchNormBackward option "saveInvstd"', 'a Float64Array', undefined);
  const mean = checkSavedStat(o.saveMean, 'saveMean', C), invstd = checkSavedStat(o.saveInvstd, 'saveInvstd', C);
  const weight = o.weight == null ? null : checkChannelArray(o.weight, 'weight', C, dtypeOf(tx.data));
  const dx = outputArray(o.out, 'out', tx);
  const comm = distributed(o.comm, o.training ?? true);
  if (o.training && !comm && !isEmpty(tx) && lay.perChannel < 2) {
    throw invalidRange('the input of a training batchNormBackward', 'more than 1 value per channel', `shape ${formatShape(tx.shape)}`);
  }
  return { dy: tdy, x: tx, training: o.training ?? true, lay, mean, invstd, weight, dx, comm, channelsLast: o.channelsLast! };
}

/** The backward of the layers' fused activation: the forward's bias besides ReluBackward (see core.ts). */
export interface BatchNormRelu extends ReluBackward { bias: FloatArray | null }

/**
 * paramGrads false (frozen weight and bias): the eval pass that only dweight / dbias need is skipped (zeros).
 * relu: the backward of the layers' fused activation (dy masked by the ReLU in every pass that reads it).
 */
export function* batchNormBackwardSteps(dyIn: Tensor, xIn: Tensor, options: BatchNormBackwardOptions, paramGrads = true,
  relu: BatchNormRelu | null = null): Steps<BatchNormBackwardResult> {
  const { dy, x, training, lay, mean, invstd, weight, dx, comm, channelsLast } = checkBackward(dyIn, xIn, options);
  const C = lay.channels;
  const gamma = weight ? Float64Array.from(weight) : null;
  // The ReLU's backward for the forwards that went through normalize (eval, SyncBatchNorm); training has its own.
  const viaNormalize = () => relu && normalizeRelu(relu, invstd, gamma, relu.bias);
  const zeros = () => ({ dx: { data: dx, shape: x.shape }, dweight: asDtype(x.data, new Float64Array(C)), dbias: asDtype(x.data, new Float64Array(C)) });
  let sums: GradSums;
  if (comm) {
    // An empty rank still takes part in the all-reduce; its local gradients are zero.
    sums = yield* syncBackwardTrain(comm, syncLayout(x, lay, channelsLast), dy.data, x.data, dx, mean, invstd, gamma, viaNormalize());
    if (isEmpty(x)) return zeros();
  } else if (isEmpty(x)) {
    return zeros();
  } else if (training) {
    sums = yield* backwardTrain(lay.view, dy.data, x.data, dx, mean, invstd, gamma, {},
      relu && { r: relu.r, dr: relu.dr, beta: relu.bias && Float64Array.from(relu.bias), b: null });
  } else {
    // eval: dx = dy * w * invstd; the sums give only dweight and dbias.
    const evalRelu = viaNormalize();
    sums = paramGrads ? yield* gradSums(lay.view, dy.data, x.data, mean, null, evalRelu) : { sumDy: new Float64Array(C), sumDyXmu: new Float64Array(C) };
    yield* applyGrad(lay.view, dy.data, x.data, dx, mean, { a: scaled(invstd, weight, new Float64Array(C)), b: null, c: null },
      null, evalRelu);
  }
  return { dx: { data: dx, shape: x.shape }, dweight: weightGrad(sums.sumDyXmu, invstd, allocate(dtypeOf(x.data), C)),
    dbias: asDtype(x.data, sums.sumDy) };
}

/** The gradient of batchNorm: dx, and dweight / dbias (returned, not accumulated). */
export function batchNormBackward<T extends Tensor>(dy: T, x: T, options: BatchNormBackwardOptions): BatchNormBackwardResult<T['data']> {
  const r = runSync(batchNormBackwardSteps(dy, x, options));
  return ofInputKind(x.data, r, isBackward);
}

/** batchNormBackward with the kernels on the libuv pool (same bits). */
export async function batchNormBackwardAsync<T extends Tensor>(dy: T, x: T, options: BatchNormBackwardOptions):
  Promise<BatchNormBackwardResult<T['data']>> {
  const r = await runAsync(batchNormBackwardSteps(dy, x, options));
  return ofInputKind(x.data, r, isBackward);
}
