// GroupNorm's and InstanceNorm's fast path for repeated sync calls (lib/modules/per-sample-plan.ts): a call whose
// input matches the last full forward's shape and dtype, with nothing but `out` in its options, makes the full
// path's kernel call with per-(sample, channel) scratch instead of re-deriving the checks. Checked here: the bits of
// the full path (the async calls, which always take it) and the float64 reference, across batch sizes, with and
// without `out`, frozen parameters; the layers it must not serve (running statistics, an activation); every bad
// input still gets the full path's error with no state changed (InstanceNorm's running statistics removed, too); a
// forward whose kernel throws leaves the saved statistics for backward.
import { describe, expect, it, vi } from 'vitest';
import { GroupNorm, InstanceNorm1d, InstanceNorm2d } from '../lib/index.js';
import { native } from '../lib/binding.js';
import { dtypeName, expectBitIdentical, expectClose, randn, randnTensor } from './helpers/compare.js';
import { tolerance } from './helpers/close.js';
import { expectFrozenAsFull, expectRefused, fullPathCalls, stepTwins } from './helpers/plan.js';
import { bySampleChannel, bySampleGroup, bySampleGroupLast, refNorm, refNormBackward, type Grouping } from './helpers/reference.js';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
type Norm = GroupNorm | InstanceNorm1d | InstanceNorm2d;

/** Every byte of a layer's state: parameters, their grads, running statistics. */
function state(m: Norm): string {
  const arr = (a: Float32Array | Float64Array | null | undefined) => (a ? Array.from(a).join(',') : 'null');
  const r = m as { runningMean?: Float32Array | Float64Array | null; runningVar?: Float32Array | Float64Array | null };
  return JSON.stringify([arr(m.weight?.data), arr(m.bias?.data), arr(m.weight?.grad), arr(m.bias?.grad), arr(r.runningMean), arr(r.runningVar)]);
}

function withParams<M extends Norm>(m: M, C: Ctor): M {
  m.weight?.data.set(randn(m.weight.data.length, 1, C));
  m.bias?.data.set(randn(m.bias.data.length, 2, C));
  return m;
}

// shapes: the first forward's shape (steps 0-3) and another batch (steps 4-6). gr: the reference's grouping (null:
// none here, the full path's bits only). served: whether the fast path serves the layer's repeated forwards (with
// running statistics the forward takes the full path, its backward — the batch statistics' — the fast one).
const layers: Array<{ name: string; make: (C: Ctor) => Norm; shapes: [number[], number[]]; gr: ((s: number[]) => Grouping) | null; served: boolean; backwardServed?: boolean }> = [
  { name: 'InstanceNorm2d, affine', make: (C) => new InstanceNorm2d(3, { affine: true, dtype: dtypeName(C) }),
    shapes: [[2, 3, 4, 5], [5, 3, 4, 5]], gr: bySampleChannel, served: true },
  { name: 'InstanceNorm2d without affine (any channel count)', make: (C) => new InstanceNorm2d(3, { dtype: dtypeName(C) }),
    shapes: [[2, 4, 3, 3], [3, 4, 3, 3]], gr: bySampleChannel, served: true },
  { name: 'InstanceNorm1d, affine', make: (C) => new InstanceNorm1d(4, { affine: true, dtype: dtypeName(C) }),
    shapes: [[3, 4, 7], [2, 4, 7]], gr: bySampleChannel, served: true },
  { name: 'GroupNorm(2, 6)', make: (C) => new GroupNorm(2, 6, { dtype: dtypeName(C) }),
    shapes: [[2, 6, 3, 4], [4, 6, 3, 4]], gr: (s) => bySampleGroup(s, 2), served: true },
  { name: 'GroupNorm(3, 6) without affine', make: (C) => new GroupNorm(3, 6, { affine: false, dtype: dtypeName(C) }),
    shapes: [[2, 6, 5], [3, 6, 5]], gr: (s) => bySampleGroup(s, 3), served: true },
  { name: 'GroupNorm(2, 6) channels last', make: (C) => new GroupNorm(2, 6, { channelsLast: true, dtype: dtypeName(C) }),
    shapes: [[2, 3, 4, 6], [3, 3, 4, 6]], gr: (s) => bySampleGroupLast(s, 2), served: true },
  { name: 'InstanceNorm2d with running statistics (forwards on the full path)',
    make: (C) => new InstanceNorm2d(3, { affine: true, trackRunningStats: true, dtype: dtypeName(C) }),
    shapes: [[2, 3, 4, 5], [5, 3, 4, 5]], gr: null, served: false, backwardServed: true },
  { name: 'GroupNorm with activation relu (the full path every time)', make: (C) => new GroupNorm(2, 6, { activation: 'relu', dtype: dtypeName(C) }),
    shapes: [[2, 6, 3, 4], [4, 6, 3, 4]], gr: null, served: false },
];

