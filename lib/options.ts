// Option objects with PyTorch's defaults. A key left out or set to `undefined` takes its default (never `??`:
// `momentum: null` is a real value, the cumulative average). Unknown keys are refused with a hint.
import { closestName, invalidRange, invalidType } from './errors.js';
import { isFloatArray } from './tensor.js';

export type Check = (value: unknown, name: string) => void;

export type OptionSpec<T> = { readonly [K in keyof T]-?: { readonly default: T[K]; readonly check: Check } };

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Merges `given` over the defaults in `spec`, checking each value; `owner` names the caller in messages. */
export function parseOptions<T>(owner: string, given: unknown, spec: OptionSpec<T>): T {
  if (given === undefined || given === null) given = {};
  if (!isPlainObject(given)) throw invalidType(`${owner} options`, 'an object', given);
  const known = Object.keys(spec);
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      const hint = closestName(key, known);
      throw new TypeError(`unknown option "${key}" for ${owner}${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const key of known) {
    const entry = (spec as Record<string, { default: unknown; check: Check }>)[key]!;
    const value = given[key];
    if (value === undefined) out[key] = entry.default;
    else { entry.check(value, `${owner} option "${key}"`); out[key] = value; }
  }
  return out as T;
}

// Checks shared by the option specs.
export const checks = {
  boolean: ((v, name) => { if (typeof v !== 'boolean') throw invalidType(name, 'a boolean', v); }) as Check,
  nonNegative: ((v, name) => {
    if (typeof v !== 'number') throw invalidType(name, 'a non-negative number', v);
    if (!Number.isFinite(v) || v < 0) throw invalidRange(name, 'a finite non-negative number', v);
  }) as Check,
  finite: ((v, name) => {
    if (typeof v !== 'number') throw invalidType(name, 'a number', v);
    if (!Number.isFinite(v)) throw invalidRange(name, 'a finite number', v);
  }) as Check,
  momentum: ((v, name) => {
    if (v === null) return;
    if (typeof v !== 'number') throw invalidType(name, 'a number or null', v);
    if (!Number.isFinite(v)) throw invalidRange(name, 'a finite number or null', v);
  }) as Check,
  dtype: ((v, name) => {
    if (v !== 'float32' && v !== 'float64') throw invalidType(name, '"float32" or "float64"', v);
  }) as Check,
  floatArrayOrNull: ((v, name) => {
    if (v !== null && !isFloatArray(v)) throw invalidType(name, 'a Float32Array, Float64Array or null', v);
  }) as Check,
  nonFinite: ((v, name) => {
    if (v !== 'propagate' && v !== 'skip' && v !== 'throw') throw invalidType(name, '"propagate", "skip" or "throw"', v);
  }) as Check,
  floatArray: ((v, name) => {
    if (!isFloatArray(v)) throw invalidType(name, 'a Float32Array or Float64Array', v);
  }) as Check,
};

/** A positive integer constructor argument: TypeError if not a number, RangeError otherwise. */
export function checkPositiveInt(v: unknown, name: string): number {
  if (typeof v !== 'number') throw invalidType(name, 'a positive integer', v);
  if (!Number.isInteger(v) || v < 1) throw invalidRange(name, 'a positive integer', v);
  return v;
}

