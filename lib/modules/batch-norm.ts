// BatchNorm1d/2d/3d: torch.nn.modules.batchnorm, bookkeeping only. The math is functional/batch-norm.ts.
// As in PyTorch, the three classes differ only in the input ranks they accept.
import { native } from '../binding.js';
import type { Communicator } from '../distributed/communicator.js';
import * as F from '../functional/batch-norm.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checks, type OptionSpec } from '../options.js';
import { getNumThreads } from '../runtime.js';
import { allocate, checkTensor, isLike, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation } from './activation.js';
import { batchNormPlan, channelArray, ChannelScratch, copyInto, isPlanShape, matchesPlan, ofDtype, plainOut, type CallPlan } from './call-plan.js';
import { accumulateGrad, wantsGrad, type BackwardOptions, type ForwardOptions } from './module.js';
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
  /** The shape the last full forward accepted, for the fast path of repeated calls (call-plan.ts). */
  private plan: CallPlan | null = null;
  private scratch: ChannelScratch | null = null;
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
    const { tracked, factor } = this.momentumFactor(track);
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
    else if (r.count > 0) this.numBatchesTracked = tracked;
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd, training: bnTraining, comm: distributed ? comm : null };
    this.plan = batchNormPlan(x, this.dtype, this.channelsLast);
    return r.y;
  }

  /** PyTorch's _BatchNorm.forward: numBatchesTracked after this batch, and the running statistics' momentum factor. */
  private momentumFactor(track: boolean): { tracked: number; factor: number } {
    const tracked = this.numBatchesTracked + (track ? 1 : 0);
    return { tracked, factor: this.momentum === null ? (track ? 1 / tracked : 0) : this.momentum };
  }

  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    const y = this.planForward(x, options);
    if (y === null) return super.forward(x, options);
    return { data: ofDtype(x.data, y.data), shape: y.shape };
  }

  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    const dx = this.planBackward(dy, options);
    if (dx === null) return super.backward(dy, options);
    return { data: ofDtype(dy.data, dx.data), shape: dx.shape };
  }

  /**
   * forward for an input of the last full forward's shape and dtype, with nothing in the options but `out`: the
   * same kernel call and bookkeeping as forwardSteps (and, with the activation, as Layer's activatedForward without
   * a residual), without re-deriving the checks the plan stands for. null: anything else (another shape, a bad
   * argument, a residual, a communicator, nonFinite other than 'propagate'), for the full path to check and run.
   */
  private planForward(x: unknown, options: unknown): Tensor | null {
    const plan = this.plan;
    if (plan === null || plan.dtype !== this.dtype || !matchesPlan(plan, x)) return null;
    const out = plainOut(plan, options, x.data);
    const C = this.numFeatures, { P, A, B, K } = plan.view;
    const weight = channelArray(plan, this.weight?.data, C), bias = channelArray(plan, this.bias?.data, C);
    const rm = channelArray(plan, this.runningMean, C), rv = channelArray(plan, this.runningVar, C);
    if (out === false || weight === undefined || bias === undefined || rm === undefined || rv === undefined) return null;
    const bnTraining = this.training || rm === null;
    if ((rm === null) !== (rv === null) || (this.training && this.communicator() !== null)) return null;
    if (bnTraining && (A * K < 2 || this.nonFinite !== 'propagate')) return null;
    const y = out ?? allocate(plan.dtype, plan.n);
    const s = (this.scratch ??= new ChannelScratch(C));
    const stats = s.freeStats(this.saved?.mean), relu = this.activation === 'relu';
    if (bnTraining) {
      const { gamma, beta } = s.params(weight, bias);
      if (relu) {  // forwardTrain's arguments as core.ts passes them: no segments, position parameters or rms
        native().forwardTrain(P, A, B, K, getNumThreads(), x.data, y, this.eps, gamma, beta, stats.mean, s.m2, stats.invstd,
          1, null, null, false, true, null);
      } else {
        native().forwardTrain(P, A, B, K, getNumThreads(), x.data, y, this.eps, gamma, beta, stats.mean, s.m2, stats.invstd);
      }
      const { tracked, factor } = this.momentumFactor(this.training && this.trackRunningStats);
      if (rm && rv) F.updateRunningStats(rm, rv, stats.mean, s.m2, A * K, factor);
      this.numBatchesTracked = tracked;
    } else {
      F.evalCoefs(rm!, rv!, this.eps, weight, bias, { mean: stats.mean, invstd: stats.invstd, scale: s.scale, shift: s.shift });
      if (relu) native().normalize(P, A, B, K, getNumThreads(), x.data, y, stats.mean, s.scale, s.shift, null, null, true, null);
      else native().normalize(P, A, B, K, getNumThreads(), x.data, y, stats.mean, s.scale, s.shift, null, null);
    }
    const shape = plan.shape;
    this.saved = { x: { data: x.data, shape }, mean: stats.mean, invstd: stats.invstd, training: bnTraining, comm: null };
    this.recordPlainActivation(shape);
    return { data: y, shape };
  }

  /**
   * backward after a forward of the plan's shape, as planForward (null: the full path). With the activation: after a
   * forward without a residual only, and `out` must not share dy's memory (Layer's activatedBackward refuses it).
   */
  private planBackward(dy: unknown, options: unknown): Tensor | null {
    const plan = this.plan, saved = this.saved;
    if (plan === null || saved === null || saved.x.shape !== plan.shape || saved.comm !== null) return null;
    if (saved.x.data.length !== plan.n) return null;  // detached or resized since the forward: the full path's error
    const relu = this.activation === 'relu';
    if ((relu && !isPlanShape(plan, this.plainActivationShape())) || !matchesPlan(plan, dy)) return null;
    const out = plainOut(plan, options, saved.x.data), weight = channelArray(plan, this.weight?.data, this.numFeatures);
    const { P, A, B, K } = plan.view;
    if (out === false || weight === undefined || (saved.training && A * K < 2)) return null;
    if (relu && out !== undefined && out.buffer === dy.data.buffer) return null;
    const bias = relu ? channelArray(plan, this.bias?.data, this.numFeatures) : null;
    if (bias === undefined) return null;
    const dx = out ?? allocate(plan.dtype, plan.n);
    const s = (this.scratch ??= new ChannelScratch(this.numFeatures));
    const nb = native(), threads = getNumThreads(), paramGrads = wantsGrad(this.weight, this.bias);
    if (saved.training) {
      // The ReLU's mask is recomputed from the forward's beta (its gamma and statistics are the backward's own).
      const { gamma, beta } = s.params(weight, bias);
      if (relu) {
        nb.backwardTrain(P, A, B, K, threads, dy.data, saved.x.data, dx, saved.mean, saved.invstd, gamma, s.sumDy, s.sumDyXmu,
          1, null, null, null, false, true, null, null, beta, null);
      } else {
        nb.backwardTrain(P, A, B, K, threads, dy.data, saved.x.data, dx, saved.mean, saved.invstd, gamma, s.sumDy, s.sumDyXmu);
      }
    } else {
      // Eval's dx = dy * weight * invstd; with the activation, the mask from the forward's normalize: its scale is
      // the same invstd * weight (core.ts normalizeRelu), its shift the bias (0 without).
      const a = F.scaled(saved.invstd, weight, s.scale);
      if (relu) {
        const shift = bias ? copyInto(s.shift, bias) : s.shift.fill(0);
        if (paramGrads) nb.backwardReduce(P, A, B, K, threads, dy.data, saved.x.data, saved.mean, s.sumDy, s.sumDyXmu, null, true, null, null, a, shift);
        nb.backwardApply(P, A, B, K, threads, dy.data, saved.x.data, dx, saved.mean, a, null, null, null, true, null, null, a, shift);
      } else {
        if (paramGrads) nb.backwardReduce(P, A, B, K, threads, dy.data, saved.x.data, saved.mean, s.sumDy, s.sumDyXmu, null);
        nb.backwardApply(P, A, B, K, threads, dy.data, saved.x.data, dx, saved.mean, a, null, null, null);
      }
    }
    this.recordPlainBackward();
    if (this.weight && this.bias && paramGrads) {
      const g = s.paramGrads(plan.dtype);
      accumulateGrad(this.weight, F.weightGrad(s.sumDyXmu, saved.invstd, g.dweight));
      accumulateGrad(this.bias, copyInto(g.dbias, s.sumDy));
    }
    return { data: dx, shape: plan.shape };
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
