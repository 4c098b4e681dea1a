// The layers' fast path for repeated calls at one shape (lib/modules/call-plan.ts): the second and later sync calls
// of a shape skip re-deriving its checks and reuse per-channel scratch. Checked here: they give the bits of the full
// path (the async calls, which always take it) and of the float64 reference; every bad input still gets the full
// path's error with no state changed; and a refused forward leaves the previous forward's saved statistics intact.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, tensor, type BatchNormBase, type StateDict } from '../lib/index.js';
import { dtypeName, expectBitIdentical, expectClose, randn, randnTensor, resizableBuffer } from './helpers/compare.js';
import { tolerance } from './helpers/close.js';
import type { FixtureCase } from './helpers/fixtures.js';
import { typed } from './helpers/replay.js';
import { expectRefused } from './helpers/plan.js';
import { refBackward, refForward } from './helpers/reference.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
const tensorOf = randnTensor;

/** Every byte of a layer's state: parameters, grads, buffers, counter. */
function state(bn: BatchNormBase): string {
  const arr = (a: Float32Array | Float64Array | null | undefined) => (a ? Array.from(a).join(',') : 'null');
  return JSON.stringify([arr(bn.weight?.data), arr(bn.bias?.data), arr(bn.weight?.grad), arr(bn.bias?.grad),
    arr(bn.runningMean), arr(bn.runningVar), bn.numBatchesTracked]);
}

/** Layer options whose repeated calls the fast path serves. */
const served = [
  { name: 'NCHW', channelsLast: false, momentum: 0.1, affine: true },
  { name: 'channels last, momentum null', channelsLast: true, momentum: null, affine: true },
  { name: 'no affine', channelsLast: false, momentum: 0.1, affine: false },
] as const;

describe('repeated sync calls give the bits of the full path (async) and match the float64 reference', () => {
  for (const C of [Float32Array, Float64Array] as const) {
    for (const o of served) {
      it(`${dtypeName(C)}, ${o.name}`, async () => {
        const shape = o.channelsLast ? [4, 3, 5, 6] : [4, 6, 3, 5];
        const opts = { dtype: dtypeName(C), channelsLast: o.channelsLast, momentum: o.momentum, affine: o.affine } as const;
        const fast = new BatchNorm2d(6, opts), full = new BatchNorm2d(6, opts);
        for (const bn of [fast, full]) {  // non-trivial parameters, the same in both
          bn.weight?.data.set(randn(6, 1, C));
          bn.bias?.data.set(randn(6, 2, C));
        }
        const n = shape.reduce((a, b) => a * b, 1), out = new C(n), dxOut = new C(n);
        let lastShape: readonly number[] | null = null;
        for (let step = 0; step < 4; step++) {
          const x = tensorOf(C, shape, 10 + step), dy = tensorOf(C, shape, 20 + step);
          if (step === 3) { fast.eval(); full.eval(); }
          // Steps 1-3 take the fast path: the shape was accepted by step 0; with and without `out`.
          const y = fast.forward(x, step % 2 ? { out } : undefined), yFull = await full.forwardAsync(x);
          expectBitIdentical(y.data, yFull.data, `y, step ${step}`);
          expect(y.shape).toEqual(shape);
          // The fast path returns the plan's frozen shape, the full path a fresh copy each time: steps 1-3 sharing
          // one shape object shows that the fast path served them.
          if (step > 1) expect(y.shape, `step ${step} took the fast path`).toBe(lastShape);
          lastShape = y.shape;
          const dx = fast.backward(dy, step % 2 ? undefined : { out: dxOut }), dxFull = await full.backwardAsync(dy);
          expectBitIdentical(dx.data, dxFull.data, `dx, step ${step}`);
          expect(state(fast)).toBe(state(full));
          if (step === 2) {  // a training step against the independent float64 reference
            const tol = tolerance(dtypeName(C));
            const ref = refForward(x.data, shape, o.channelsLast, fast.eps, fast.weight?.data, fast.bias?.data);
            expectClose(y.data, ref.y, tol, 'y vs reference');
            expectClose(dx.data, refBackward(x.data, dy.data, shape, o.channelsLast, fast.eps, fast.weight?.data).dx, tol, 'dx vs reference');
          }
        }
        expect(fast.numBatchesTracked).toBe(3);
      });
    }
  }

  it('eval backward with frozen parameters leaves their grads null, as the full path does', async () => {
    const fast = new BatchNorm1d(5), full = new BatchNorm1d(5), x = tensorOf(Float32Array, [7, 5], 3);
    for (const bn of [fast, full]) { bn.weight!.requiresGrad = false; bn.bias!.requiresGrad = false; bn.eval(); }
    fast.forward(x); await full.forwardAsync(x);
    const dy = tensorOf(Float32Array, [7, 5], 4);
    fast.backward(dy);
    expectBitIdentical(fast.backward(dy).data, (await full.backwardAsync(dy)).data, 'dx');
    expect(fast.weight!.grad).toBeNull();
  });
});

