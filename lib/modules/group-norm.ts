// GroupNorm: torch.nn.GroupNorm, bookkeeping only (math: functional/group-norm.ts). No running statistics, so
// train and eval behave the same.
import { describe, formatShape } from '../errors.js';
import * as F from '../functional/group-norm.js';
import type { Steps } from '../native-steps.js';
import { checkPositiveInt, checks, parseOptions, type OptionSpec } from '../options.js';
import { allocate, checkTensor, dtypeOf, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { accumulateGrad, Module, Parameter, type StateSlot } from './module.js';

export interface GroupNormModuleOptions { eps?: number; affine?: boolean; channelsLast?: boolean; dtype?: DType }

const DEFAULTS: OptionSpec<GroupNormModuleOptions> = Object.freeze({
  eps: { default: 1e-5, check: checks.nonNegative },
  affine: { default: true, check: checks.boolean },
  channelsLast: { default: false, check: checks.boolean },
  dtype: { default: 'float32', check: checks.dtype },
});

export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly affine: boolean;
  readonly channelsLast: boolean;
  readonly dtype: DType;
  weight: Parameter | null;
  bias: Parameter | null;
  private saved: { x: Tensor; mean: Float64Array; invstd: Float64Array } | null = null;

  constructor(numGroups: number, numChannels: number, options?: GroupNormModuleOptions) {
    super();
    this.numGroups = checkPositiveInt(numGroups, 'GroupNorm numGroups');
    this.numChannels = checkPositiveInt(numChannels, 'GroupNorm numChannels');
    if (numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: numChannels must be divisible by numGroups (got numChannels=${numChannels}, numGroups=${numGroups})`);
    }
    const o = parseOptions<GroupNormModuleOptions>('GroupNorm', options, DEFAULTS);
    this.eps = o.eps!; this.affine = o.affine!; this.channelsLast = o.channelsLast!; this.dtype = o.dtype!;
    this.weight = this.affine ? new Parameter(allocate(this.dtype, numChannels).fill(1)) : null;
    this.bias = this.affine ? new Parameter(allocate(this.dtype, numChannels)) : null;
  }

  protected get layerName(): string { return 'GroupNorm'; }

  parameters(): Parameter[] { return this.weight && this.bias ? [this.weight, this.bias] : []; }

  resetParameters(): void {
    this.assertIdle('resetParameters');
    this.weight?.data.fill(1);
    this.bias?.data.fill(0);
  }

  protected stateSlots(): StateSlot[] {
    if (!this.weight || !this.bias) return [];
    return [{ kind: 'float', key: 'weight', array: this.weight.data, shape: [this.numChannels] },
      { kind: 'float', key: 'bias', array: this.bias.data, shape: [this.numChannels] }];
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

  protected *forwardSteps(input: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const x = this.checkInput(input);
    this.checkOutAlias(out, x);
    const r = yield* F.groupNormSteps(x, this.numGroups, { weight: this.weight?.data ?? null, bias: this.bias?.data ?? null,
      eps: this.eps, channelsLast: this.channelsLast, out });
    this.saved = { x, mean: r.saveMean, invstd: r.saveInvstd };
    return r.y;
  }

  protected *backwardSteps(dy: Tensor, out: FloatArray | undefined): Steps<Tensor> {
    const saved = this.saved;
    if (!saved) throw this.noForward();
    this.checkOutAlias(out, saved.x, 'backward');
    const r = yield* F.groupNormBackwardSteps(checkTensor(dy, 'dy'), saved.x, this.numGroups, {
      weight: this.weight?.data ?? null, saveMean: saved.mean, saveInvstd: saved.invstd, channelsLast: this.channelsLast, out });
    if (this.weight && this.bias) {
      accumulateGrad(this.weight, r.dweight);
      accumulateGrad(this.bias, r.dbias);
    }
    return r.dx;
  }
}
