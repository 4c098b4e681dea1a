// PyTorch's _NormBase: what BatchNorm and InstanceNorm share — numFeatures, eps, momentum, affine weight and bias,
// running statistics, numBatchesTracked, their resets and their state-dict entries. No forward here.
import { describe, formatShape } from '../errors.js';
import { checkPositiveInt, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, type DType, type FloatArray, type Tensor } from '../tensor.js';
import type { StatsGuard } from '../functional/core.js';
import type { Activation } from './activation.js';
import { convertBuffer, Layer } from './layer.js';
import { Parameter, type StateSlot } from './module.js';

/** Options of BatchNorm1d/2d/3d and InstanceNorm1d/2d/3d (PyTorch's defaults; InstanceNorm's differ where noted). */
export interface NormBaseOptions {
  /** Added to the variance for numerical stability. Default 1e-5. */
  eps?: number;
  /**
   * Weight of the NEW batch in the running statistics: running = (1 - momentum) * running + momentum * batch.
   * null (BatchNorm only): a cumulative average over numBatchesTracked. Default 0.1.
   */
  momentum?: number | null;
  /** Learnable per-channel weight (init 1) and bias (init 0). Default true for BatchNorm, false for InstanceNorm. */
  affine?: boolean;
  /**
   * Keep running mean and variance, used in eval mode; false: batch statistics in both modes.
   * Default true for BatchNorm, false for InstanceNorm.
   */
  trackRunningStats?: boolean;
  /** BatchNorm only: the channel is the LAST axis, e.g. (N, H, W, C) as in TensorFlow/Keras. Default false. */
  channelsLast?: boolean;
  /** The dtype of the parameters and statistics, and of the inputs accepted. Default 'float32'. */
  dtype?: DType;
  /**
   * What a training batch whose statistics are not all finite (NaN or ±Inf) does to the running statistics.
   * 'propagate' (default, PyTorch): they absorb it. 'skip': the batch is normalized as usual but runningMean,
   * runningVar and numBatchesTracked stay unchanged, and `skippedBatches` counts it. 'throw': a RangeError naming
   * the first non-finite channel, and no state changes. Only the C statistics are looked at, never the tensor.
   */
  nonFinite?: NonFiniteMode;
  /**
   * 'relu': y = relu(norm(x)) in the same call, and forward(x, { residual }) gives relu(norm(x) + residual)
   * (ResNet's BN → add → ReLU); backward includes the ReLU's gradient, its mask recomputed from the saved input and
   * statistics (no mask kept). Default null: no activation (PyTorch's layer).
   */
  activation?: Activation;
}

/** See NormBaseOptions.nonFinite. */
export type NonFiniteMode = 'propagate' | 'skip' | 'throw';

/** What recalibrate may do that nobody else can (not exported from the package): set momentum, check idleness. */
export let recalibration: {
  setMomentum(layer: NormBase, momentum: number | null): void;
  assertIdle(layer: NormBase, what: string): void;
};

