// LayerNorm and RMSNorm: torch.nn.LayerNorm / torch.nn.RMSNorm, bookkeeping only (math: functional/layer-norm.ts).
// Parameters have the shape of normalizedShape; no running statistics, so train and eval behave the same.
import { native } from '../binding.js';
import { describe } from '../errors.js';
import * as F from '../functional/layer-norm.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import type { Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import { getNumThreads } from '../runtime.js';
import { allocate, checkTensor, dtypeOf, numel, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { checkActivation, type Activation } from './activation.js';
import { channelArray, copyInto, matchesPlan, ofDtype, plainOut, RowScratch, trailingNormPlan, type CallPlan } from './call-plan.js';
import { Layer } from './layer.js';
import { accumulateGrad, Parameter, wantsGrad, type BackwardOptions, type ForwardOptions } from './module.js';

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

  // The fast path of repeated sync calls (call-plan.ts): a forward whose input matches what the last full forward
  // accepted (shape, dtype), with nothing in the options but `out`, and the backward after it, make the full path's
  // kernel call with the same arguments (so the same bits) and its bookkeeping, without re-deriving the checks or
  // allocating per-row arrays; anything else returns null, for the full path to check and run. Not for a layer with
  // an activation (LayerNorm's 'relu' takes the full path).
  /** What the last full forward accepted; null: none yet (or an empty input). */
  private plan: CallPlan | null = null;
  private rowScratch: RowScratch | null = null;

  /** Records the input a full forward accepted (called at its end, once nothing can throw). */
  protected acceptPlan(x: Tensor): void {
    this.plan = trailingNormPlan(x, this.dtype, numel(this.normalizedShape));
  }

  /**
   * The call the fast path serves for t — the input, or dy with `savedX`, the input of the forward it differentiates
   * (null: none) — and options; null: none, for the full path.
   */
  private planFor(t: unknown, options: unknown, savedX?: Tensor | null): PlannedCall | null {
    const plan = this.plan;
    if (plan === null || plan.dtype !== this.dtype || this.activation !== null || !matchesPlan(plan, t)) return null;
    // The saved input must still hold the plan's elements (a detached or resized buffer: the full path's error).
    if (savedX === null || (savedX !== undefined && (savedX.shape !== plan.shape || savedX.data.length !== plan.n))) return null;
    const out = plainOut(plan, options, (savedX ?? t).data), K = plan.view.K;
    const weight = channelArray(plan, this.weight?.data, K), bias = channelArray(plan, this.bias?.data, K);
    if (out === false || weight === undefined || bias === undefined) return null;
    let s = this.rowScratch;
    if (s === null || s.channels !== plan.view.P) s = this.rowScratch = new RowScratch(plan.view.P, K);
    return { plan, data: t.data, out: out ?? allocate(plan.dtype, plan.n), weight, bias, scratch: s };
  }

  /**
   * The fast forward (null: not served): the kernel call functional/layer-norm.ts makes (rows of K, the weight and,
   * for LayerNorm, the bias as position parameters; rms: RMSNorm's statistics), into the statistics set `saved` (the
   * saved state's mean or invstd) does not hold. Returns y, the saved input and the statistics written.
   */
  protected fastForward(x: unknown, options: unknown, saved: Float64Array | undefined, eps: number | null, rms: boolean):
    { y: Tensor; x: Tensor; mean: Float64Array; invstd: Float64Array } | null {
    const c = this.planFor(x, options);
    if (c === null) return null;
    const { P, K } = c.plan.view, s = c.scratch, stats = s.freeStats(saved);
    native().forwardTrain(P, 1, 1, K, getNumThreads(), c.data, c.out, eps ?? F.machineEpsilon(c.data), null, null,
      stats.mean, s.m2, stats.invstd, 1, c.weight, rms ? null : c.bias, rms);
    return { y: { data: c.out, shape: c.plan.shape }, x: { data: c.data, shape: c.plan.shape }, ...stats };
  }

  /**
   * The fast backward of the forward that saved x, mean (null: RMSNorm's 0) and invstd (null: not served): dx, and
   * the weight and bias gradients added into their grads when one of them wants its gradient, as the full path.
   */
  protected fastBackward(dy: unknown, options: unknown, saved: { x: Tensor; mean: Float64Array | null; invstd: Float64Array } | null,
    rms: boolean): Tensor | null {
    const c = this.planFor(dy, options, saved?.x ?? null);
    if (c === null || saved === null) return null;
    const { P, K } = c.plan.view, s = c.scratch;
    const columns = (c.weight !== null || c.bias !== null) && wantsGrad(this.weight, this.bias);
    native().backwardTrain(P, 1, 1, K, getNumThreads(), c.data, saved.x.data, c.out, saved.mean ?? s.zeros, saved.invstd,
      null, s.sumDy, s.sumDyXmu, 1, c.weight, columns ? s.dw : null, columns ? s.db : null, rms);
    if (columns) {
      const g = s.paramGrads(c.plan.dtype);  // rounded to the dtype first, as the full path's result arrays
      if (this.weight) accumulateGrad(this.weight, copyInto(g.dweight, s.dw));
      if (this.bias) accumulateGrad(this.bias, copyInto(g.dbias, s.db));
    }
    return { data: c.out, shape: c.plan.shape };
  }
}

/** A call the fast path serves: its plan, input data, output array, the layer's parameters and the row scratch. */
interface PlannedCall {
  plan: CallPlan; data: FloatArray; out: FloatArray; weight: FloatArray | null; bias: FloatArray | null; scratch: RowScratch;
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
    this.acceptPlan(x);
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

  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    const r = this.fastForward(x, options, this.saved?.mean, this.eps, false);
    if (r === null) return super.forward(x, options);
    this.saved = { x: r.x, mean: r.mean, invstd: r.invstd };
    return { data: ofDtype(x.data, r.y.data), shape: r.y.shape };
  }

  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    const dx = this.fastBackward(dy, options, this.saved, false);
    return dx === null ? super.backward(dy, options) : { data: ofDtype(dy.data, dx.data), shape: dx.shape };
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
    this.acceptPlan(x);
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

  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    const r = this.fastForward(x, options, this.saved?.invRms, this.eps, true);
    if (r === null) return super.forward(x, options);
    this.saved = { x: r.x, invRms: r.invstd };
    return { data: ofDtype(x.data, r.y.data), shape: r.y.shape };
  }

  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    const saved = this.saved, dx = this.fastBackward(dy, options, saved && { x: saved.x, mean: null, invstd: saved.invRms }, true);
    return dx === null ? super.backward(dy, options) : { data: ofDtype(dy.data, dx.data), shape: dx.shape };
  }
}
