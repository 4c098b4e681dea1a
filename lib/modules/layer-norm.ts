// LayerNorm and RMSNorm: torch.nn.LayerNorm / torch.nn.RMSNorm, bookkeeping only (math: functional/layer-norm.ts).
// Parameters have the shape of normalizedShape; no running statistics, so train and eval behave the same.
import { describe } from '../errors.js';
import * as F from '../functional/layer-norm.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, numel, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation, type Activation } from './activation.js';
import { Layer } from './layer.js';
import { accumulateGrad, Parameter, wantsGrad } from './module.js';

/** Options of LayerNorm (PyTorch's defaults). */
export interface LayerNormModuleOptions {
  /** Added to the variance for numerical stability. Default 1e-5. */
  eps?: number;
  /** Learnable per-position weight (init 1) and bias (init 0) of shape normalizedShape. Default true. */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether the bias exists (PyTorch 2.1's `bias`). Default true. */
  bias?: boolean;
  /** The dtype of the parameters and of the inputs accepted. Default 'float32'. */
  dtype?: DType;
  /**
   * 'relu': y = relu(norm(x)) in the same call, and forward(x, { residual }) gives relu(norm(x) + residual)
   * (ResNet's BN → add → ReLU); backward includes the ReLU's gradient, its mask recomputed from the saved input and
   * statistics (no mask kept). Default null: no activation (PyTorch's layer).
   */
  activation?: Activation;
}
/** Options of RMSNorm (PyTorch's defaults). */
export interface RMSNormModuleOptions {
  /** Added to mean(x²). Default null: the machine epsilon of the dtype (torch.finfo(dtype).eps), as PyTorch. */
  eps?: number | null;
  /** Learnable per-position weight (init 1) of shape normalizedShape. Default true. */
  elementwiseAffine?: boolean;
  /** The dtype of the weight and of the inputs accepted. Default 'float32'. */
  dtype?: DType;
}

const LN_DEFAULTS: OptionSpec<LayerNormModuleOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  elementwiseAffine: { default: true, check: checks.boolean },
  bias: { default: true, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
  activation: { default: null, check: checkActivation },
});
const RMS_DEFAULTS: OptionSpec<RMSNormModuleOptions> = Object.freeze({
  eps: { default: null, check: (v, n) => { if (v !== null) checks.nonNegative(v, n); } },
  elementwiseAffine: { default: true, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
});

/** What LayerNorm and RMSNorm share: normalizedShape, per-position parameters, input checks, state slots. */
abstract class TrailingNorm extends Layer {
  /** The trailing dims normalized over (frozen). */
  readonly normalizedShape: readonly number[];
  /** Per-position scale, shape normalizedShape, init 1; null without elementwiseAffine. */
  weight: Parameter | null = null;
  /** Per-position shift, shape normalizedShape, init 0; null without it (always null for RMSNorm). */
  bias: Parameter | null = null;

  protected constructor(normalizedShape: number | readonly number[], dtype: DType) {
    super();
    this.normalizedShape = F.checkNormalizedShape(normalizedShape);
    this.setDtype(dtype);
  }

  protected newParam(fill: number): Parameter {
    return new Parameter(allocate(this.dtype, numel(this.normalizedShape)).fill(fill), this.normalizedShape);
  }

  /** weight 1, bias 0. */
  resetParameters(): void {
    this.assertIdle('resetParameters');
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  protected checkDtype(input: unknown): Tensor {
    const x = checkTensor(input, 'input');
    if (dtypeOf(x.data) !== this.dtype) throw new TypeError(`${this.layerName}: expected ${this.dtype} input (the layer's dtype) but received ${describe(x.data)}`);
    return x;
  }
}

/**
 * torch.nn.LayerNorm: normalizes over the trailing dims given by normalizedShape, per row, with the biased
 * variance: y = (x - mean) / sqrt(var + eps) * weight + bias. Input (*, ...normalizedShape). No running
 * statistics: train and eval behave the same.
 */
export class LayerNorm extends TrailingNorm {
  /** Added to the variance. */
  readonly eps: number;
  /** Whether weight (and bias) exist. */
  readonly elementwiseAffine: boolean;
  private saved: { x: Tensor; mean: Float64Array; invstd: Float64Array } | null = null;

  /**
   * @param normalizedShape the trailing dims to normalize over: a positive integer or a non-empty array of them
   * @param options eps (1e-5), elementwiseAffine (true), bias (true), dtype ('float32'), activation (null)
   */
  constructor(normalizedShape: number | readonly number[], options?: LayerNormModuleOptions) {
    const o = parseOptions<LayerNormModuleOptions>('LayerNorm', options, LN_DEFAULTS);
    super(normalizedShape, o.dtype!);
    this.eps = o.eps!; this.elementwiseAffine = o.elementwiseAffine!; this.setActivation(o.activation ?? null);
    if (this.elementwiseAffine) {
      this.weight = this.newParam(1);
      if (o.bias) this.bias = this.newParam(0);
    }
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined, relu: ReluForward | null): Steps<Tensor> {
    const x = this.checkDtype(input);
    this.checkOutAlias(out, x);
    const r = yield* F.layerNormSteps(x, this.normalizedShape, { weight: this.weight?.data ?? null, bias: this.bias?.data ?? null, eps: this.eps, out }, relu);
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd };
    return r.y;
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined, relu: ReluBackward | null): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.layerNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, this.normalizedShape, {
      weight: this.weight?.data ?? null, bias: this.bias?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd, out },
      wantsGrad(this.weight, this.bias), relu);
    if (this.weight && r.dweight) accumulateGrad(this.weight, r.dweight);
    if (this.bias && r.dbias) accumulateGrad(this.bias, r.dbias);
    return r.dx;
  }
}

/**
 * torch.nn.RMSNorm: y = x / sqrt(mean(x²) + eps) * weight over the trailing dims given by normalizedShape (no mean
 * subtracted, no bias). No running statistics.
 */
export class RMSNorm extends TrailingNorm {
  /** null: the machine epsilon of the dtype (torch.finfo(dtype).eps), as PyTorch. */
  readonly eps: number | null;
  /** Whether the weight exists. */
  readonly elementwiseAffine: boolean;
  private saved: { x: Tensor; invRms: Float64Array } | null = null;

  /**
   * @param normalizedShape the trailing dims to normalize over: a positive integer or a non-empty array of them
   * @param options eps (null: the dtype's machine epsilon), elementwiseAffine (true), dtype ('float32')
   */
  constructor(normalizedShape: number | readonly number[], options?: RMSNormModuleOptions) {
    const o = parseOptions<RMSNormModuleOptions>('RMSNorm', options, RMS_DEFAULTS);
    super(normalizedShape, o.dtype!);
    this.eps = o.eps!; this.elementwiseAffine = o.elementwiseAffine!;
    if (this.elementwiseAffine) this.weight = this.newParam(1);
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const x = this.checkDtype(input);
    this.checkOutAlias(out, x);
    const r = yield* F.rmsNormSteps(x, this.normalizedShape, { weight: this.weight?.data ?? null, eps: this.eps, out });
    this.saved = { x, invRms: r.saveInvRms };
    return r.y;
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.rmsNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, this.normalizedShape, {
      weight: this.weight?.data ?? null, saveInvRms: saved.invRms, out }, wantsGrad(this.weight));
    if (this.weight && r.dweight) accumulateGrad(this.weight, r.dweight);
    return r.dx;
  }
}
