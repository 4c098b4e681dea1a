// State dicts of a module tree: collecting copies under PyTorch's dotted keys, and loading them atomically — every
// entry of the whole tree is checked first, and only when nothing is wrong is anything written.
import { describe, formatShape } from '../errors.js';
import type { StateDict } from '../io/safetensors.js';
import type { FloatArray } from '../tensor.js';
import { isFloatArray } from '../tensor.js';

/** One state-dict entry a module owns: a float tensor (a parameter or a buffer), or an int64 counter. */
export type StateSlot =
  | { kind: 'float'; key: string; array: FloatArray; shape: readonly number[] }
  | { kind: 'count'; key: string; get(): number; set(n: number): void };

/** A slot with its full dotted key, e.g. "features.1.running_mean". */
export interface KeyedSlot { key: string; slot: StateSlot }

/** Sets sd[key] as an own property (safe for any key, "__proto__" included). */
function define(sd: StateDict, key: string, value: StateDict[string]): void {
  Object.defineProperty(sd, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Copies of every slot's value (state dicts hold copies, not views). */
export function collectState(slots: readonly KeyedSlot[]): StateDict {
  const sd: StateDict = {};
  for (const { key, slot: s } of slots) {
    define(sd, key, s.kind === 'float'
      ? { data: s.array.slice(), shape: [...s.shape] }
      : { data: BigInt64Array.of(BigInt(s.get())), shape: [] });
  }
  return sd;
}

/** The check of one float entry: an error message, or the write to do. */
function planFloat(key: string, s: Extract<StateSlot, { kind: 'float' }>, value: unknown): { type?: string; size?: string; commit?: () => void } {
  if (typeof value !== 'object' || value === null) return { type: `${key}: expected a tensor { data, shape } but received ${describe(value)}` };
  const v = value as { data?: unknown; shape?: unknown };
  if (!isFloatArray(v.data)) return { type: `${key}: expected Float32Array or Float64Array data but received ${describe(v.data)}` };
  const shape = Array.isArray(v.shape) ? (v.shape as unknown[]) : null;
  if (!shape || shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i]) || v.data.length !== s.array.length) {
    return { size: `size mismatch for ${key}: copying a tensor of shape ${shape ? formatShape(shape as number[]) : describe(v.shape)} ` +
      `(${v.data.length} elements), the shape in the current model is ${formatShape(s.shape)}` };
  }
  const data = v.data, target = s.array;
  return { commit: () => target.set(data) };  // converts float64 <-> float32 as it copies
}

/** The check of one int64 counter entry (num_batches_tracked). */
function planCount(key: string, s: Extract<StateSlot, { kind: 'count' }>, value: unknown): { type?: string; size?: string; commit?: () => void } {
  const data = typeof value === 'object' && value !== null ? (value as { data?: unknown }).data : undefined;
  const n = data instanceof BigInt64Array && data.length === 1 ? data[0]! : null;
  if (n === null) {
    const got = typeof value === 'object' && value !== null ? `data ${describe(data)}` : describe(value);
    return { type: `${key}: expected an int64 scalar { data: BigInt64Array(1), shape: [] } but received ${got}` };
  }
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) return { size: `${key}: expected a count from 0 to 2^53 - 1 but received ${n}` };
  return { commit: () => s.set(Number(n)) };
}

/**
 * Checks `sd` against every slot of a tree and returns the writes that load it; throws (TypeError for a wrong kind
 * of value, else RangeError) listing every problem, PyTorch's way, before anything is written.
 * strict: missing or unexpected keys (among those starting with `prefix`) are errors. A missing counter loads 0
 * (an old checkpoint without num_batches_tracked), as PyTorch does.
 */
export function planLoad(owner: string, slots: readonly KeyedSlot[], sd: StateDict, strict: boolean, prefix: string): Array<() => void> {
  const typeErrors: string[] = [], sizeErrors: string[] = [], missing: string[] = [];
  const commits: Array<() => void> = [];
  const expected = new Set<string>();
  for (const { key, slot } of slots) {
    expected.add(key);
    const value: unknown = Object.prototype.hasOwnProperty.call(sd, key) ? sd[key] : undefined;
    if (value === undefined) {
      if (slot.kind === 'count') commits.push(() => slot.set(0));
      else missing.push(key);
      continue;
    }
    const r = slot.kind === 'float' ? planFloat(key, slot, value) : planCount(key, slot, value);
    if (r.type) typeErrors.push(r.type);
    if (r.size) sizeErrors.push(r.size);
    if (r.commit) commits.push(r.commit);
  }
  if (strict) {
    const unexpected = Object.keys(sd).filter((k) => k.startsWith(prefix) && !expected.has(k));
    if (missing.length) sizeErrors.push(`Missing key(s) in state_dict: ${missing.map((k) => `"${k}"`).join(', ')}`);
    if (unexpected.length) sizeErrors.push(`Unexpected key(s) in state_dict: ${unexpected.map((k) => `"${k}"`).join(', ')}`);
  }
  const errors = [...typeErrors, ...sizeErrors];
  if (errors.length) {
    const message = `Error(s) in loading state_dict for ${owner}:\n\t${errors.join('\n\t')}`;
    throw typeErrors.length ? new TypeError(message) : new RangeError(message);
  }
  return commits;
}
