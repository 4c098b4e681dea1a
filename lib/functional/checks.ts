// Argument checks shared by the functional API. Each throws before any state is touched.
import { describe, formatShape, invalidType } from '../errors.js';
import type { DType, FloatArray, Tensor } from '../tensor.js';
import { dtypeOf, isFloatArray, numel } from '../tensor.js';

/** A per-channel array (running stats, affine params): a float array of x's dtype with `channels` elements. */
export function checkChannelArray(value: unknown, name: string, channels: number, dtype: DType): FloatArray {
  if (!isFloatArray(value)) throw invalidType(name, 'a Float32Array or Float64Array', value);
  if (dtypeOf(value) !== dtype) throw new TypeError(`Expected ${name} to be ${dtype} like the input but received ${describe(value)}`);
  // ATen's check_dims_match_num_input_features wording.
  if (value.length !== channels) throw new RangeError(`${name} should contain ${channels} elements not ${value.length}`);
  return value;
}

/** Saved statistics for backward: any float array with `channels` elements, widened to float64. */
export function checkSavedStat(value: unknown, name: string, channels: number): Float64Array {
  if (!isFloatArray(value)) throw invalidType(name, 'a Float64Array or Float32Array', value);
  if (value.length !== channels) throw new RangeError(`${name} should contain ${channels} elements not ${value.length}`);
  return value instanceof Float64Array ? value : Float64Array.from(value);
}

/** The output array: the caller's `out` (checked) or a new one. */
export function outputArray(out: unknown, name: string, like: Tensor): FloatArray {
  const dtype = dtypeOf(like.data), n = like.data.length;
  if (out === undefined) return dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  if (!isFloatArray(out)) throw invalidType(name, `a ${dtype === 'float32' ? 'Float32Array' : 'Float64Array'}`, out);
  if (dtypeOf(out) !== dtype) throw new TypeError(`Expected ${name} to be ${dtype} like the input but received ${describe(out)}`);
  if (out.length !== n) throw new RangeError(`Expected ${name} to hold ${n} elements for shape ${formatShape(like.shape)} but it holds ${out.length}`);
  return out;
}

/** dy must match x in shape and dtype. */
export function checkSameTensor(dy: Tensor, x: Tensor, dyName = 'dy', xName = 'the input'): void {
  if (dtypeOf(dy.data) !== dtypeOf(x.data)) {
    throw new TypeError(`Expected ${dyName} to be ${dtypeOf(x.data)} like ${xName} but received ${describe(dy.data)}`);
  }
  if (dy.shape.length !== x.shape.length || dy.shape.some((d, i) => d !== x.shape[i])) {
    throw new RangeError(`Expected ${dyName} of shape ${formatShape(x.shape)} (the shape of ${xName}) but received shape ${formatShape(dy.shape)}`);
  }
}

/** PyTorch's _verify_batch_size: training needs more than one value per channel. */
export function verifyBatchSize(shape: readonly number[], valuesPerChannel: number): void {
  if (valuesPerChannel === 1) {
    throw new RangeError(`Expected more than 1 value per channel when training, got input size ${formatShape(shape)}`);
  }
}

export function isEmpty(x: Tensor): boolean {
  return numel(x.shape) === 0;
}
