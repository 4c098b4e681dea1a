// LayerNorm and RMSNorm: torch.nn.LayerNorm / torch.nn.RMSNorm, bookkeeping only (math: functional/layer-norm.ts).
// Parameters have the shape of normalizedShape; no running statistics, so train and eval behave the same.
import { describe } from '../errors.js';
import * as F from '../functional/layer-norm.js';
import type { Steps } from '../native-steps.js';
import { checks, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, numel, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { accumulateGrad, Module, Parameter, type StateSlot } from './module.js';

export interface LayerNormModuleOptions { eps?: number; elementwiseAffine?: boolean; bias?: boolean; dtype?: DType }
export interface RMSNormModuleOptions { eps?: number | null; elementwiseAffine?: boolean; dtype?: DType }

const LN_DEFAULTS: OptionSpec<LayerNormModuleOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  elementwiseAffine: { default: true, check: checks.boolean },
  bias: { default: true, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
});
const RMS_DEFAULTS: OptionSpec<RMSNormModuleOptions> = Object.freeze({
  eps: { default: null, check: (v, n) => { if (v !== null) checks.nonNegative(v, n); } },
  elementwiseAffine: { default: true, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
});

/** What LayerNorm and RMSNorm share: normalizedShape, per-position parameters, input checks, state slots. */
abstract class TrailingNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly dtype: DType;
  weight: Parameter | null = null;
  bias: Parameter | null = null;

  protected constructor(normalizedShape: number | readonly number[], dtype: DType) {
    super();
    this.normalizedShape = F.checkNormalizedShape(normalizedShape);
    this.dtype = dtype;
  }

  protected get layerName(): string { return this.constructor.name; }

  protected newParam(fill: number): Parameter {
    return new Parameter(allocate(this.dtype, numel(this.normalizedShape)).fill(fill), this.normalizedShape);
  }

  parameters(): Parameter[] { return [this.weight, this.bias].filter((p): p is Parameter => p !== null); }

  resetParameters(): void {
    this.assertIdle('resetParameters');
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  protected stateSlots(): StateSlot[] {
    const slots: StateSlot[] = [];
    if (this.weight) slots.push({ kind: 'float', key: 'weight', array: this.weight.data, shape: this.normalizedShape });
    if (this.bias) slots.push({ kind: 'float', key: 'bias', array: this.bias.data, shape: this.normalizedShape });
    return slots;
  }

  protected checkDtype(input: unknown): Tensor {
    const x = checkTensor(input, 'input');
    if (dtypeOf(x.data) !== this.dtype) throw new TypeError(`${this.layerName}: expected ${this.dtype} input (the layer's dtype) but received ${describe(x.data)}`);
    return x;
  }
}

export class LayerNorm extends TrailingNorm {
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  private saved: { x: Tensor; mean: Float64Array; invstd: Float64Array } | null = null;

  constructor(normalizedShape: number | readonly number[], options?: LayerNormModuleOptions) {
    const o = parseOptions<LayerNormModuleOptions>('LayerNorm', options, LN_DEFAULTS);
    super(normalizedShape, o.dtype!);
    this.eps = o.eps!; this.elementwiseAffine = o.elementwiseAffine!;
    if (this.elementwiseAffine) {
      this.weight = this.newParam(1);
      if (o.bias) this.bias = this.newParam(0);
    }
  }

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const x = this.checkDtype(input);
    this.checkOutAlias(out, x);
    const r = yield* F.layerNormSteps(x, this.normalizedShape, { weight: this.weight?.data ?? null, bias: this.bias?.data ?? null, eps: this.eps, out });
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd };
    return r.y;
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.layerNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, this.normalizedShape, {
      weight: this.weight?.data ?? null, bias: this.bias?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd, out });
    if (this.weight && r.dweight) accumulateGrad(this.weight, r.dweight);
    if (this.bias && r.dbias) accumulateGrad(this.bias, r.dbias);
    return r.dx;
  }
}

export class RMSNorm extends TrailingNorm {
  /** null: the machine epsilon of the dtype (torch.finfo(dtype).eps), as PyTorch. */
  readonly eps: number | null;
  readonly elementwiseAffine: boolean;
  private saved: { x: Tensor; invRms: Float64Array } | null = null;

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
      weight: this.weight?.data ?? null, saveInvRms: saved.invRms, out });
    if (this.weight && r.dweight) accumulateGrad(this.weight, r.dweight);
    return r.dx;
  }
}