describe('repeated sync calls give the bits of the full path (async) and match the float64 reference', () => {
  for (const C of [Float32Array, Float64Array] as const) {
    for (const l of layers) {
      it(`${dtypeName(C)}, ${l.name}`, async () => {
        const fast = withParams(l.make(C), C), full = withParams(l.make(C), C), calls = fullPathCalls(fast);
        let lastShape: readonly number[] | null = null, served = 0;
        for (let step = 0; step < 7; step++) {
          const shape = l.shapes[step >= 4 ? 1 : 0]!;
          const x = randnTensor(C, shape, 10 + step), dy = randnTensor(C, shape, 20 + step);
          const { y, dx } = await stepTwins(fast, full, x, dy, step, state);
          // The fast path returns the plan's shape object: the same object twice in a row shows it served the call.
          if (y.shape === lastShape) served++;
          lastShape = y.shape;
          if (step === 2 && l.gr) {  // against the independent float64 reference
            const tol = tolerance(dtypeName(C)), gr = l.gr(shape), w = fast.weight?.data ?? null;
            const ref = refNorm(x.data, gr, fast.eps, { weight: w, bias: fast.bias?.data ?? null });
            expectClose(y.data, ref.y, tol, 'y vs reference');
            const rb = refNormBackward(x.data, dy.data, gr, fast.eps, { weight: w, stats: ref });
            expectClose(dx.data, rb.dx, tol, 'dx vs reference');
          }
        }
        if (l.served) {
          expect(served, 'calls the fast path served, by the shape they return').toBeGreaterThanOrEqual(3);
          // Only the forwards of a new shape (steps 0 and 4) take the full path.
          expect([calls.forward(), calls.backward()], 'full-path forwards, backwards').toEqual([2, 0]);
        } else {
          expect([calls.forward(), calls.backward()], 'full-path forwards, backwards').toEqual([7, l.backwardServed ? 0 : 7]);
        }
      });
    }
  }

  it('the weight and bias gradients accumulate over served calls as over full ones, and match the reference', async () => {
    const make = () => withParams(new GroupNorm(2, 6, { dtype: 'float64' }), Float64Array), fast = make(), full = make();
    const x = randnTensor(Float64Array, [3, 6, 5], 3), dy = randnTensor(Float64Array, [3, 6, 5], 4);
    for (let i = 0; i < 3; i++) { fast.forward(x); fast.backward(dy); await full.forwardAsync(x); await full.backwardAsync(dy); }
    expect(state(fast)).toBe(state(full));
    const gr = bySampleGroup([3, 6, 5], 2), ref = refNorm(x.data, gr, fast.eps, { weight: fast.weight!.data, bias: fast.bias!.data });
    const rb = refNormBackward(x.data, dy.data, gr, fast.eps, { weight: fast.weight!.data, stats: ref });
    expectClose(fast.weight!.grad!, rb.dweight.map((v) => 3 * v), tolerance('float64'), 'dweight, 3 steps');
    expectClose(fast.bias!.grad!, rb.dbias.map((v) => 3 * v), tolerance('float64'), 'dbias, 3 steps');
  });

  it('unbatched input takes the full path; a batched call of its batched shape after it, the fast one', async () => {
    const make = () => withParams(new InstanceNorm1d(4, { affine: true }), Float32Array), fast = make(), full = make();
    const calls = fullPathCalls(fast), x = randnTensor(Float32Array, [4, 7], 1), dy = randnTensor(Float32Array, [4, 7], 2);
    for (let step = 0; step < 2; step++) await stepTwins(fast, full, x, dy, step, state);
    expect([calls.forward(), calls.backward()], 'full-path forwards, backwards').toEqual([2, 2]);
    const xb = randnTensor(Float32Array, [1, 4, 7], 3), dyb = randnTensor(Float32Array, [1, 4, 7], 4);
    const { y } = await stepTwins(fast, full, xb, dyb, 2, state);
    expect([calls.forward(), calls.backward()], 'after a batched step').toEqual([2, 2]);
    expect(Object.isFrozen(y.shape), 'the shape the fast path returns').toBe(true);
  });

  it('frozen parameters keep null grads, as the full path does; one frozen, the other still accumulates', async () => {
    for (const make of [() => new InstanceNorm2d(3, { affine: true }), () => new GroupNorm(3, 3)]) {
      await expectFrozenAsFull(make(), make(), randnTensor(Float32Array, [2, 3, 4, 4], 3), randnTensor(Float32Array, [2, 3, 4, 4], 4));
    }
  });
});

