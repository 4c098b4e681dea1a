// LayerNorm's and RMSNorm's fast path for repeated sync calls (lib/modules/layer-norm.ts, call-plan.ts): a call whose
// input matches the last full forward's shape and dtype, with nothing but `out` in its options, skips re-deriving
// the checks and reuses per-row scratch. Checked here: the bits of the full path (the async calls, which always
// take it) and the float64 reference, across batch sizes, with and without `out`, with frozen parameters; every bad
// input still gets the full path's error with no state changed; a refused forward leaves the saved statistics.
import { describe, expect, it } from 'vitest';
import { LayerNorm, RMSNorm } from '../lib/index.js';
import { ChannelScratch } from '../lib/modules/call-plan.js';
import { dtypeName, expectBitIdentical, expectClose, randn, randnTensor, resizableBuffer } from './helpers/compare.js';
import { tolerance } from './helpers/close.js';
import { expectFrozenAsFull, expectRefused, fullPathCalls, stepTwins } from './helpers/plan.js';
import { byRow, refNorm, refNormBackward } from './helpers/reference.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
type Norm = LayerNorm | RMSNorm;
const tensorOf = randnTensor;

/** Every byte of a layer's state: parameters and their grads. */
function state(m: Norm): string {
  const arr = (a: Float32Array | Float64Array | null | undefined) => (a ? Array.from(a).join(',') : 'null');
  return JSON.stringify([arr(m.weight?.data), arr(m.bias?.data), arr(m.weight?.grad), arr(m.bias?.grad)]);
}

// served: whether the fast path serves the layer's repeated calls (not with an activation: LayerNorm's 'relu').
const layers: Array<{ name: string; make: (C: Ctor) => Norm; rms: boolean; served: boolean }> = [
  { name: 'LayerNorm', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C) }), rms: false, served: true },
  { name: 'LayerNorm without bias', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C), bias: false }), rms: false, served: true },
  { name: 'LayerNorm without affine', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C), elementwiseAffine: false }), rms: false, served: true },
  { name: 'LayerNorm with activation relu (the full path every time)', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C), activation: 'relu' }), rms: false, served: false },
  { name: 'RMSNorm (eps: the dtype\'s)', make: (C) => new RMSNorm([3, 4], { dtype: dtypeName(C) }), rms: true, served: true },
  { name: 'RMSNorm, eps 1e-3', make: (C) => new RMSNorm([3, 4], { dtype: dtypeName(C), eps: 1e-3 }), rms: true, served: true },
];

function withParams(m: Norm, C: Ctor): Norm {
  m.weight?.data.set(randn(m.weight.data.length, 1, C));
  m.bias?.data.set(randn(m.bias.data.length, 2, C));
  return m;
}

describe('repeated sync calls give the bits of the full path (async) and match the float64 reference', () => {
  for (const C of [Float32Array, Float64Array] as const) {
    for (const l of layers) {
      it(`${dtypeName(C)}, ${l.name}`, async () => {
        const fast = withParams(l.make(C), C), full = withParams(l.make(C), C), calls = fullPathCalls(fast);
        let lastShape: readonly number[] | null = null, served = 0;
        // Steps 1-3 and 5-6 take the fast path (the shape of the full forward before them); step 4 has another batch.
        for (let step = 0; step < 7; step++) {
          const shape = step >= 4 ? [3, 3, 4] : [2, 5, 3, 4], n = shape.reduce((a, b) => a * b, 1);
          const x = tensorOf(C, shape, 10 + step), dy = tensorOf(C, shape, 20 + step);
          const { y, dx } = await stepTwins(fast, full, x, dy, step, state);
          // The fast path returns the plan's shape object, the full path a checked copy: the same object twice in a
          // row shows that the fast path served the call (steps 2, 3 and 6).
          if (y.shape === lastShape) served++;
          lastShape = y.shape;
          if (step === 2 && l.served) {  // against the independent float64 reference
            const tol = tolerance(dtypeName(C)), gr = byRow(n, 12), eps = l.rms ? (fast as RMSNorm).eps ?? (C === Float32Array ? 2 ** -23 : 2 ** -52) : (fast as LayerNorm).eps;
            const ref = refNorm(x.data, gr, eps, { rms: l.rms, weight: fast.weight?.data, bias: fast.bias?.data });
            expectClose(y.data, ref.y, tol, 'y vs reference');
            expectClose(dx.data, refNormBackward(x.data, dy.data, gr, eps, { rms: l.rms, weight: fast.weight?.data, stats: ref }).dx, tol, 'dx vs reference');
          }
        }
        if (l.served) {
          expect(served, 'calls the fast path served, by the shape they return').toBeGreaterThanOrEqual(3);
          // Only the forwards of a new shape (steps 0 and 4) take the full path; every backward follows a forward
          // that left a plan of its shape.
          expect([calls.forward(), calls.backward()], 'full-path forwards, backwards').toEqual([2, 0]);
        } else {
          expect([calls.forward(), calls.backward()], 'full-path forwards, backwards').toEqual([7, 7]);
        }
      });
    }
  }

  it('frozen parameters keep null grads, as the full path does; one frozen, the other still accumulates', async () => {
    await expectFrozenAsFull(new LayerNorm(6), new LayerNorm(6), tensorOf(Float32Array, [4, 6], 3), tensorOf(Float32Array, [4, 6], 4));
  });
});

/**
 * A LayerNorm (or RMSNorm) whose plan holds [2,3,4] float32 (two forwards and a backward at that shape). The input
 * lives in a resizable ArrayBuffer, its array tracking the buffer's length, so that a case can resize it.
 */
