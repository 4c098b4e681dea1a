// The fused activation of the built-in layers (activation: 'relu'): its option checks. The ReLU itself runs inside
// the kernels' normalize and backward passes (native/core/relu.h); see Layer (layer.ts) for how it is passed down.
import { describe, formatShape, invalidType } from '../errors.js';
import { checkTensor, dtypeOf, type FloatArray, type Tensor } from '../tensor.js';

/** The activation a layer applies after normalizing, in the same call: 'relu', or null for none (PyTorch's layers). */
export type Activation = 'relu' | null;

/** The constructor option's check: null or 'relu'. */
export function checkActivation(v: unknown, name: string): void {
  if (v !== null && v !== 'relu') throw invalidType(name, "'relu' or null", v);
}

/** The residual of a forward, checked against x and out before anything runs; null when none was given. */
export function checkResidual(owner: string, activation: Activation, x: unknown, residual: unknown, out: FloatArray | undefined): Tensor | null {
  if (residual === undefined) return null;
  if (activation === null) {
    throw new TypeError(`${owner}: the residual option needs a layer built with activation 'relu' (this one has none)`);
  }
  const r = checkTensor(residual, 'residual'), t = checkTensor(x, 'input');
  if (dtypeOf(r.data) !== dtypeOf(t.data)) throw new TypeError(`${owner}: expected a ${dtypeOf(t.data)} residual (the input's dtype) but received ${describe(r.data)}`);
  if (r.shape.length !== t.shape.length || r.shape.some((d, i) => d !== t.shape[i])) {
    throw new RangeError(`${owner}: expected a residual of the input's shape ${formatShape(t.shape)} but got ${formatShape(r.shape)}`);
  }
  if (out && out.buffer === r.data.buffer) throw new RangeError(`${owner}: out must not share memory with the residual (backward reads it)`);
  return r;
}