/** A layer whose plan holds [2,6,3,4] float32 (two forwards and a backward at that shape). */
function planned(make: () => Norm) {
  const m = withParams(make(), Float32Array);
  const x = randnTensor(Float32Array, [2, 6, 3, 4], 5) as { data: Float32Array; shape: number[] };
  const dy = randnTensor(Float32Array, [2, 6, 3, 4], 6) as { data: Float32Array; shape: number[] };
  m.forward(x); m.forward(x); m.backward(dy);
  return { m, x, dy };
}

describe('with a plan in place, bad input still gets the full path\'s error and changes nothing', () => {
  const cases: Array<[string, (p: ReturnType<typeof planned>) => unknown, ErrorConstructor, RegExp]> = [
    ['weight replaced by a shorter array', ({ m, x }) => { m.weight!.data = new Float32Array(2); return m.forward(x); }, RangeError, /weight/],
    ['bias replaced by a float64 array', ({ m, x }) => { m.bias!.data = new Float64Array(6); return m.forward(x); }, TypeError, /bias/],
    ['input with another channel count', ({ m }) => m.forward(randnTensor(Float32Array, [2, 4, 3, 4], 1)), RangeError, /6/],
    ['input data shortened', ({ m, x }) => m.forward({ data: x.data.subarray(1), shape: x.shape }), RangeError, /to hold 144 elements for shape \[2, 6, 3, 4\] but it holds 143/],
    ['input of the other dtype', ({ m, x }) => m.forward({ data: Float64Array.from(x.data), shape: x.shape }), TypeError, /expected float32 input/],
    ['layer converted to float64', ({ m, x }) => { m.to('float64'); return m.forward(x); }, TypeError, /expected float64 input .* but received Float32Array/],
    ['detached input', ({ m, x }) => { structuredClone(x.data.buffer, { transfer: [x.data.buffer] }); return m.forward(x); }, TypeError, /detached/],
    ['out aliasing the input', ({ m, x }) => m.forward(x, { out: x.data }), RangeError, /must not share memory/],
    ['out of another length', ({ m, x }) => m.forward(x, { out: new Float32Array(143) }), RangeError, /out/],
    ['a residual without an activation', ({ m, x }) => m.forward(x, { residual: x } as never), TypeError, /residual option needs a layer built with activation 'relu'/],
    ['options that are not an object', ({ m, x }) => m.forward(x, 7 as never), TypeError, /options/],
    ['dy of another shape', ({ m }) => m.backward(randnTensor(Float32Array, [3, 6, 2, 4], 1)), RangeError, /dy/],
    ['dy of another dtype', ({ m, dy }) => m.backward({ data: Float64Array.from(dy.data), shape: dy.shape }), TypeError, /dy/],
    ['backward out aliasing the saved input', ({ m, x, dy }) => m.backward(dy, { out: x.data }), RangeError, /out must not share memory with the input/],
    ['backward residualOut without an activation', ({ m, dy }) => m.backward(dy, { residualOut: new Float32Array(144) }), TypeError, /residualOut needs a layer built with activation 'relu'/],
    ['backward weight replaced by a shorter array', ({ m, dy }) => { m.weight!.data = new Float32Array(5); return m.backward(dy); }, RangeError, /weight/],
    ['backward weight replaced by a float64 array', ({ m, dy }) => { m.weight!.data = new Float64Array(6); return m.backward(dy); }, TypeError, /weight/],
    ['backward after the saved input was detached', ({ m, x, dy }) => { m.forward(x); structuredClone(x.data.buffer, { transfer: [x.data.buffer] }); return m.backward(dy); }, TypeError, /detached/],
  ];
  const makers: Array<[string, () => Norm]> = [
    ['GroupNorm', () => new GroupNorm(3, 6)], ['InstanceNorm2d', () => new InstanceNorm2d(6, { affine: true })],
  ];
  for (const [layer, make] of makers) {
    for (const [name, act, type, message] of cases) {
      it(`${layer}: ${name}`, () => {
        const p = planned(make);
        expectRefused(() => act(p), type, message, () => state(p.m), /replaced|converted/.test(name));
      });
    }
  }

  it('a busy layer refuses a planned call', async () => {
    const { m, x } = planned(() => new GroupNorm(3, 6));
    const pending = m.forwardAsync(x);
    expect(() => m.forward(x)).toThrow(/busy with forwardAsync/);
    await pending;
  });

  it('a forward whose kernel throws leaves the previous forward\'s saved statistics for backward', async () => {
    for (const [, make] of makers) {
      const m = make(), twin = make();
      const x = randnTensor(Float32Array, [2, 6, 3, 4], 5), dy = randnTensor(Float32Array, [2, 6, 3, 4], 6);
      m.forward(x); await twin.forwardAsync(x);
      m.forward(x); await twin.forwardAsync(x);  // the fast path: saved statistics in the layer's scratch
      // The kernel writes statistics, then fails (as out of memory for its scratch would), on a served call.
      const spy = vi.spyOn(native(), 'forwardTrain').mockImplementationOnce((...args: unknown[]) => {
        for (const a of args.slice(10, 13)) (a as Float64Array).fill(Number.NaN);
        throw new Error('out of memory');
      });
      try {
        expect(() => m.forward(randnTensor(Float32Array, [2, 6, 3, 4], 7))).toThrow(/out of memory/);
        expect(spy).toHaveBeenCalledTimes(1);
      } finally { spy.mockRestore(); }
      expectBitIdentical(m.backward(dy).data, (await twin.backwardAsync(dy)).data, `${m.constructor.name} dx after a failed forward`);
      expect(state(m)).toBe(state(twin));
    }
  });

  it('InstanceNorm with running statistics: removing them, or eval without them, gets the full path\'s error', () => {
    const make = () => {
      const m = withParams(new InstanceNorm2d(6, { affine: true, trackRunningStats: true }), Float32Array);
      const x = randnTensor(Float32Array, [2, 6, 3, 4], 5);
      m.forward(x); m.forward(x);  // a plan (training: batch statistics)
      return { m, x };
    };
    const a = make();
    expectRefused(() => { a.m.runningMean = null; return a.m.forward(a.x); }, TypeError, /runningMean and runningVar must be given together/, () => state(a.m), true);
    const b = make();
    expectRefused(() => { b.m.runningMean = null; b.m.runningVar = null; b.m.eval(); return b.m.forward(b.x); }, TypeError,
      /Expected running_mean and running_var to be defined when use_input_stats is false/, () => state(b.m), true);
  });
});
