// Bad input: a TypeError or RangeError naming expected vs given, and not one byte of state changed.
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNormBase, functional as F, setNumThreads, tensor } from '../lib/index.js';

/** Every byte of a layer's state: parameters, grads, buffers, counter, mode. */
function snapshot(bn: BatchNormBase): string {
  const arr = (a: Float32Array | Float64Array | null | undefined) => (a ? Array.from(a).join(',') : 'null');
  return JSON.stringify([arr(bn.weight?.data), arr(bn.bias?.data), arr(bn.weight?.grad), arr(bn.bias?.grad),
    arr(bn.runningMean), arr(bn.runningVar), bn.numBatchesTracked, bn.training]);
}

/** A layer that has done a step, so grads and stats are non-trivial. */
function trained(): BatchNorm2d {
  const bn = new BatchNorm2d(3);
  const x = tensor(new Float32Array(2 * 3 * 2 * 2).map((_, i) => Math.cos(i) * 3), [2, 3, 2, 2]);
  bn.forward(x);
  bn.backward(tensor(new Float32Array(24).map((_, i) => Math.sin(i)), [2, 3, 2, 2]));
  return bn;
}

function expectUnchanged(bn: BatchNormBase, act: () => unknown, type: ErrorConstructor, message: RegExp): void {
  const before = snapshot(bn);
  let thrown: unknown;
  try { act(); } catch (e) { thrown = e; }
  expect(thrown, 'must throw').toBeInstanceOf(type);
  expect((thrown as Error).message).toMatch(message);
  expect(snapshot(bn)).toBe(before);
}

const x4 = (shape: number[], Ctor: Float32ArrayConstructor | Float64ArrayConstructor = Float32Array) => ({
  data: new Ctor(shape.reduce((a, b) => a * b, 1)).map((_, i) => (i * 7) % 5), shape,
});

describe('layer forward rejects bad input without touching state', () => {
  const cases: Array<[string, (bn: BatchNorm2d) => unknown, ErrorConstructor, RegExp]> = [
    ['wrong rank', (bn) => bn.forward(x4([2, 3, 5])), RangeError, /BatchNorm2d: expected 4D input \(got 3D input of shape \[2, 3, 5\]\)/],
    ['wrong channel count', (bn) => bn.forward(x4([2, 4, 2, 2])), RangeError, /expected 3 channels in dimension 1 of the input but got 4/],
    ['wrong dtype', (bn) => bn.forward(x4([2, 3, 2, 2], Float64Array)), TypeError, /expected float32 input .* but received Float64Array/],
    ['not a tensor', (bn) => bn.forward(42 as never), TypeError, /Expected a tensor \{ data, shape \} for input but received number 42/],
    ['plain array data', (bn) => bn.forward({ data: [1, 2], shape: [1, 2] } as never), TypeError, /Float32Array or Float64Array for input.data but received array/],
    ['Int32Array data', (bn) => bn.forward({ data: new Int32Array(12), shape: [1, 3, 2, 2] } as never), TypeError, /received Int32Array/],
    ['length != shape', (bn) => bn.forward({ data: new Float32Array(11), shape: [1, 3, 2, 2] }), RangeError, /to hold 12 elements for shape \[1, 3, 2, 2\] but it holds 11/],
    ['negative dim', (bn) => bn.forward({ data: new Float32Array(0), shape: [-1, 3, 2, 2] }), RangeError, /non-negative integer for input.shape\[0\] but received number -1/],
    ['fractional dim', (bn) => bn.forward({ data: new Float32Array(6), shape: [1.5, 3, 2, 2] }), RangeError, /input.shape\[0\]/],
    ['NaN dim', (bn) => bn.forward({ data: new Float32Array(6), shape: [NaN, 3, 2, 2] }), RangeError, /input.shape\[0\]/],
    ['string dim', (bn) => bn.forward({ data: new Float32Array(6), shape: ['2', 3, 2, 2] } as never), TypeError, /input.shape\[0\]/],
    ['huge dims', (bn) => bn.forward({ data: new Float32Array(6), shape: [2 ** 40, 3, 2 ** 20, 2] }), RangeError, /2\^53/],
    ['one value per channel', (bn) => bn.forward(x4([1, 3, 1, 1])), RangeError, /Expected more than 1 value per channel when training, got input size \[1, 3, 1, 1\]/],
    ['out of the wrong size', (bn) => bn.forward(x4([2, 3, 2, 2]), { out: new Float32Array(5) }), RangeError, /Expected out to hold 24 elements/],
    ['out of the wrong dtype', (bn) => bn.forward(x4([2, 3, 2, 2]), { out: new Float64Array(24) }), TypeError, /Expected out to be float32/],
    ['out aliasing the input', (bn) => { const t = x4([2, 3, 2, 2]); return bn.forward(t, { out: t.data }); }, RangeError, /must not share memory/],
    ['unknown call option', (bn) => bn.forward(x4([2, 3, 2, 2]), { outt: 1 } as never), TypeError, /unknown option "outt" .*did you mean "out"/],
    ['dy of the wrong shape', (bn) => bn.backward(x4([2, 3, 2, 1])), RangeError, /Expected dy of shape \[2, 3, 2, 2\]/],
    ['dy of the wrong dtype', (bn) => bn.backward(x4([2, 3, 2, 2], Float64Array)), TypeError, /Expected dy to be float32/],
    ['train(non-boolean)', (bn) => bn.train('yes' as never), TypeError, /a boolean/],
  ];
  for (const [name, act, type, message] of cases) {
    it(name, () => { const bn = trained(); expectUnchanged(bn, () => act(bn), type, message); });
  }

  it('a backward out sharing memory with the saved input', () => {
    const bn = trained(), t = x4([2, 3, 2, 2]);
    bn.forward(t);
    expectUnchanged(bn, () => bn.backward(x4([2, 3, 2, 2]), { out: t.data }), RangeError, /BatchNorm2d\.backward: out must not share memory with the input/);
  });

  it('a detached input buffer', () => {
    const bn = trained();
    const data = new Float32Array(12);
    structuredClone(data.buffer, { transfer: [data.buffer] });
    expectUnchanged(bn, () => bn.forward({ data, shape: [1, 3, 2, 2] }), TypeError, /Expected an attached buffer for input\.data but its ArrayBuffer is detached/);
  });

  it('eval with batch-of-one is fine (running stats are used)', () => {
    const bn = trained().eval();
    expect(() => bn.forward(x4([1, 3, 1, 1]))).not.toThrow();
  });
});

