// Typed arrays as users hand them over: subarray views at an offset, SharedArrayBuffer-backed arrays, unaligned
// float64 offsets are impossible in JS but offset float32 views are not; outputs into `out` views.
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, functional as F, tensor } from '../lib/index.js';
import { expectBitIdentical, expectNear, rng } from './helpers/compare.js';
import { refBackward, refForward } from './helpers/reference.js';

const base = () => Float32Array.from({ length: 64 * 3 }, (_, i) => Math.sin(i) * 5 + (i % 3));

describe('input and output views', () => {
  it('an offset subarray gives the same result as a fresh copy', () => {
    const big = new Float32Array(7 + 64 * 3 + 5);
    big.set(base(), 7);
    const view = big.subarray(7, 7 + 64 * 3);
    const a = F.batchNorm(tensor(view, [64, 3]), { training: true }).y.data;
    const b = F.batchNorm(tensor(base(), [64, 3]), { training: true }).y.data;
    expectBitIdentical(a, b, 'offset view');
  });

  it('SharedArrayBuffer-backed input and output work', () => {
    const sab = new Float32Array(new SharedArrayBuffer(64 * 3 * 4));
    sab.set(base());
    const out = new Float32Array(new SharedArrayBuffer(64 * 3 * 4));
    const r = F.batchNorm(tensor(sab, [64, 3]), { training: true, out });
    expect(r.y.data).toBe(out);
    expectBitIdentical(out, F.batchNorm(tensor(base(), [64, 3]), { training: true }).y.data, 'shared');
  });

  it('writes into an out view at an offset and nowhere else', () => {
    const big = new Float32Array(3 + 64 * 3 + 3).fill(-42);
    const out = big.subarray(3, 3 + 64 * 3);
    new BatchNorm1d(3).forward(tensor(base(), [64, 3]), { out });
    expect(Array.from(big.subarray(0, 3))).toEqual([-42, -42, -42]);
    expect(Array.from(big.subarray(3 + 64 * 3))).toEqual([-42, -42, -42]);
    expect(out.some((v) => v === -42)).toBe(false);
  });
});

// The 2-D row walk places its per-channel coefficient arrays in scratch relative to the output's address modulo
// 4 KB (core/norm.h coef_storage: away from 4K aliasing), so every output offset takes its own placement. Each one,
// for rows of 4096, 512 and 2048 bytes, against the float64 reference; writes outside `out` would show in the guard.
describe('outputs at every 16-byte offset within 4 KB', () => {
  const cases = [
    { shape: [4, 1024], Ctor: Float32Array, dtype: 'float32', tol: 2e-6 },
    { shape: [8, 128], Ctor: Float32Array, dtype: 'float32', tol: 2e-6 },
    { shape: [4, 256], Ctor: Float64Array, dtype: 'float64', tol: 1e-12 },
  ] as const;
  for (const { shape, Ctor, dtype, tol } of cases) {
    it(`${dtype} [${shape.join(',')}]: training forward, backward and eval into out at each offset`, () => {
      const [N, C] = shape, n = N * C, r = rng(C + N), step = 16 / Ctor.BYTES_PER_ELEMENT;
      const x = new Ctor(n).map(() => (r() - 0.5) * 4 + 3), dy = new Ctor(n).map(() => r() - 0.5);
      const ref = refForward(x, shape, false, 1e-5), grad = refBackward(x, dy, shape, false, 1e-5);
      // Eval after that one training step: running mean 0.1 * mean, running var 0.9 + 0.1 * unbiased var.
      const evalRef = x.map((v, i) => (v - 0.1 * ref.mean[i % C]!) / Math.sqrt(0.9 + 0.1 * ref.varUnbiased[i % C]! + 1e-5));
      const guard = 4096 / Ctor.BYTES_PER_ELEMENT;
      const big = new Ctor(guard + n + guard);
      for (let off = 0; off < guard; off += step) {
        big.fill(-42);
        const out = big.subarray(off, off + n), bn = new BatchNorm1d(C, { dtype });
        bn.forward(tensor(x, shape), { out });
        expectNear(out, ref.y, tol, `y at +${off * Ctor.BYTES_PER_ELEMENT} B`);
        bn.backward(tensor(dy, shape), { out });
        expectNear(out, grad.dx, tol, `dx at +${off * Ctor.BYTES_PER_ELEMENT} B`);
        bn.eval();
        bn.forward(tensor(x, shape), { out });
        expectNear(out, evalRef, tol, `eval y at +${off * Ctor.BYTES_PER_ELEMENT} B`);
        expect(big.subarray(0, off).every((v) => v === -42) && big.subarray(off + n).every((v) => v === -42)).toBe(true);
      }
    });
  }
});
