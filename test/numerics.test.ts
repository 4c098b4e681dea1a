// Numerics under stress, each against a float64 reference computed here in plain JS from the same float32
// inputs: constant channels, |mean|/std = 1e4 and 1e7, values near the float32 maximum, subnormals, and one
// channel of 1e8 elements. The bounds asserted here are the ones the README documents.
import { describe, expect, it } from 'vitest';
import { functional as F, tensor } from '../lib/index.js';

/** Max |y - ref| over the output, with ref the float64 normalization of the same (float32) inputs. */
function maxError(x: Float32Array, C: number, S: number, eps = 1e-5): { err: number; mean: Float64Array } {
  const N = x.length / (C * S);
  const r = F.batchNorm(tensor(x, [N, C, S]), { training: true, eps });
  const mean = new Float64Array(C), m2 = new Float64Array(C);
  const at = (n: number, c: number, s: number) => (n * C + c) * S + s;
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) sum += x[at(n, c, s)]!;
    mean[c] = sum / (N * S);
    let q = 0;
    for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) q += (x[at(n, c, s)]! - mean[c]!) ** 2;
    m2[c] = q;
  }
  let err = 0;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) {
    const ref = (x[at(n, c, s)]! - mean[c]!) / Math.sqrt(m2[c]! / (N * S) + eps);
    err = Math.max(err, Math.abs(r.y.data[at(n, c, s)]! - ref));
  }
  return { err, mean };
}

const noise = (n: number, seed: number) => {
  let s = seed;
  return Float64Array.from({ length: n }, () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648 - 0.5; });
};

describe('numerics under stress (float32 in, float64 reference)', () => {
  it('a constant channel gives exactly 0 (then beta), never NaN', () => {
    const x = new Float32Array(4 * 3 * 50).map((_, i) => (Math.floor(i / 50) % 3 === 1 ? 123.456 : Math.sin(i)));
    const y = F.batchNorm(tensor(x, [4, 3, 50]), { training: true }).y.data;
    for (let n = 0; n < 4; n++) for (let s = 0; s < 50; s++) expect(y[(n * 3 + 1) * 50 + s]).toBe(0);
  });

  for (const ratio of [1e4, 1e7]) {
    it(`|mean| / std = ${ratio}: error within 1e-5 of the normalized scale`, () => {
      const x = Float32Array.from(noise(8 * 2 * 500, 3), (v, i) => (i % 2 ? -1 : 1) * ratio + v * Math.sqrt(12));
      // the float32 inputs quantize the noise near the mean; the reference uses the quantized values too
      expect(maxError(x, 2, 500).err).toBeLessThan(ratio >= 1e7 ? 1e-3 : 1e-5);
    });
  }

  it('values near the float32 maximum (3e38) normalize without overflow', () => {
    const x = Float32Array.from(noise(4 * 2 * 64, 5), (v) => 3e38 * v);
    const { err } = maxError(x, 2, 64);
    expect(Number.isFinite(err)).toBe(true);
    expect(err).toBeLessThan(1e-5);
  });

  it('subnormal inputs (1e-40) normalize like the float64 reference', () => {
    const x = Float32Array.from(noise(4 * 2 * 64, 6), (v) => 1e-40 * v);
    // With the default eps the scale is ~316 and the outputs are themselves subnormal; they must match closely.
    expect(maxError(x, 2, 64).err).toBeLessThan(1e-40);
  });

  it('one channel of 1e8 elements: mean and variance as the float64 reference', () => {
    const n = 1e8;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = 1000 + ((i * 2654435761) % 4096) / 1024;  // mean ~1002, spread ~1.2
    const r = F.batchNorm(tensor(x, [1, 1, n]), { training: true });
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[i]!;
    const mean = sum / n;
    let q = 0;
    for (let i = 0; i < n; i += 1) q += (x[i]! - mean) ** 2;
    expect(Math.abs(r.saveMean[0]! - mean)).toBeLessThan(1e-9 * mean);
    expect(Math.abs(1 / r.saveInvstd[0]! ** 2 - 1e-5 - q / n) / (q / n)).toBeLessThan(1e-9);
  }, 120_000);
});
