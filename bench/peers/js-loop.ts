// The plain-JavaScript batch norm a user would write: two passes for the statistics, one to normalize; the
// backward's two sums and dx. Any layout: channel of element i from the channel stride.
import type { FloatArray } from 'normkit';

export interface Layout { C: number; inner: number }  // channel of element i = floor(i / inner) % C

export function layoutOf(shape: number[], channelsLast: boolean): Layout {
  const C = shape[channelsLast || shape.length === 2 ? shape.length - 1 : 1]!;
  const inner = channelsLast || shape.length === 2 ? 1 : shape.slice(2).reduce((a, b) => a * b, 1);
  return { C, inner };
}

export function jsForwardTrain(x: FloatArray, y: FloatArray, l: Layout, eps: number): { mean: Float64Array; invstd: Float64Array } {
  const { C, inner } = l, n = x.length / C;
  const mean = new Float64Array(C), m2 = new Float64Array(C);
  for (let i = 0; i < x.length; i++) mean[Math.floor(i / inner) % C]! += x[i]!;
  for (let c = 0; c < C; c++) mean[c]! /= n;
  for (let i = 0; i < x.length; i++) { const d = x[i]! - mean[Math.floor(i / inner) % C]!; m2[Math.floor(i / inner) % C]! += d * d; }
  const invstd = m2.map((v) => 1 / Math.sqrt(v / n + eps));
  for (let i = 0; i < x.length; i++) { const c = Math.floor(i / inner) % C; y[i] = (x[i]! - mean[c]!) * invstd[c]!; }
  return { mean, invstd };
}

export function jsEval(x: FloatArray, y: FloatArray, l: Layout, mean: Float64Array, invstd: Float64Array): void {
  const { C, inner } = l;
  for (let i = 0; i < x.length; i++) { const c = Math.floor(i / inner) % C; y[i] = (x[i]! - mean[c]!) * invstd[c]!; }
}

export function jsBackward(dy: FloatArray, x: FloatArray, dx: FloatArray, l: Layout, mean: Float64Array, invstd: Float64Array): void {
  const { C, inner } = l, n = x.length / C;
  const sdy = new Float64Array(C), sdyx = new Float64Array(C);
  for (let i = 0; i < x.length; i++) { const c = Math.floor(i / inner) % C; sdy[c]! += dy[i]!; sdyx[c]! += dy[i]! * (x[i]! - mean[c]!); }
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / inner) % C, inv = invstd[c]!;
    dx[i] = inv * (dy[i]! - sdy[c]! / n - (x[i]! - mean[c]!) * inv * inv * sdyx[c]! / n);
  }
}
