// GroupNorm: torch.nn.GroupNorm, bookkeeping only (math: functional/group-norm.ts). No running statistics, so
// train and eval behave the same.
import { describe, formatShape } from '../errors.js';
import * as F from '../functional/group-norm.js';
import { groupNormViews } from '../geometry.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checkPositiveInt, checks, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation, type Activation } from './activation.js';
import { Layer } from './layer.js';
import { ofDtype } from './call-plan.js';
import { accumulateGrad, Parameter, type BackwardOptions, type ForwardOptions } from './module.js';
import { PerSampleFastPath, type SampleSaved } from './per-sample-plan.js';

/** Options of GroupNorm (PyTorch's defaults). */
export interface GroupNormModuleOptions {
  /** Added to the variance for numerical stability. Default 1e-5. */
  eps?: number;
  /** Learnable per-channel weight (init 1) and bias (init 0), shape [numChannels]. Default true. */
  affine?: boolean;
  /** The channel is the LAST axis, e.g. (N, H, W, C). Default false. */
  channelsLast?: boolean;
  /** The dtype of the parameters and of the inputs accepted. Default 'float32'. */
  dtype?: DType;
  /**
   * 'relu': y = relu(norm(x)) in the same call, and forward(x, { residual }) gives relu(norm(x) + residual)
   * (ResNet's BN → add → ReLU); backward includes the ReLU's gradient, its mask recomputed from the saved input and
   * statistics (no mask kept). Default null: no activation (PyTorch's layer).
   */
  activation?: Activation;
}

const DEFAULTS: OptionSpec<GroupNormModuleOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  affine: { default: true, check: checks.boolean },
  channelsLast: { default: false, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
  activation: { default: null, check: checkActivation },
});

/**
 * torch.nn.GroupNorm: per sample, normalizes each group of numChannels / numGroups channels over those channels
 * and all spatial positions (biased variance), then applies a per-channel affine. Input (N, C, *) (channels last:
 * (N, *, C)). No running statistics: train and eval behave the same.
 */
export class GroupNorm extends Layer {
  /** G, the number of groups the channels are split into. */
  readonly numGroups: number;
  /** C, the number of channels (a multiple of numGroups). */
  readonly numChannels: number;
  /** Added to the variance. */
  readonly eps: number;
  /** Whether weight and bias exist. */
  readonly affine: boolean;
  /** Whether the channel is the last axis. */
  readonly channelsLast: boolean;
  /** Per-channel scale, shape [C], init 1; null without affine. */
  weight: Parameter | null;
  /** Per-channel shift, shape [C], init 0; null without affine. */
  bias: Parameter | null;
  private saved: SampleSaved | null = null;
  /** Repeated calls without an activation (per-sample-plan.ts). */
  private readonly fast = new PerSampleFastPath();

  /**
   * @param numGroups G, a positive integer dividing numChannels
   * @param numChannels C, the channels of the input
   * @param options eps (1e-5), affine (true), channelsLast (false), dtype ('float32'), activation (null)
   */
  constructor(numGroups: number, numChannels: number, options?: GroupNormModuleOptions) {
    super();
    this.numGroups = checkPositiveInt(numGroups, 'GroupNorm numGroups');
    this.numChannels = checkPositiveInt(numChannels, 'GroupNorm numChannels');
    if (numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: numChannels must be divisible by numGroups (got numChannels=${numChannels}, numGroups=${numGroups})`);
    }
    const o = parseOptions<GroupNormModuleOptions>('GroupNorm', options, DEFAULTS);
    this.eps = o.eps!; this.affine = o.affine!; this.channelsLast = o.channelsLast!; this.setDtype(o.dtype!);
    this.setActivation(o.activation ?? null);
    this.weight = this.affine ? new Parameter(allocate(this.dtype, numChannels).fill(1)) : null;
    this.bias = this.affine ? new Parameter(allocate(this.dtype, numChannels)) : null;
  }

  /** weight 1, bias 0. */
  resetParameters(): void {
    this.assertIdle('resetParameters');
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  private checkInput(input: unknown): Tensor {
    const x = checkTensor(input, 'input');
    if (dtypeOf(x.data) !== this.dtype) throw new TypeError(`GroupNorm: expected ${this.dtype} input (the layer's dtype) but received ${describe(x.data)}`);
    const rank = x.shape.length;
    if (rank < 2) throw new RangeError(`GroupNorm: expected at least 2D input (got ${rank}D input of shape ${formatShape(x.shape)})`);
    const axis = this.channelsLast ? rank - 1 : 1;
    if (x.shape[axis] !== this.numChannels) {
      throw new RangeError(`GroupNorm(${this.numGroups}, ${this.numChannels}): expected ${this.numChannels} channels in dimension ${axis} ` +
        `of the input but got ${x.shape[axis]} (input shape ${formatShape(x.shape)})`);
    }
    return x;
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined, relu: ReluForward | null): Steps<Tensor> {
    const x = this.checkInput(input);
    this.checkOutAlias(out, x);
    const r = yield* F.groupNormSteps(x, this.numGroups, { weight: this.weight?.data ?? null, bias: this.bias?.data ?? null,
      eps: this.eps, channelsLast: this.channelsLast, out }, relu);
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd };
    this.fast.accept(x, this.dtype, groupNormViews(x.shape, this.numGroups, this.channelsLast).stats, this.numChannels / this.numGroups);
    return r.y;
  }

  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    const r = this.activation === null
      ? this.fast.forward(x, options, this.dtype, this.weight?.data ?? null, this.bias?.data ?? null, this.eps, this.saved?.mean)
      : null;
    if (r === null) return super.forward(x, options);
    this.saved = { x: r.x, mean: r.mean, invstd: r.invstd };
    return { data: ofDtype(x.data, r.y.data), shape: r.y.shape };
  }

  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    const saved = this.activation === null ? this.saved : null;
    const dx = this.fast.backward(dy, options, this.dtype, saved, this.weight, this.bias);
    if (dx === null) return super.backward(dy, options);
    return { data: ofDtype(dy.data, dx.data), shape: dx.shape };
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined, relu: ReluBackward | null): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.groupNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, this.numGroups, {
      weight: this.weight?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd, channelsLast: this.channelsLast, out },
      relu && { ...relu, bias: this.bias?.data ?? null });
    if (this.weight && this.bias) {
      accumulateGrad(this.weight, r.dweight);
      accumulateGrad(this.bias, r.dbias);
    }
    return r.dx;
  }
}
