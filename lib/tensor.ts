// Tensors are plain { data, shape } records: dense, row-major, float32 or float64. Nothing is copied on the way in.
import { formatShape, invalidRange, invalidType } from './errors.js';

/** The element arrays normkit computes on. */
export type FloatArray = Float32Array | Float64Array;
/** A dtype name, as PyTorch's `torch.float32` / `torch.float64`. */
export type DType = 'float32' | 'float64';
/** The array type of a dtype: `ArrayOf<'float64'>` is `Float64Array`. */
export type ArrayOf<D extends DType> = D extends 'float64' ? Float64Array : Float32Array;

/**
 * A dense, row-major (C order) tensor: `data.length` is the product of `shape`. Generic over its array type, so a
 * float32 pipeline sees `Float32Array` data without casts: every layer returns the array type it was given.
 * Any plain `{ data, shape }` object is a Tensor; outputs carry a frozen shape array of their own.
 */
export interface Tensor<A extends FloatArray = FloatArray> {
  readonly data: A;
  readonly shape: readonly number[];
}

/** Options of {@link tensor}. */
export interface TensorOptions<D extends DType = DType> {
  /** The dtype of the result. Default: the dtype of a typed array `data`, 'float32' for a number[]. */
  dtype?: D;
}

export function isFloatArray(v: unknown): v is FloatArray {
  return v instanceof Float32Array || v instanceof Float64Array;
}

/** Whether `v` has the same array type as `like` (narrows a FloatArray to a generic A without a cast). */
export function isLike<A extends FloatArray>(like: A, v: FloatArray): v is A {
  return (like instanceof Float32Array) === (v instanceof Float32Array);
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float32Array ? 'float32' : 'float64';
}

export function allocate(dtype: DType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
}

/** A copy of `values` as an array of `dtype` (float64 -> float32 rounds to nearest, as torch's .to()). */
export function convert(values: ArrayLike<number>, dtype: DType): FloatArray {
  return dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
}

/** Product of the dims; the caller has checked they are non-negative integers. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// 2^53 elements would overflow exact integer arithmetic; typed arrays stop far below that anyway.
const MAX_ELEMENTS = Number.MAX_SAFE_INTEGER;

/** Checks a shape: an array of non-negative integers whose product fits. Returns a frozen copy. */
export function checkShape(shape: unknown, name = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) throw invalidType(name, 'an array of non-negative integers', shape);
  let n = 1;
  shape.forEach((d: unknown, i) => {
    if (typeof d !== 'number') throw invalidType(`${name}[${i}]`, 'a non-negative integer', d);
    if (!Number.isInteger(d) || d < 0) throw invalidRange(`${name}[${i}]`, 'a non-negative integer', d);
    n *= d;
  });
  if (n > MAX_ELEMENTS) throw invalidRange(name, 'at most 2^53 - 1 elements', `shape ${formatShape(shape as number[])}`);
  return Object.freeze([...(shape as number[])]);
}

/** Whether a view's ArrayBuffer is detached (ArrayBuffer#detached is missing before Node 22, hence the
 * probe: constructing a view on a detached buffer throws on every version). */
export function isDetached(a: ArrayBufferView): boolean {
  const b = a.buffer as ArrayBuffer & { detached?: boolean };
  if (!(b instanceof ArrayBuffer)) return false;
  if (typeof b.detached === 'boolean') return b.detached;
  if (b.byteLength !== 0) return false;
  try {
    new Uint8Array(b);
    return false;
  } catch {
    return true;
  }
}

/**
 * Checks that `value` is a tensor ({ data: Float32Array | Float64Array, shape }) whose data length equals the
 * product of its shape. Throws TypeError / RangeError naming `name`. Returns a tensor with the same data and a
 * frozen copy of the shape, so an output built from it never shares the caller's shape array.
 */
export function checkTensor(value: unknown, name: string): Tensor {
  if (typeof value !== 'object' || value === null) throw invalidType(name, 'a tensor { data, shape }', value);
  const { data, shape } = value as { data?: unknown; shape?: unknown };
  if (!isFloatArray(data)) throw invalidType(`${name}.data`, 'a Float32Array or Float64Array', data);
  const s = checkShape(shape, `${name}.shape`);
  if (isDetached(data)) {
    throw new TypeError(`Expected an attached buffer for ${name}.data but its ArrayBuffer is detached`);
  }
  const n = numel(s);
  if (data.length !== n) {
    throw new RangeError(`Expected ${name}.data to hold ${n} elements for shape ${formatShape(s)} but it holds ${data.length}`);
  }
  return { data, shape: s };
}

const TENSOR_OPTIONS = ['dtype'];

/**
 * Makes a validated tensor, as `torch.tensor(data).reshape(shape)`.
 * - A typed array of the requested dtype (or with no dtype asked) is used as is, not copied.
 * - A number[] becomes a Float32Array, or a Float64Array with `{ dtype: 'float64' }`.
 * - A typed array of the other dtype is converted into a new array.
 * @param data the elements, row-major
 * @param shape the dims; their product must equal the number of elements
 * @param options `dtype`: 'float32' | 'float64' (default: data's own dtype, 'float32' for a number[])
 * @throws TypeError for a wrong kind of value, RangeError when the element count does not match the shape
 */
export function tensor<A extends FloatArray>(data: A, shape: readonly number[], options?: TensorOptions<never>): Tensor<A>;
export function tensor<D extends DType>(data: FloatArray | readonly number[], shape: readonly number[], options: TensorOptions<D> & { dtype: D }): Tensor<ArrayOf<D>>;
export function tensor(data: readonly number[], shape: readonly number[], options?: TensorOptions): Tensor<Float32Array>;
export function tensor(data: FloatArray | readonly number[], shape: readonly number[], options?: TensorOptions): Tensor;
export function tensor(data: FloatArray | readonly number[], shape: readonly number[], options?: TensorOptions): Tensor {
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalidType('tensor options', 'an object', options);
  for (const key of Object.keys(options ?? {})) {
    if (!TENSOR_OPTIONS.includes(key)) throw new TypeError(`unknown option "${key}" for tensor (known: ${TENSOR_OPTIONS.join(', ')})`);
  }
  const dtype: unknown = options?.dtype;
  if (dtype !== undefined && dtype !== 'float32' && dtype !== 'float64') throw invalidType('tensor option "dtype"', '"float32" or "float64"', dtype);
  let arr: unknown = data;
  if (Array.isArray(data)) {
    (data as unknown[]).forEach((v, i) => { if (typeof v !== 'number') throw invalidType(`tensor data[${i}]`, 'a number', v); });
    arr = convert(data as number[], dtype ?? 'float32');
  } else if (isFloatArray(data) && dtype !== undefined && dtypeOf(data) !== dtype) {
    arr = convert(data, dtype);
  }
  return checkTensor({ data: arr, shape }, 'tensor');
}
