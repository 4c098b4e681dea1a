// Argument checks for Communicator methods, shared by every implementation so a thread group and MPI refuse the
// same calls with the same messages (TypeError for kind, RangeError for range, as everywhere in normkit).
import { invalidRange, invalidType } from '../errors.js';
import { isFloatArray, type FloatArray } from '../tensor.js';
import type { Communicator, ReduceOp } from './communicator.js';

export function checkGatherBuffer(v: unknown, method: string): Float64Array {
  if (!(v instanceof Float64Array)) throw invalidType(`${method} buffer`, 'a Float64Array', v);
  return v;
}

export function checkFloatBuffer(v: unknown, method: string): FloatArray {
  if (!isFloatArray(v)) throw invalidType(`${method} buffer`, 'a Float32Array or Float64Array', v);
  return v;
}

export function checkReduceOp(v: unknown, method: string): ReduceOp {
  if (v === undefined) return 'sum';
  if (typeof v !== 'string') throw invalidType(`${method} op`, '"sum" or "mean"', v);
  if (v !== 'sum' && v !== 'mean') throw invalidRange(`${method} op`, '"sum" or "mean"', v);
  return v;
}

export function checkRoot(v: unknown, size: number, method: string): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number') throw invalidType(`${method} root`, `an integer rank in [0, ${size - 1}]`, v);
  if (!Number.isInteger(v) || v < 0 || v >= size) throw invalidRange(`${method} root`, `an integer rank in [0, ${size - 1}]`, v);
  return v;
}

const METHODS = ['allGather', 'allGatherAsync', 'allReduce', 'allReduceAsync', 'broadcast', 'broadcastAsync',
  'barrier', 'barrierAsync', 'close'] as const;

/** A value passed as `comm`: an object with a rank, a size and every Communicator method. */
export function checkCommunicator(v: unknown, name: string): Communicator {
  if (typeof v !== 'object' || v === null) throw invalidType(name, 'a Communicator (threadGroup / mpiWorld)', v);
  const c = v as Record<string, unknown>;
  const missing = METHODS.filter((m) => typeof c[m] !== 'function');
  if (missing.length > 0 || !Number.isInteger(c.size) || !Number.isInteger(c.rank)) {
    throw new TypeError(`Expected a Communicator (threadGroup / mpiWorld) for ${name} but received an object ` +
      `without ${missing.length > 0 ? missing.join(', ') : 'integer rank and size'}`);
  }
  return v as Communicator;
}
