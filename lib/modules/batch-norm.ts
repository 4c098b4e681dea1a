// BatchNorm1d/2d/3d: torch.nn.modules.batchnorm, bookkeeping only. The math is functional/batch-norm.ts.
// As in PyTorch, the three classes differ only in the input ranks they accept.
import type { Communicator } from '../distributed/communicator.js';
import * as F from '../functional/batch-norm.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checks, type OptionSpec } from '../options.js';
import { checkTensor, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation } from './activation.js';
import { accumulateGrad, wantsGrad } from './module.js';
import { NormBase, type NormBaseOptions } from './norm-base.js';

/** Options of BatchNorm1d/2d/3d: eps 1e-5, momentum 0.1, affine true, trackRunningStats true, channelsLast false, dtype 'float32', nonFinite 'propagate', activation null. */
export type BatchNormModuleOptions = NormBaseOptions;

export const BATCH_NORM_DEFAULTS: OptionSpec<NormBaseOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  momentum: { default: 0.1, check: checks.momentum },
  affine: { default: true, check: checks.boolean },
  trackRunningStats: { default: true, check: checks.boolean },
  channelsLast: { default: false, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
  nonFinite: { default: 'propagate', check: checks.nonFinite },
  activation: { default: null, check: checkActivation },
});

interface Saved { x: Tensor; mean: Float64Array; invstd: Float64Array; training: boolean; comm: Communicator | null }

/**
 * torch.nn.BatchNorm*: training normalizes with the batch mean and BIASED variance and updates the running
 * statistics (running = (1 - momentum) * running + momentum * batch, with the UNBIASED variance); eval normalizes
 * with the running statistics. BatchNorm1d/2d/3d differ only in the input ranks they accept.
 */
export abstract class BatchNormBase extends NormBase {
  private saved: Saved | null = null;
  /** The input ranks this class accepts, e.g. [4] for BatchNorm2d; 'atLeast2' for SyncBatchNorm. */
  protected abstract readonly ranks: readonly number[] | 'atLeast2';

  /**
   * @param numFeatures C, the channels of the input (dimension 1, or the last with channelsLast)
   * @param options eps (1e-5), momentum (0.1; null: cumulative average), affine (true), trackRunningStats (true),
   *   channelsLast (false), dtype ('float32'), nonFinite ('propagate'), activation (null)
   */
  constructor(numFeatures: number, options?: BatchNormModuleOptions, spec: OptionSpec<NormBaseOptions> = BATCH_NORM_DEFAULTS) {
    super(numFeatures, options, spec, new.target.name);
  }

  /** The communicator training statistics are synchronized over (SyncBatchNorm); null: this process alone. */
  protected communicator(): Communicator | null {
    return null;
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined, relu: ReluForward | null): Steps<Tensor> {
    const x = this.checkRankAndDtype(input, this.ranks);
    this.checkChannels(x, this.channelsLast ? x.shape.length - 1 : 1);
    this.checkOutAlias(out, x);
    // Eval never communicates (with trackRunningStats false it uses this rank's own batch statistics).
    const comm = this.training ? this.communicator() : null, distributed = comm !== null && comm.size > 1;
    // PyTorch's _BatchNorm.forward: the momentum factor and whether batch statistics are used. An empty rank of
    // a distributed batch still counts the batch: the global batch is what was normalized.
    const track = this.training && this.trackRunningStats && (x.data.length > 0 || distributed);
    const n = this.numBatchesTracked + (track ? 1 : 0);
    const factor = this.momentum === null ? (track ? 1 / n : 0) : this.momentum;
    const bnTraining = this.training || this.runningMean === null;
    const guard = this.statsGuard();
    const r = yield* F.batchNormSteps(x, {
      runningMean: this.runningMean, runningVar: this.runningVar, weight: this.weight?.data ?? null,
      bias: this.bias?.data ?? null, training: bnTraining, momentum: factor, eps: this.eps,
      channelsLast: this.channelsLast, out, comm,
    }, guard.accept, relu);
    // Committed last: a throw above changed nothing. A global batch of 0 values changed no statistics; a batch
    // refused by nonFinite 'skip' (global statistics with comm: every rank decides alike) is not tracked.
    if (guard.skipped()) this.skippedBatches++;
    else if (r.count > 0) this.numBatchesTracked = n;
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd, training: bnTraining, comm: distributed ? comm : null };
    return r.y;
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined, relu: ReluBackward | null): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.batchNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, {
      weight: this.weight?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd,
      training: saved.training, channelsLast: this.channelsLast, out, comm: saved.comm,
    }, wantsGrad(this.weight, this.bias), relu && { ...relu, bias: this.bias?.data ?? null });
    if (this.weight && this.bias) {
      accumulateGrad(this.weight, r.dweight);
      accumulateGrad(this.bias, r.dbias);
    }
    return r.dx;
  }
}

/** Batch norm over (N, C) or (N, C, L) input (channels last: (N, L, C)). */
export class BatchNorm1d extends BatchNormBase {
  protected readonly ranks = [2, 3] as const;
}

/** Batch norm over (N, C, H, W) input (channels last: (N, H, W, C)). */
export class BatchNorm2d extends BatchNormBase {
  protected readonly ranks = [4] as const;
}

/** Batch norm over (N, C, D, H, W) input (channels last: (N, D, H, W, C)). */
export class BatchNorm3d extends BatchNormBase {
  protected readonly ranks = [5] as const;
}