/** A layer whose plan holds [2,3,4,4] float32 (two forwards and a backward at that shape). */
function planned(): { bn: BatchNorm2d; x: { data: Float32Array; shape: number[] }; dy: { data: Float32Array; shape: number[] } } {
  const bn = new BatchNorm2d(3);
  const x = tensorOf(Float32Array, [2, 3, 4, 4], 5) as { data: Float32Array; shape: number[] };
  const dy = tensorOf(Float32Array, [2, 3, 4, 4], 6) as { data: Float32Array; shape: number[] };
  bn.forward(x); bn.forward(x); bn.backward(dy);
  return { bn, x, dy };
}

describe('with a plan in place, bad input still gets the full path\'s error and changes nothing', () => {
  const cases: Array<[string, (p: ReturnType<typeof planned>) => unknown, ErrorConstructor, RegExp]> = [
    ['weight replaced by a shorter array', ({ bn, x }) => { bn.weight!.data = new Float32Array(2); return bn.forward(x); }, RangeError, /weight should contain 3 elements not 2/],
    ['bias replaced by a float64 array', ({ bn, x }) => { bn.bias!.data = new Float64Array(3); return bn.forward(x); }, TypeError, /Expected bias to be float32 like the input but received Float64Array/],
    ['runningVar replaced by a longer array', ({ bn, x }) => { bn.runningVar = new Float32Array(4); return bn.forward(x); }, RangeError, /runningVar should contain 3 elements not 4/],
    ['runningVar removed alone', ({ bn, x }) => { bn.runningVar = null; return bn.forward(x); }, TypeError, /runningMean and runningVar must be given together/],
    ['input data shortened', ({ bn, x }) => bn.forward({ data: x.data.subarray(1), shape: x.shape }), RangeError, /to hold 96 elements for shape \[2, 3, 4, 4\] but it holds 95/],
    ['input of the other dtype', ({ bn, x }) => bn.forward({ data: Float64Array.from(x.data), shape: x.shape }), TypeError, /expected float32 input/],
    ['layer converted to float64', ({ bn, x }) => { bn.to('float64'); return bn.forward(x); }, TypeError, /expected float64 input .* but received Float32Array/],
    ['detached input', ({ bn, x }) => { structuredClone(x.data.buffer, { transfer: [x.data.buffer] }); return bn.forward(x); }, TypeError, /detached/],
    ['out aliasing the input', ({ bn, x }) => bn.forward(x, { out: x.data }), RangeError, /must not share memory/],
    ['an options object with another key', ({ bn, x }) => bn.forward(x, { out: new Float32Array(96), residual: x } as never), TypeError, /residual option needs a layer built with activation 'relu'/],
    ['options that are not an object', ({ bn, x }) => bn.forward(x, 7 as never), TypeError, /options/],
    ['dy of another shape', ({ bn }) => bn.backward(tensorOf(Float32Array, [2, 3, 4, 2], 1)), RangeError, /Expected dy of shape \[2, 3, 4, 4\]/],
    ['dy of another dtype', ({ bn, dy }) => bn.backward({ data: Float64Array.from(dy.data), shape: dy.shape }), TypeError, /Expected dy to be float32/],
    ['backward out aliasing the saved input', ({ bn, x, dy }) => bn.backward(dy, { out: x.data }), RangeError, /out must not share memory with the input/],
    ['backward weight replaced by a shorter array', ({ bn, dy }) => { bn.weight!.data = new Float32Array(1); return bn.backward(dy); }, RangeError, /weight should contain 3 elements not 1/],
  ];
  for (const [name, act, type, message] of cases) {
    it(name, () => {
      const p = planned();
      expectRefused(() => act(p), type, message, () => state(p.bn), /replaced|removed|converted/.test(name));
    });
  }

  it('backward after the saved input was detached, or its resizable buffer grew: the full path\'s error', () => {
    for (const change of ['detach', 'grow'] as const) {
      const bn = new BatchNorm1d(3), buffer = resizableBuffer(12 * 4, 24 * 4);
      const x = { data: new Float32Array(buffer), shape: [4, 3] }, dy = tensorOf(Float32Array, [4, 3], 6);
      x.data.set(randn(12, 5, Float32Array));
      bn.forward(x); bn.forward(x); bn.backward(dy); bn.forward(x);  // the plan, and a planned forward saved
      if (change === 'detach') structuredClone(buffer, { transfer: [buffer] });
      else buffer.resize(24 * 4);
      expectRefused(() => bn.backward(dy), change === 'detach' ? TypeError : RangeError, change === 'detach' ? /detached/ : /holds 24/, () => state(bn));
    }
  });

  it('a busy layer refuses a planned call', async () => {
    const { bn, x } = planned();
    const pending = bn.forwardAsync(x);
    expectRefused(() => bn.forward(x), Error, /busy with forwardAsync/, () => state(bn));
    await pending;
  });

  it('a new shape is accepted, and then dy must have it', () => {
    const { bn } = planned();
    const x2 = tensorOf(Float32Array, [3, 3, 2, 4], 7);
    expect(bn.forward(x2).shape).toEqual([3, 3, 2, 4]);
    expect(bn.forward(x2).shape).toEqual([3, 3, 2, 4]);
    expectRefused(() => bn.backward(tensorOf(Float32Array, [2, 3, 4, 4], 8)), RangeError, /Expected dy of shape \[3, 3, 2, 4\]/, () => state(bn));
  });

  it('a refused forward leaves the previous forward\'s saved statistics for backward', async () => {
    for (const nonFinite of ['propagate', 'throw'] as const) {
      const bn = new BatchNorm2d(3, { nonFinite }), twin = new BatchNorm2d(3, { nonFinite });
      const x = tensorOf(Float32Array, [2, 3, 4, 4], 5), dy = tensorOf(Float32Array, [2, 3, 4, 4], 6);
      bn.forward(x); await twin.forwardAsync(x);
      bn.eval(); twin.eval();
      bn.forward(x); await twin.forwardAsync(x);  // the fast path: saved statistics in the layer's scratch
      bn.train(); twin.train();
      if (nonFinite === 'throw') {  // refused after its kernel ran
        expect(() => bn.forward({ data: x.data.map((v, i) => (i === 0 ? NaN : v)), shape: x.shape })).toThrow(/not finite/);
      } else {  // refused before
        expect(() => bn.forward(x, { out: new Float32Array(95) })).toThrow(RangeError);
      }
      expectBitIdentical(bn.backward(dy).data, (await twin.backwardAsync(dy)).data, `dx after a refused forward (${nonFinite})`);
      expect(state(bn)).toBe(state(twin));
    }
  });
});

