// Tensors are plain { data, shape } records: dense, row-major, float32 or float64. Nothing is copied on the way in.
import { formatShape, invalidRange, invalidType } from './errors.js';

export type FloatArray = Float32Array | Float64Array;
export type DType = 'float32' | 'float64';

export interface Tensor {
  readonly data: FloatArray;
  readonly shape: readonly number[];
}

export function isFloatArray(v: unknown): v is FloatArray {
  return v instanceof Float32Array || v instanceof Float64Array;
}

export function dtypeOf(a: FloatArray): DType {
  return a instanceof Float32Array ? 'float32' : 'float64';
}

export function allocate(dtype: DType, length: number): FloatArray {
  return dtype === 'float32' ? new Float32Array(length) : new Float64Array(length);
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
 * product of its shape. Throws TypeError / RangeError naming `name`.
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
  return value as Tensor;
}

/** Makes a tensor, validating it; a number[] becomes a Float32Array. */
export function tensor(data: FloatArray | readonly number[], shape: readonly number[]): Tensor {
  const arr = Array.isArray(data) ? Float32Array.from(data as number[]) : data;
  return checkTensor({ data: arr, shape: [...shape] }, 'tensor');
}
