// The fused training ops' extra arguments (segments, per-position params and their gradients, rms) reach the
// addon only from lib/, which checks users' input; the glue still re-checks everything that sizes a write, so a
// bug in lib/ throws "normkit internal" instead of writing out of bounds or crashing the process.
import { describe, expect, it } from 'vitest';
import { native } from '../lib/binding.js';

const f64 = (n: number) => new Float64Array(n);

describe('forwardTrain / backwardTrain glue', () => {
  // [P=2][A=1][B=3][K=8]: 6 groups of 8.
  const geo = [2, 1, 3, 8, 1] as const, n = 48;
  const x = new Float32Array(n).map((_, i) => i % 5), dy = new Float32Array(n).fill(1), y = new Float32Array(n);

  it('runs with 4 segments per group: gamma/beta and the sums have groups * segments entries', () => {
    native().forwardTrain(...geo, x, y, 1e-5, f64(24).fill(1), f64(24), f64(6), f64(6), f64(6), 4);
    const sums = [f64(24), f64(24)] as const;
    native().backwardTrain(...geo, dy, x, y, f64(6), f64(6).fill(1), null, ...sums, 4);
    expect(sums[0].every((v) => v === 2)).toBe(true);  // each segment: 2 elements of dy = 1
  });

  it('refuses segments that do not divide K, or are not positive integers', () => {
    for (const seg of [3, 0, -1, 2.5, Number.NaN]) {
      expect(() => native().forwardTrain(...geo, x, y, 1e-5, null, null, f64(6), f64(6), f64(6), seg)).toThrow(/normkit internal: segments/);
    }
  });

  it('refuses per-segment arrays sized per group', () => {
    expect(() => native().forwardTrain(...geo, x, y, 1e-5, f64(6), null, f64(6), f64(6), f64(6), 2)).toThrow(/normkit internal: gamma is too short/);
    expect(() => native().backwardTrain(...geo, dy, x, y, f64(6), f64(6), null, f64(6), f64(12), 2)).toThrow(/normkit internal: sumDy is too short/);
  });

  it('refuses position parameters with segments, and gradients that would not fit', () => {
    const w = new Float32Array(8);
    expect(() => native().forwardTrain(...geo, x, y, 1e-5, null, null, f64(6), f64(6), f64(6), 2, w)).toThrow(/exclude each other/);
    expect(() => native().backwardTrain(...geo, dy, x, y, f64(6), f64(6), null, f64(12), f64(12), 2, null, f64(8))).toThrow(/exclude each other/);
    expect(() => native().backwardTrain(...geo, dy, x, y, f64(6), f64(6), null, f64(6), f64(6), 1, w, f64(7))).toThrow(/normkit internal: dw is too short/);
  });

  it('refuses position gradients on a strided view (A > 1)', () => {
    expect(() => native().backwardTrain(2, 2, 3, 4, 1, dy, x, y, f64(6), f64(6), null, f64(6), f64(6), 1, null, f64(4))).toThrow(/A == 1/);
  });
});

describe('the fused ReLU arguments of the glue', () => {
  // [P=2][A=1][B=3][K=8] as above; the kernels recompute the mask from what the forward normalized with.
  const geo = [2, 1, 3, 8, 1] as const, n = 48;
  const x = new Float32Array(n).map((_, i) => (i % 5) - 2), dy = new Float32Array(n).fill(1), out = new Float32Array(n);
  const short = new Float32Array(n - 1);

  it('refuses a residual or a residual gradient shorter than the tensor, or of another dtype', () => {
    expect(() => native().normalize(...geo, x, out, f64(6), f64(6), f64(6), null, null, true, short)).toThrow(/normkit internal: r is too short/);
    expect(() => native().forwardTrain(...geo, x, out, 1e-5, null, null, f64(6), f64(6), f64(6), 1, null, null, false, true,
      new Float64Array(n) as never)).toThrow(/normkit internal: r has the wrong dtype/);
    expect(() => native().backwardTrain(...geo, dy, x, out, f64(6), f64(6), null, f64(6), f64(6), 1, null, null, null, false,
      true, null, short, null, null)).toThrow(/normkit internal: dr is too short/);
  });

  it('needs the forward\'s scale and shift (one per group) for the backward of a normalize forward', () => {
    expect(() => native().backwardApply(...geo, dy, x, out, f64(6), f64(6), null, null, null, true, null, null, f64(5), f64(6)))
      .toThrow(/normkit internal: scale is too short/);
    expect(() => native().backwardReduce(...geo, dy, x, f64(6), f64(6), f64(6), null, true, null, null, f64(6), null as never))
      .toThrow(/normkit internal: shift is not a typed array/);
  });

  it('masks dy with relu(x) where the forward was the identity (scale 1, shift 0, mean 0)', () => {
    const dx = new Float32Array(n), dr = new Float32Array(n), zero = new Float32Array(n);
    native().backwardApply(...geo, dy, x, dx, f64(6), f64(6).fill(1), null, null, null, true, zero, dr, f64(6).fill(1), f64(6));
    const expected = Float32Array.from(x, (v) => (v > 0 ? 1 : 0));  // ties at exactly 0 give 0, as PyTorch
    expect(Array.from(dx)).toEqual(Array.from(expected));
    expect(Array.from(dr)).toEqual(Array.from(expected));
  });
});