/** PyTorch's _NormBase: the state BatchNorm and InstanceNorm share. Not constructed directly. */
export abstract class NormBase extends Layer {
  /** C, the number of channels. */
  readonly numFeatures: number;
  /** Added to the variance for numerical stability. */
  readonly eps: number;
  /** Weight of the new batch in the running statistics; null: cumulative average. */
  get momentum(): number | null {
    return this.#momentum;
  }
  #momentum: number | null;
  static {
    // recalibrate's way in: momentum stays readonly to everyone else.
    recalibration = {
      setMomentum: (layer, momentum) => { layer.#momentum = momentum; },
      assertIdle: (layer, what) => layer.assertIdle(what),
    };
  }
  /** Whether weight and bias exist. */
  readonly affine: boolean;
  /** Whether running statistics are kept. */
  readonly trackRunningStats: boolean;
  /** Whether the channel is the last axis. */
  readonly channelsLast: boolean;
  /** Per-channel scale (gamma), shape [C], init 1; null without affine. */
  weight: Parameter | null;
  /** Per-channel shift (beta), shape [C], init 0; null without affine. */
  bias: Parameter | null;
  /** Running mean per channel (state-dict key running_mean), init 0; null without trackRunningStats. */
  runningMean: FloatArray | null;
  /** Running UNBIASED variance per channel (running_var), init 1; null without trackRunningStats. */
  runningVar: FloatArray | null;
  /** Training batches seen (num_batches_tracked, an int64 scalar in state dicts). */
  numBatchesTracked = 0;
  /** What a batch with non-finite statistics does to the running statistics (see NormBaseOptions.nonFinite). */
  readonly nonFinite: NonFiniteMode;
  /** Training batches left out of the running statistics by nonFinite 'skip' (not in state dicts). */
  skippedBatches = 0;

  protected constructor(numFeatures: number, options: unknown, spec: OptionSpec<NormBaseOptions>, layerName: string) {
    super();
    this.numFeatures = checkPositiveInt(numFeatures, `${layerName} numFeatures`);
    const o = parseOptions<NormBaseOptions>(layerName, options, spec);
    this.eps = o.eps!; this.#momentum = o.momentum!; this.affine = o.affine!;
    this.trackRunningStats = o.trackRunningStats!; this.channelsLast = o.channelsLast ?? false; this.setDtype(o.dtype!);
    this.nonFinite = o.nonFinite ?? 'propagate';
    this.setActivation(o.activation ?? null);
    const C = this.numFeatures;
    this.weight = this.affine ? new Parameter(allocate(this.dtype, C).fill(1)) : null;
    this.bias = this.affine ? new Parameter(allocate(this.dtype, C)) : null;
    this.runningMean = this.trackRunningStats ? allocate(this.dtype, C) : null;
    this.runningVar = this.trackRunningStats ? allocate(this.dtype, C).fill(1) : null;
  }

  /** Running mean 0, variance 1, numBatchesTracked 0 (no-op without running statistics). */
  resetRunningStats(): void {
    this.assertIdle('resetRunningStats');
    if (!this.runningMean || !this.runningVar) return;
    this.runningMean.fill(0);
    this.runningVar.fill(1);
    this.numBatchesTracked = 0;
  }

  /** resetRunningStats(), weight 1 and bias 0. */
  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  /** weight and bias (the Parameter fields), then PyTorch's buffers. */
  protected override stateSlots(): StateSlot[] {
    const C = [this.numFeatures];
    const slots = super.stateSlots();
    if (this.runningMean && this.runningVar) {
      slots.push({ kind: 'float', key: 'running_mean', array: this.runningMean, shape: C });
      slots.push({ kind: 'float', key: 'running_var', array: this.runningVar, shape: C });
      slots.push({ kind: 'count', key: 'num_batches_tracked', get: () => this.numBatchesTracked,
        set: (n) => { this.numBatchesTracked = n; } });
    }
    return slots;
  }

  protected override convertState(dtype: DType): () => void {
    const mean = convertBuffer(this.runningMean, dtype), variance = convertBuffer(this.runningVar, dtype);
    const setDtype = super.convertState(dtype);
    return () => { this.runningMean = mean; this.runningVar = variance; setDtype(); };
  }

  /**
   * The StatsGuard of one forward for the nonFinite option: `skipped()` tells afterwards whether it refused the
   * batch. `channelOf(g)` maps a statistics group to its channel (InstanceNorm's groups are sample × channel).
   */
  protected statsGuard(channelOf: (g: number) => number = (g) => g): { accept: StatsGuard; skipped: () => boolean } {
    let refused = false;
    const accept: StatsGuard = (mean, m2) => {
      if (this.nonFinite === 'propagate') return true;
      for (let g = 0; g < mean.length; g++) {
        if (Number.isFinite(mean[g]) && Number.isFinite(m2[g])) continue;
        if (this.nonFinite === 'skip') { refused = true; return false; }
        throw new RangeError(`${this.layerName}(${this.numFeatures}): the batch statistics of channel ${channelOf(g)} are not ` +
          `finite (mean ${mean[g]}, sum of squared deviations ${m2[g]}); nonFinite 'throw' left every state unchanged`);
      }
      return true;
    };
    return { accept, skipped: () => refused };
  }

  /** Rank in `ranks` (or at least 2), the layer's dtype; returns the checked tensor. */
  protected checkRankAndDtype(x: unknown, ranks: readonly number[] | 'atLeast2', name = 'input'): Tensor {
    const t = checkTensor(x, name);
    const rank = t.shape.length;
    if (ranks === 'atLeast2' ? rank < 2 : !ranks.includes(rank)) {
      const want = ranks === 'atLeast2' ? 'at least 2D' : ranks.map((r) => `${r}D`).join(' or ');
      throw new RangeError(`${this.layerName}: expected ${want} input (got ${rank}D input of shape ${formatShape(t.shape)})`);
    }
    if (dtypeOf(t.data) !== this.dtype) {
      throw new TypeError(`${this.layerName}: expected ${this.dtype} input (the layer's dtype) but received ${describe(t.data)}`);
    }
    return t;
  }

  /** The channel count along `axis` must be numFeatures. */
  protected checkChannels(t: Tensor, axis: number): void {
    if (t.shape[axis] !== this.numFeatures) {
      throw new RangeError(`${this.layerName}(${this.numFeatures}): expected ${this.numFeatures} channels in dimension ${axis} ` +
        `of the input but got ${t.shape[axis]} (input shape ${formatShape(t.shape)})`);
    }
  }
}