describe('constructors', () => {
  it('numFeatures must be a positive integer', () => {
    expect(() => new BatchNorm1d('3' as never)).toThrow(TypeError);
    expect(() => new BatchNorm1d(0)).toThrow(RangeError);
    expect(() => new BatchNorm1d(2.5)).toThrow(/positive integer for BatchNorm1d numFeatures but received number 2.5/);
    expect(() => new BatchNorm1d(NaN)).toThrow(RangeError);
  });
  it('refuses unknown and ill-typed options', () => {
    expect(() => new BatchNorm2d(3, { track_running_stats: false } as never)).toThrow(/unknown option "track_running_stats" for BatchNorm2d \(did you mean "trackRunningStats"\?\)/);
    expect(() => new BatchNorm2d(3, { momentum: '0.1' } as never)).toThrow(TypeError);
    expect(() => new BatchNorm2d(3, { eps: -1 })).toThrow(RangeError);
    expect(() => new BatchNorm2d(3, { dtype: 'float16' } as never)).toThrow(/"float32" or "float64"/);
    expect(() => new BatchNorm2d(3, { affine: 1 } as never)).toThrow(TypeError);
    expect(new BatchNorm2d(3, { momentum: null }).momentum).toBeNull();
  });
});

describe('functional API', () => {
  const x = () => tensor(new Float32Array(12).map((_, i) => i % 5), [4, 3]);
  it('checks running stats, params and mode', () => {
    const rm = new Float32Array(3), rv = new Float32Array(3).fill(1);
    expect(() => F.batchNorm(x(), { training: true, runningMean: new Float32Array(4), runningVar: rv })).toThrow(/runningMean should contain 3 elements not 4/);
    expect(() => F.batchNorm(x(), { training: true, runningMean: new Float64Array(3), runningVar: rv })).toThrow(TypeError);
    expect(() => F.batchNorm(x(), { training: true, runningMean: rm })).toThrow(/given together/);
    expect(() => F.batchNorm(x(), { training: false })).toThrow(/must be defined in evaluation mode/);
    expect(() => F.batchNorm(x(), {} as never)).toThrow(/training/);
    expect(() => F.batchNorm(x(), { training: true, weight: new Float32Array(2) })).toThrow(/weight should contain 3 elements not 2/);
    expect(() => F.batchNorm(tensor([1, 2, 3], [3]), { training: true })).toThrow(/expected at least 2D input \(got 1D input/);
    expect(Array.from(rm)).toEqual([0, 0, 0]);
  });
  it('a throwing training call leaves running stats untouched', () => {
    const rm = Float32Array.from([1, 2, 3]), rv = Float32Array.from([4, 5, 6]);
    expect(() => F.batchNorm(tensor([1, 2, 3], [1, 3]), { training: true, runningMean: rm, runningVar: rv })).toThrow(RangeError);
    expect(() => F.batchNorm(x(), { training: true, runningMean: rm, runningVar: rv, out: new Float32Array(1) })).toThrow(RangeError);
    expect(Array.from(rm)).toEqual([1, 2, 3]);
    expect(Array.from(rv)).toEqual([4, 5, 6]);
  });
  it('backward checks its saved statistics', () => {
    const r = F.batchNorm(x(), { training: true });
    expect(() => F.batchNormBackward(x(), x(), { saveMean: new Float64Array(2), saveInvstd: r.saveInvstd })).toThrow(/saveMean should contain 3 elements not 2/);
    expect(() => F.batchNormBackward(x(), x(), { saveInvstd: r.saveInvstd } as never)).toThrow(/saveMean/);
  });
});

describe('runtime', () => {
  it('setNumThreads takes a positive integer', () => {
    expect(() => setNumThreads(0)).toThrow(RangeError);
    expect(() => setNumThreads(1.5)).toThrow(RangeError);
    expect(() => setNumThreads('2' as never)).toThrow(TypeError);
  });
});
