// Parameter: a learnable tensor and its accumulated gradient, as torch.nn.Parameter. A Parameter assigned to a
// field of a Module is registered under the field's name (see module.ts).
import { formatShape, invalidType } from '../errors.js';
import { allocate, checkShape, dtypeOf, isFloatArray, numel, type FloatArray } from '../tensor.js';

/**
 * A learnable tensor: `data` (updated by your optimizer) and `grad`, which every backward ADDS into, as `.grad` in
 * PyTorch. `grad` is null until the first backward and again after `zeroGrad()` (PyTorch 2's `set_to_none`).
 * `Module.to(dtype)` replaces `data` and `grad` with converted arrays; the Parameter object stays the same.
 */
export class Parameter {
  /** The accumulated gradient, of data's dtype and length; null until a backward (or after zeroGrad()). */
  grad: FloatArray | null = null;
  /**
   * false freezes the parameter (PyTorch's requires_grad): backward leaves `grad` untouched (null stays null) and
   * skips the reductions only it needed. `zeroGrad()` still clears it, as PyTorch's zero_grad does. Default true.
   */
  get requiresGrad(): boolean {
    return this.trainable;
  }
  set requiresGrad(value: boolean) {
    if (typeof value !== 'boolean') throw invalidType('Parameter.requiresGrad', 'a boolean', value);
    this.trainable = value;
  }
  private trainable = true;
  /** The dims of the tensor (default [data.length]); state dicts carry this shape. */
  readonly shape: readonly number[];

  /**
   * @param data the values (kept by reference, not copied)
   * @param shape the dims, whose product must equal data.length (default: [data.length])
   * @throws TypeError if data is not a Float32Array or Float64Array, RangeError if the shape does not fit it
   */
  constructor(public data: FloatArray, shape?: readonly number[]) {
    if (!isFloatArray(data)) throw invalidType('Parameter data', 'a Float32Array or Float64Array', data);
    this.shape = checkShape(shape ?? [data.length], 'Parameter shape');
    if (numel(this.shape) !== data.length) {
      throw new RangeError(`Expected Parameter data to hold ${numel(this.shape)} elements for shape ${formatShape(this.shape)} but it holds ${data.length}`);
    }
  }
}

/** grad += g, allocating a zero grad first (gradients add up, as .grad does in PyTorch); nothing if p is frozen. */
export function accumulateGrad(p: Parameter, g: ArrayLike<number>): void {
  if (!p.requiresGrad) return;
  if (!p.grad) p.grad = allocate(dtypeOf(p.data), p.data.length);
  for (let i = 0; i < g.length; i++) p.grad[i]! += g[i]!;
}

/** Whether any of the (present) parameters wants a gradient: false lets backward skip the parameter reductions. */
export function wantsGrad(...params: ReadonlyArray<Parameter | null>): boolean {
  return params.some((p) => p !== null && p.requiresGrad);
}
