// Tolerances and the closeness rule, free of vitest so that test/platform/run.ts (run by other Node binaries,
// under emulation too) judges results exactly as the vitest suites do.
export type Numeric = ArrayLike<number>;

export function tolerance(dtype: string): { rtol: number; atol: number } {
  return dtype === 'float32' ? { rtol: 1e-5, atol: 1e-5 } : { rtol: 1e-10, atol: 1e-10 };
}

/** null when |a - e| <= atol + rtol * |e| everywhere (NaN never passes), else the first difference in words. */
export function firstMismatch(actual: Numeric, expected: Numeric, tol: { rtol: number; atol: number }, what = 'value'): string | null {
  if (actual.length !== expected.length) return `${what}: length ${actual.length}, expected ${expected.length}`;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (!(Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e))) {
      return `${what}: first difference at index ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`;
    }
  }
  return null;
}