// Layers built with activation 'relu' (the demo's BatchNorm1d): the fast path serves forwards without a residual and
// the backwards after them; a residual, or residualOut, takes the full path.
describe('activation relu: repeated sync calls give the bits of the full path (async)', () => {
  const forms = [
    { name: 'BatchNorm1d [6,5]', make: (o: object) => new BatchNorm1d(5, o), shape: [6, 5], channelsLast: false, affine: true },
    { name: 'BatchNorm2d [4,5,3,4]', make: (o: object) => new BatchNorm2d(5, o), shape: [4, 5, 3, 4], channelsLast: false, affine: true },
    { name: 'BatchNorm2d channels last, no affine', make: (o: object) => new BatchNorm2d(5, o), shape: [4, 3, 4, 5], channelsLast: true, affine: false },
  ];
  for (const C of [Float32Array, Float64Array] as const) {
    for (const f of forms) {
      it(`${dtypeName(C)}, ${f.name}`, async () => {
        const opts = { dtype: dtypeName(C), channelsLast: f.channelsLast, affine: f.affine, activation: 'relu' } as const;
        const fast = f.make(opts), full = f.make(opts);
        for (const bn of [fast, full]) {
          bn.weight?.data.set(randn(5, 1, C));
          bn.bias?.data.set(randn(5, 2, C));
        }
        const n = f.shape.reduce((a, b) => a * b, 1), out = new C(n), dxOut = new C(n);
        const shapes: Array<readonly number[]> = [];
        for (let step = 0; step < 6; step++) {
          const x = tensorOf(C, f.shape, 30 + step), dy = tensorOf(C, f.shape, 40 + step);
          // Step 2 adds a residual (the full path, whose backward gives the residual's gradient); step 5 is eval.
          const residual = step === 2 ? tensorOf(C, f.shape, 50) : undefined;
          if (step === 5) { fast.eval(); full.eval(); }
          const y = fast.forward(x, { ...(step % 2 ? { out } : {}), ...(residual ? { residual } : {}) });
          const yFull = await full.forwardAsync(x, residual ? { residual } : undefined);
          expectBitIdentical(y.data, yFull.data, `y, step ${step}`);
          expect(Array.from(y.data).some((v) => v === 0) && Array.from(y.data).some((v) => v > 0), 'the ReLU clips some values').toBe(true);
          shapes.push(y.shape);
          const dx = fast.backward(dy, step % 2 ? undefined : { out: dxOut }), dxFull = await full.backwardAsync(dy);
          expectBitIdentical(dx.data, dxFull.data, `dx, step ${step}`);
          if (residual) expectBitIdentical(fast.residualGrad!.data, full.residualGrad!.data, 'residual grad');
          else expect(fast.residualGrad, `step ${step}: no residual, no residual grad`).toBeNull();
          expect(state(fast)).toBe(state(full));
        }
        // Step 2, with the residual, took the full path, which made a new plan; steps 3-5 were served by it (one
        // frozen shape; the full path returns a fresh copy each time).
        for (const s of [4, 5]) expect(shapes[s], `step ${s} took the fast path`).toBe(shapes[3]);
        expect(shapes[3]).not.toBe(shapes[2]);
      });
    }
  }

  it('matches PyTorch\'s autograd through relu(BatchNorm(x)) (fixtures) on the fast path', () => {
    const all = (JSON.parse(gunzipSync(readFileSync(join(__dirname, 'fixtures', 'beyond.json.gz'))).toString('utf8')) as
      { fused: Array<FixtureCase & { residual: unknown }> }).fused;
    const cases = all.filter((c) => /^BatchNorm[12]d$/.test(c.layer!) && c.residual === null);
    expect(cases.length).toBeGreaterThan(3);
    for (const c of cases) {
      const o = { ...c.options, dtype: c.dtype }, layer = c.layer === 'BatchNorm1d' ? new BatchNorm1d(c.args![0] as number, o) : new BatchNorm2d(c.args![0] as number, o);
      const shapes = layer.stateDict(), initial: StateDict = {};
      for (const [k, v] of Object.entries(c.initial ?? {})) initial[k] = { data: typed(c.dtype, v), shape: shapes[k]!.shape };
      const step = c.steps[0]!, x = tensor(typed(c.dtype, step.x.data), step.x.shape), dy = tensor(typed(c.dtype, step.dy!.data), step.dy!.shape);
      layer.train(step.mode === 'train');
      layer.forward(x);  // the full path, which makes the plan; then back to the fixture's state
      layer.loadStateDict(initial, { strict: false });
      layer.zeroGrad();
      const tol = tolerance(c.dtype), y = layer.forward(x);
      expectClose(y.data, step.y, tol, `${c.name}: y`);
      expectClose(layer.backward(dy).data, step.dx!, tol, `${c.name}: dx`);
      const s = step.state;
      if (Array.isArray(s.weight_grad)) expectClose(layer.weight!.grad!, s.weight_grad, tol, `${c.name}: weight.grad`);
      if (Array.isArray(s.bias_grad)) expectClose(layer.bias!.grad!, s.bias_grad, tol, `${c.name}: bias.grad`);
      if (Array.isArray(s.running_mean)) expectClose(layer.runningMean!, s.running_mean, tol, `${c.name}: running_mean`);
      if (Array.isArray(s.running_var)) expectClose(layer.runningVar!, s.running_var, tol, `${c.name}: running_var`);
      expect(layer.forward(x).shape, `${c.name}: served by the plan`).toBe(y.shape);
    }
  });
});

