// LayerNorm's and RMSNorm's fast path for repeated sync calls (lib/modules/layer-norm.ts, call-plan.ts): a call whose
// input matches the last full forward's shape and dtype, with nothing but `out` in its options, skips re-deriving
// the checks and reuses per-row scratch. Checked here: the bits of the full path (the async calls, which always
// take it) and the float64 reference, across batch sizes, with and without `out`, with frozen parameters; every bad
// input still gets the full path's error with no state changed; a refused forward leaves the saved statistics.
import { describe, expect, it } from 'vitest';
import { LayerNorm, RMSNorm } from '../lib/index.js';
import { dtypeName, expectBitIdentical, expectClose, randn, randnTensor } from './helpers/compare.js';
import { tolerance } from './helpers/close.js';
import { byRow, refNorm, refNormBackward } from './helpers/reference.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
type Norm = LayerNorm | RMSNorm;
const tensorOf = randnTensor;

/** Every byte of a layer's state: parameters and their grads. */
function state(m: Norm): string {
  const arr = (a: Float32Array | Float64Array | null | undefined) => (a ? Array.from(a).join(',') : 'null');
  return JSON.stringify([arr(m.weight?.data), arr(m.bias?.data), arr(m.weight?.grad), arr(m.bias?.grad)]);
}

const layers: Array<{ name: string; make: (C: Ctor) => Norm; rms: boolean }> = [
  { name: 'LayerNorm', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C) }), rms: false },
  { name: 'LayerNorm without bias', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C), bias: false }), rms: false },
  { name: 'LayerNorm without affine', make: (C) => new LayerNorm([3, 4], { dtype: dtypeName(C), elementwiseAffine: false }), rms: false },
  { name: 'RMSNorm (eps: the dtype\'s)', make: (C) => new RMSNorm([3, 4], { dtype: dtypeName(C) }), rms: true },
  { name: 'RMSNorm, eps 1e-3', make: (C) => new RMSNorm([3, 4], { dtype: dtypeName(C), eps: 1e-3 }), rms: true },
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
        const fast = withParams(l.make(C), C), full = withParams(l.make(C), C);
        let lastShape: readonly number[] | null = null, served = 0;
        // Steps 1-3 and 5-6 take the fast path (the shape of the full forward before them); step 4 has another batch.
        for (let step = 0; step < 7; step++) {
          const shape = step >= 4 ? [3, 3, 4] : [2, 5, 3, 4], n = shape.reduce((a, b) => a * b, 1);
          const x = tensorOf(C, shape, 10 + step), dy = tensorOf(C, shape, 20 + step);
          const out = step % 2 ? new C(n) : undefined;
          const y = fast.forward(x, out ? { out } : undefined), yFull = await full.forwardAsync(x);
          expectBitIdentical(y.data, yFull.data, `y, step ${step}`);
          if (out) expect(y.data).toBe(out);
          expect(y.shape).toEqual(shape);
          // The fast path returns the plan's shape object, the full path a checked copy: the same object twice in a
          // row shows that the fast path served the call (steps 2, 3 and 6).
          if (y.shape === lastShape) served++;
          lastShape = y.shape;
          const dx = fast.backward(dy, step % 2 ? undefined : { out: new C(n) }), dxFull = await full.backwardAsync(dy);
          expectBitIdentical(dx.data, dxFull.data, `dx, step ${step}`);
          expect(state(fast), `state after step ${step}`).toBe(state(full));
          if (step === 2) {  // against the independent float64 reference
            const tol = tolerance(dtypeName(C)), gr = byRow(n, 12), eps = l.rms ? (fast as RMSNorm).eps ?? (C === Float32Array ? 2 ** -23 : 2 ** -52) : (fast as LayerNorm).eps;
            const ref = refNorm(x.data, gr, eps, { rms: l.rms, weight: fast.weight?.data, bias: fast.bias?.data });
            expectClose(y.data, ref.y, tol, 'y vs reference');
            expectClose(dx.data, refNormBackward(x.data, dy.data, gr, eps, { rms: l.rms, weight: fast.weight?.data, stats: ref }).dx, tol, 'dx vs reference');
          }
        }
        expect(served, 'calls the fast path served').toBeGreaterThanOrEqual(3);
      });
    }
  }

  it('frozen parameters keep null grads, as the full path does; one frozen, the other still accumulates', async () => {
    const fast = new LayerNorm(6), full = new LayerNorm(6), x = tensorOf(Float32Array, [4, 6], 3), dy = tensorOf(Float32Array, [4, 6], 4);
    for (const m of [fast, full]) { m.weight!.requiresGrad = false; m.bias!.requiresGrad = false; }
    for (let i = 0; i < 3; i++) {
      fast.forward(x); await full.forwardAsync(x);
      expectBitIdentical(fast.backward(dy).data, (await full.backwardAsync(dy)).data, 'dx');
    }
    expect(fast.weight!.grad).toBeNull();
    expect(fast.bias!.grad).toBeNull();
    for (const m of [fast, full]) m.bias!.requiresGrad = true;
    for (let i = 0; i < 3; i++) { fast.forward(x); fast.backward(dy); await full.forwardAsync(x); await full.backwardAsync(dy); }
    expect(fast.weight!.grad).toBeNull();
    expectBitIdentical(fast.bias!.grad!, full.bias!.grad!, 'bias grad');
  });
});

/** A LayerNorm whose plan holds [2,3,4] float32 (two forwards and a backward at that shape). */
function planned() {
  const ln = withParams(new LayerNorm(4), Float32Array) as LayerNorm;
  const x = tensorOf(Float32Array, [2, 3, 4], 5) as { data: Float32Array; shape: number[] };
  const dy = tensorOf(Float32Array, [2, 3, 4], 6) as { data: Float32Array; shape: number[] };
  ln.forward(x); ln.forward(x); ln.backward(dy);
  return { ln, x, dy };
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
  ];
  for (const [name, act, type, message] of cases) {
    it(name, () => {
      const p = planned();
      const before = state(p.ln);
      let thrown: unknown;
      try { act(p); } catch (e) { thrown = e; }
      expect(thrown, 'must throw').toBeInstanceOf(type);
      expect((thrown as Error).message).toMatch(message);
      // The replaced array itself is the change the test made; everything else is as before.
      if (!/replaced|converted/.test(name)) expect(state(p.ln)).toBe(before);
    });
  }

  it('a busy layer refuses a planned call', async () => {
    const { ln, x } = planned();
    const pending = ln.forwardAsync(x);
    expect(() => ln.forward(x)).toThrow(/busy with forwardAsync/);
    await pending;
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
