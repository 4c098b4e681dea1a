// Bad input through the public API of an installed normkit: each must throw the named error class with a message
// that names what was expected and what was given, and leave the layer's state as it was. Plain functions (no
// vitest) for test/platform/run.ts; test/errors.test.ts and family.errors.test.ts cover every rule in depth.
import type * as Normkit from '../../lib/index.js';

type Nk = typeof Normkit;
export interface BadInput { name: string; run(nk: Nk): string | null }

function trained(nk: Nk): Normkit.BatchNorm2d {
  const bn = new nk.BatchNorm2d(3);
  bn.forward(nk.tensor(new Float32Array(24).map((_, i) => Math.sin(i)), [2, 3, 2, 2]));
  return bn;
}

function stateBytes(m: Normkit.Module): string {
  return JSON.stringify(Object.entries(m.stateDict()).map(([k, t]) => [k, t.shape, Array.from(t.data, Number)]));
}

/** null when `f` throws `Kind` with a message matching `message` and `layer`'s state is unchanged. */
function expectThrow(layer: Normkit.Module | null, f: () => unknown, Kind: ErrorConstructor, message: RegExp): string | null {
  const before = layer && stateBytes(layer);
  try {
    f();
    return `no error thrown, expected ${Kind.name}`;
  } catch (e) {
    if (!(e instanceof Kind)) return `threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}, expected ${Kind.name}`;
    if (!message.test(e.message)) return `message "${e.message}" does not match ${message}`;
  }
  if (layer && stateBytes(layer) !== before) return 'the layer state changed';
  return null;
}

const detached = (): Float32Array => {
  const d = new Float32Array(24);
  structuredClone(d.buffer, { transfer: [d.buffer] });
  return d;
};

export const BAD_INPUTS: BadInput[] = [
  { name: 'not a tensor', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward('x' as never), TypeError, /Expected a tensor .* but received string/); } },
  { name: 'integer data', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward({ data: new Int32Array(24) as never, shape: [2, 3, 2, 2] }), TypeError, /Float32Array or Float64Array .* Int32Array/); } },
  { name: 'data shorter than the shape', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward({ data: new Float32Array(23), shape: [2, 3, 2, 2] }), RangeError, /24 .* 23/); } },
  { name: 'wrong channel count', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward(nk.tensor(new Float32Array(32), [2, 4, 2, 2])), RangeError, /3 channels .* 4/); } },
  { name: 'wrong rank', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward(nk.tensor(new Float32Array(6), [2, 3])), RangeError, /4D .* 2D/); } },
  { name: 'detached buffer', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.forward({ data: detached(), shape: [2, 3, 2, 2] }), TypeError, /attached buffer .* detached/); } },
  { name: 'dy of the wrong shape', run: (nk) => { const bn = trained(nk); return expectThrow(bn, () => bn.backward(nk.tensor(new Float32Array(32), [2, 4, 2, 2])), RangeError, /\[2, 3, 2, 2\] .* \[2, 4, 2, 2\]/); } },
  { name: 'wrong dtype for the layer', run: (nk) => { const ln = new nk.LayerNorm([3]); return expectThrow(ln, () => ln.forward(nk.tensor(new Float64Array(6), [2, 3])), TypeError, /float32 .* Float64Array/); } },
  { name: 'a bad option', run: (nk) => expectThrow(null, () => new nk.BatchNorm2d(3, { momentum: 'fast' as never }), TypeError, /momentum.*string "fast"/) },
  { name: 'groups that do not divide channels', run: (nk) => expectThrow(null, () => new nk.GroupNorm(4, 6), RangeError, /divisible/) },
  { name: 'a thread count out of range', run: (nk) => expectThrow(null, () => nk.setNumThreads(-1), RangeError, /positive integer.* -1/) },
  { name: 'a truncated safetensors file', run: (nk) => expectThrow(null, () => nk.loadSafetensors(new Uint8Array(5)), RangeError, /5 bytes/) },
];
