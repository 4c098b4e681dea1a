// InstanceNorm1d/2d/3d: torch.nn.modules.instancenorm, bookkeeping only (math: functional/instance-norm.ts).
// Defaults differ from BatchNorm (affine and running stats off); unbatched input (no N axis) is accepted.
import { formatShape } from '../errors.js';
import * as F from '../functional/instance-norm.js';
import { instanceNormView } from '../geometry.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checks, type OptionSpec } from '../options.js';
import { checkTensor, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation } from './activation.js';
import { ofDtype } from './call-plan.js';
import { accumulateGrad, wantsGrad, type BackwardOptions, type ForwardOptions } from './module.js';
import { NormBase, type NormBaseOptions } from './norm-base.js';
import { PerSampleFastPath } from './per-sample-plan.js';

/**
 * Options of InstanceNorm1d/2d/3d: eps 1e-5, momentum 0.1 (a number), affine FALSE, trackRunningStats FALSE,
 * dtype 'float32' (PyTorch's defaults), nonFinite 'propagate', activation null.
 */
export type InstanceNormModuleOptions = Omit<NormBaseOptions, 'channelsLast' | 'momentum'> & {
  /** Weight of the new batch in the running statistics (with trackRunningStats). Default 0.1. */
  momentum?: number;
};

const DEFAULTS: OptionSpec<NormBaseOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  momentum: { default: 0.1, check: checks.finite },
  affine: { default: false, check: checks.boolean },
  trackRunningStats: { default: false, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
  nonFinite: { default: 'propagate', check: checks.nonFinite },
  activation: { default: null, check: checkActivation },
}) as OptionSpec<NormBaseOptions>;

interface Saved { x: Tensor; mean: Float64Array; invstd: Float64Array; useInputStats: boolean }

/**
 * torch.nn.InstanceNorm*: per sample and channel, normalizes over the spatial positions (biased variance). With
 * trackRunningStats, eval uses running statistics averaged over the batch's instances.
 */
export abstract class InstanceNormBase extends NormBase {
  private saved: Saved | null = null;
  /** Repeated calls without running statistics or an activation (per-sample-plan.ts). */
  private readonly fast = new PerSampleFastPath();
  /** Rank of a batched input (N, C, *spatial); one less is an unbatched input. */
  protected abstract readonly batchedRank: number;

  /**
   * @param numFeatures C, the channels of the input
   * @param options eps (1e-5), momentum (0.1), affine (false), trackRunningStats (false), dtype ('float32'),
   *   nonFinite ('propagate'), activation (null)
   */
  constructor(numFeatures: number, options?: InstanceNormModuleOptions) {
    super(numFeatures, options, DEFAULTS, new.target.name);
  }

  /** The input seen as batched: an unbatched (C, *) input gets N = 1 (PyTorch's _handle_no_batch_input). */
  private batched(x: Tensor): Tensor {
    const b = x.shape.length === this.batchedRank ? x : { data: x.data, shape: Object.freeze([1, ...x.shape]) };
    if (b.shape[1] !== this.numFeatures && (this.affine || this.trackRunningStats)) {
      throw new RangeError(`${this.layerName}: expected input's size at dim=${x.shape.length - this.batchedRank + 1} to match ` +
        `num_features (${this.numFeatures}), but got: ${b.shape[1]} (input shape ${formatShape(x.shape)})`);
    }
    return b;
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined, relu: ReluForward | null): Steps<Tensor> {
    const given = this.checkRankAndDtype(input, [this.batchedRank - 1, this.batchedRank]);
    const x = this.batched(given);
    this.checkOutAlias(out, x);
    const useInputStats = this.training || !this.trackRunningStats;
    const guard = this.statsGuard((g) => g % this.numFeatures);
    const r = yield* F.instanceNormSteps(x, {
      runningMean: this.runningMean, runningVar: this.runningVar, weight: this.weight?.data ?? null,
      bias: this.bias?.data ?? null, useInputStats, momentum: this.momentum!, eps: this.eps, out,
    }, guard.accept, relu);
    if (guard.skipped()) this.skippedBatches++;
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd, useInputStats };
    // The fast path serves batch statistics only: a forward with the running ones records no plan.
    if (useInputStats) this.fast.accept(x, this.dtype, instanceNormView(x.shape), 1);
    else this.fast.forget();
    return { data: r.y.data, shape: given.shape };
  }

  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    // Served with the batch's statistics and no running ones to update (as without trackRunningStats, PyTorch's
    // default, in training and eval alike), and without an activation.
    const batchStatsOnly = this.runningMean === null && this.runningVar === null && (this.training || !this.trackRunningStats);
    const r = this.activation === null && batchStatsOnly
      ? this.fast.forward(x, options, this.dtype, this.weight?.data ?? null, this.bias?.data ?? null, this.eps, this.saved?.mean)
      : null;
    if (r === null) return super.forward(x, options);
    this.saved = { x: r.x, mean: r.mean, invstd: r.invstd, useInputStats: true };
    return { data: ofDtype(x.data, r.y.data), shape: r.y.shape };
  }

  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    const saved = this.activation === null && this.saved?.useInputStats ? this.saved : null;
    const dx = this.fast.backward(dy, options, this.dtype, saved, this.weight, this.bias);
    if (dx === null) return super.backward(dy, options);
    return { data: ofDtype(dy.data, dx.data), shape: dx.shape };
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined, relu: ReluBackward | null): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const d = checkTensor(dy, 'dy');
    const r = yield* F.instanceNormBackwardSteps(d.shape.length === saved.x.shape.length - 1 ? { data: d.data, shape: [1, ...d.shape] } : d,
      saved.x, { weight: this.weight?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd, useInputStats: saved.useInputStats, out },
      wantsGrad(this.weight, this.bias), relu && { ...relu, bias: this.bias?.data ?? null });
    if (this.weight && this.bias) {
      accumulateGrad(this.weight, r.dweight);
      accumulateGrad(this.bias, r.dbias);
    }
    return { data: r.dx.data, shape: d.shape };
  }
}

/** Instance norm over (N, C, L) or unbatched (C, L) input. */
export class InstanceNorm1d extends InstanceNormBase {
  protected readonly batchedRank = 3;
}

/** Instance norm over (N, C, H, W) or unbatched (C, H, W) input. */
export class InstanceNorm2d extends InstanceNormBase {
  protected readonly batchedRank = 4;
}

/** Instance norm over (N, C, D, H, W) or unbatched (C, D, H, W) input. */
export class InstanceNorm3d extends InstanceNormBase {
  protected readonly batchedRank = 5;
}
