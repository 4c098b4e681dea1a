// PyTorch's _NormBase: what BatchNorm and InstanceNorm share — numFeatures, eps, momentum, affine weight and bias,
// running statistics, numBatchesTracked, their resets and their state-dict entries. No forward here.
import { describe, formatShape } from '../errors.js';
import { checkPositiveInt, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { Module, Parameter, type StateSlot } from './module.js';

export interface NormBaseOptions {
  eps?: number;
  /** Weight of the new batch in the running stats; null: cumulative average over numBatchesTracked (BatchNorm). */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
  /** The channel is the last axis, e.g. (N, H, W, C) (BatchNorm). */
  channelsLast?: boolean;
  dtype?: DType;
}

export abstract class NormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  readonly channelsLast: boolean;
  readonly dtype: DType;
  weight: Parameter | null;
  bias: Parameter | null;
  runningMean: FloatArray | null;
  runningVar: FloatArray | null;
  numBatchesTracked = 0;

  protected constructor(numFeatures: number, options: unknown, spec: OptionSpec<NormBaseOptions>, layerName: string) {
    super();
    this.numFeatures = checkPositiveInt(numFeatures, `${layerName} numFeatures`);
    const o = parseOptions<NormBaseOptions>(layerName, options, spec);
    this.eps = o.eps!; this.momentum = o.momentum!; this.affine = o.affine!;
    this.trackRunningStats = o.trackRunningStats!; this.channelsLast = o.channelsLast ?? false; this.dtype = o.dtype!;
    const C = this.numFeatures;
    this.weight = this.affine ? new Parameter(allocate(this.dtype, C).fill(1)) : null;
    this.bias = this.affine ? new Parameter(allocate(this.dtype, C)) : null;
    this.runningMean = this.trackRunningStats ? allocate(this.dtype, C) : null;
    this.runningVar = this.trackRunningStats ? allocate(this.dtype, C).fill(1) : null;
  }

  protected get layerName(): string {
    return this.constructor.name;
  }

  parameters(): Parameter[] {
    return this.weight && this.bias ? [this.weight, this.bias] : [];
  }

  resetRunningStats(): void {
    this.assertIdle('resetRunningStats');
    if (!this.runningMean || !this.runningVar) return;
    this.runningMean.fill(0);
    this.runningVar.fill(1);
    this.numBatchesTracked = 0;
  }

  resetParameters(): void {
    this.resetRunningStats();
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  protected stateSlots(): StateSlot[] {
    const C = [this.numFeatures];
    const slots: StateSlot[] = [];
    if (this.weight && this.bias) {
      slots.push({ kind: 'float', key: 'weight', array: this.weight.data, shape: C });
      slots.push({ kind: 'float', key: 'bias', array: this.bias.data, shape: C });
    }
    if (this.runningMean && this.runningVar) {
      slots.push({ kind: 'float', key: 'running_mean', array: this.runningMean, shape: C });
      slots.push({ kind: 'float', key: 'running_var', array: this.runningVar, shape: C });
      slots.push({ kind: 'count', key: 'num_batches_tracked', get: () => this.numBatchesTracked,
        set: (n) => { this.numBatchesTracked = n; } });
    }
    return slots;
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
