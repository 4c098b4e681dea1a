// Typed arrays as users hand them over: subarray views at an offset, SharedArrayBuffer-backed arrays, unaligned
// float64 offsets are impossible in JS but offset float32 views are not; outputs into `out` views.
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, functional as F, tensor } from '../lib/index.js';
import { expectBitIdentical } from './helpers/compare.js';

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