function planned(make: () => Norm = () => new LayerNorm(4)) {
  const ln = withParams(make(), Float32Array);
  const buffer = resizableBuffer(24 * 4, 48 * 4);
  const data: Float32Array = new Float32Array(buffer);
  data.set(randnTensor(Float32Array, [2, 3, 4], 5).data);
  const x = { data, shape: [2, 3, 4] }, dy = tensorOf(Float32Array, [2, 3, 4], 6) as { data: Float32Array; shape: number[] };
  ln.forward(x); ln.forward(x); ln.backward(dy);
  return { ln, x, dy, buffer };
}

describe('with a plan in place, bad input still gets the full path\'s error and changes nothing', () => {
  const cases: Array<[string, (p: ReturnType<typeof planned>) => unknown, ErrorConstructor, RegExp]> = [
    ['weight replaced by a shorter array', ({ ln, x }) => { ln.weight!.data = new Float32Array(2); return ln.forward(x); }, RangeError, /weight/],
    ['bias replaced by a float64 array', ({ ln, x }) => { ln.bias!.data = new Float64Array(4); return ln.forward(x); }, TypeError, /bias/],
    ['input of another trailing size', ({ ln }) => ln.forward(tensorOf(Float32Array, [2, 3, 5], 1)), RangeError, /expected input with shape \[\*, 4\]/],
    ['input data shortened', ({ ln, x }) => ln.forward({ data: x.data.subarray(1), shape: x.shape }), RangeError, /to hold 24 elements for shape \[2, 3, 4\] but it holds 23/],
    ['input of the other dtype', ({ ln, x }) => ln.forward({ data: Float64Array.from(x.data), shape: x.shape }), TypeError, /expected float32 input/],
    ['layer converted to float64', ({ ln, x }) => { ln.to('float64'); return ln.forward(x); }, TypeError, /expected float64 input .* but received Float32Array/],
    ['detached input', ({ ln, x }) => { structuredClone(x.data.buffer, { transfer: [x.data.buffer] }); return ln.forward(x); }, TypeError, /detached/],
    ['out aliasing the input', ({ ln, x }) => ln.forward(x, { out: x.data }), RangeError, /must not share memory/],
    ['out of another length', ({ ln, x }) => ln.forward(x, { out: new Float32Array(23) }), RangeError, /out/],
    ['a residual without an activation', ({ ln, x }) => ln.forward(x, { residual: x } as never), TypeError, /residual option needs a layer built with activation 'relu'/],
    ['options that are not an object', ({ ln, x }) => ln.forward(x, 7 as never), TypeError, /options/],
    ['dy of another shape', ({ ln }) => ln.backward(tensorOf(Float32Array, [3, 2, 4], 1)), RangeError, /dy/],
    ['dy of another dtype', ({ ln, dy }) => ln.backward({ data: Float64Array.from(dy.data), shape: dy.shape }), TypeError, /dy/],
    ['backward out aliasing the saved input', ({ ln, x, dy }) => ln.backward(dy, { out: x.data }), RangeError, /out must not share memory with the input/],
    ['backward residualOut without an activation', ({ ln, dy }) => ln.backward(dy, { residualOut: new Float32Array(24) }), TypeError, /residualOut needs a layer built with activation 'relu'/],
    ['backward after the saved input was detached', ({ ln, x, dy }) => { ln.forward(x); structuredClone(x.data.buffer, { transfer: [x.data.buffer] }); return ln.backward(dy); }, TypeError, /detached/],
    ['backward after the saved input\'s buffer grew', ({ ln, x, dy, buffer }) => { ln.forward(x); buffer.resize(48 * 4); return ln.backward(dy); }, RangeError, /holds 48/],
  ];
  for (const [layer, make] of [['LayerNorm', () => new LayerNorm(4)], ['RMSNorm', () => new RMSNorm(4)]] as const) {
    for (const [name, act, type, message] of cases) {
      if (layer === 'RMSNorm' && /bias/.test(name)) continue;  // RMSNorm has none
      it(`${layer}: ${name}`, () => {
        const p = planned(make);
        expectRefused(() => act(p), type, message, () => state(p.ln), /replaced|converted/.test(name));
      });
    }
  }

  it('a busy layer refuses a planned call', async () => {
    const { ln, x } = planned();
    const pending = ln.forwardAsync(x);
    expect(() => ln.forward(x)).toThrow(/busy with forwardAsync/);
    await pending;
  });

  it('a forward writes the statistics set the saved state does not hold (mean or, for RMSNorm, invstd)', () => {
    const s = new ChannelScratch(3), a = s.freeStats(undefined), b = s.freeStats(a.mean);
    expect(b).not.toBe(a);
    expect(s.freeStats(a.invstd)).toBe(b);
    expect(s.freeStats(b.mean)).toBe(a);
    expect(s.freeStats(b.invstd)).toBe(a);
    expect(s.freeStats(new Float64Array(3))).toBe(a);
  });

  it('a refused forward leaves the previous forward\'s saved statistics for backward', async () => {
    for (const make of [() => new LayerNorm(4), () => new RMSNorm(4)]) {
      const m = make(), twin = make();
      const x = tensorOf(Float32Array, [2, 3, 4], 5), dy = tensorOf(Float32Array, [2, 3, 4], 6);
      m.forward(x); await twin.forwardAsync(x);
      m.forward(x); await twin.forwardAsync(x);  // the fast path: saved statistics in the layer's scratch
      expect(() => m.forward(tensorOf(Float32Array, [2, 3, 4], 7), { out: new Float32Array(23) })).toThrow(RangeError);
      expectBitIdentical(m.backward(dy).data, (await twin.backwardAsync(dy)).data, `${m.constructor.name} dx after a refused forward`);
      expect(state(m)).toBe(state(twin));
    }
  });
});