describe('activation relu: with a plan in place, bad input still gets the full path\'s error and changes nothing', () => {
  const make = () => {
    const bn = new BatchNorm2d(3, { activation: 'relu' });
    const x = tensorOf(Float32Array, [2, 3, 4, 4], 5), dy = tensorOf(Float32Array, [2, 3, 4, 4], 6);
    bn.forward(x); bn.forward(x); bn.backward(dy);
    return { bn, x, dy };
  };
  const cases: Array<[string, (p: ReturnType<typeof make>) => unknown, ErrorConstructor, RegExp]> = [
    ['backward out aliasing dy', ({ bn, dy }) => bn.backward(dy, { out: dy.data }), RangeError, /out must not share memory with dy/],
    ['residualOut after a forward without a residual', ({ bn, dy }) => bn.backward(dy, { residualOut: new Float32Array(96) }), TypeError, /residualOut needs a forward with a residual/],
    ['dy of another shape', ({ bn }) => bn.backward(tensorOf(Float32Array, [2, 3, 8, 2], 1)), RangeError, /expected dy of the output's shape \[2, 3, 4, 4\] but got \[2, 3, 8, 2\]/],
    ['dy of another dtype', ({ bn, dy }) => bn.backward({ data: Float64Array.from(dy.data), shape: dy.shape }), TypeError, /expected float32 dy/],
    ['a residual of another shape', ({ bn, x }) => bn.forward(x, { residual: tensorOf(Float32Array, [2, 3, 16], 2) }), RangeError, /expected a residual of the input's shape/],
    ['forward out aliasing the input', ({ bn, x }) => bn.forward(x, { out: x.data }), RangeError, /must not share memory/],
  ];
  for (const [name, act, type, message] of cases) {
    it(name, () => {
      const p = make();
      expectRefused(() => act(p), type, message, () => state(p.bn));
      expect(p.bn.residualGrad).toBeNull();
    });
  }
});
