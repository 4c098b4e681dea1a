// Comparisons that report the first differing index and both values.
import { expect } from 'vitest';
import { firstMismatch, type Numeric } from './close.js';

export { tolerance, type Numeric } from './close.js';

/** |a - e| <= atol + rtol * |e| elementwise; NaN never passes. */
export function expectClose(actual: Numeric, expected: Numeric, tol: { rtol: number; atol: number }, what = 'value'): void {
  const m = firstMismatch(actual, expected, tol, what);
  if (m) expect.fail(m);
}

/**
 * |actual - expected| <= tol * max|expected| for every element: for large tensors computed in float32 from double
 * statistics, rounding stays far below it, while a stale tile, a wrong group or a missing tail is far above it.
 * One expect per array, so it stays fast on 25M elements; a failure names the first offending index.
 */
export function expectNear(actual: Numeric, expected: Numeric, tol: number, what = 'value'): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]!));
  const bound = tol * scale + 1e-30;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= bound)) expect.fail(`${what}: index ${i}: got ${actual[i]}, expected ${expected[i]} (|diff| ${d} > ${bound})`);
  }
}

/** Bit-identical typed arrays (NaN payloads included). */
export function expectBitIdentical(a: Float32Array | Float64Array, b: Float32Array | Float64Array, what = 'value'): void {
  expect(a.constructor, `${what}: dtype`).toBe(b.constructor);
  expect(a.length, `${what}: length`).toBe(b.length);
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      const j = Math.floor(i / a.BYTES_PER_ELEMENT);
      expect.fail(`${what}: first bit difference at element ${j}: ${a[j]} vs ${b[j]}`);
    }
  }
}

/** A seeded generator (mulberry32), so random inputs are reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal(0, 1) samples from a seeded generator (Box-Muller). */
export function randn(n: number, seed: number, Ctor: Float32ArrayConstructor | Float64ArrayConstructor = Float64Array): Float32Array | Float64Array {
  const r = rng(seed), out = new Ctor(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/**
 * The central difference (loss(v + h) - loss(v - h)) / 2h of `loss` in data[i], restoring data[i] afterwards:
 * the numeric side of a finite-difference gradient check.
 */
export function centralDifference(loss: () => number, data: Float32Array | Float64Array, i: number, h: number): number {
  const old = data[i]!;
  data[i] = old + h; const up = loss();
  data[i] = old - h; const down = loss();
  data[i] = old;
  return (up - down) / (2 * h);
}

/** The dtype name of a float array constructor. */
export const dtypeName = (C: Float32ArrayConstructor | Float64ArrayConstructor) => (C === Float32Array ? 'float32' : 'float64');

/** A tensor of `shape` with standard normal values from `seed`, of C's dtype. */
export const randnTensor = (C: Float32ArrayConstructor | Float64ArrayConstructor, shape: number[], seed: number) =>
  ({ data: randn(shape.reduce((a, b) => a * b, 1), seed, C), shape });

/** A resizable ArrayBuffer (ES2024: Node 20 has it; the TypeScript lib this project compiles against does not declare it). */
export function resizableBuffer(bytes: number, maxBytes: number): ArrayBuffer & { resize(bytes: number): void } {
  const Resizable = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(bytes: number): void };
  return new Resizable(bytes, { maxByteLength: maxBytes });
}
