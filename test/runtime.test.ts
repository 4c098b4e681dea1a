// setNumThreads / getNumThreads: any positive integer is taken; counts above the native cap, max(16, 4 x cores),
// are capped, and what getNumThreads() and buildInfo() report is the count that runs.
import { availableParallelism } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { buildInfo, getNumThreads, setNumThreads } from '../lib/index.js';

const initial = getNumThreads();
afterAll(() => setNumThreads(initial));
const cap = Math.max(16, 4 * availableParallelism());

describe('thread count', () => {
  it('reports what runs: counts above max(16, 4 x cores) are capped, not refused', () => {
    setNumThreads(3);
    expect(getNumThreads()).toBe(3);
    setNumThreads(cap);
    expect(getNumThreads()).toBe(cap);
    setNumThreads(100);
    expect(getNumThreads()).toBe(Math.min(100, cap));
    setNumThreads(10_000);
    expect(getNumThreads()).toBe(cap);
    expect(buildInfo().threads).toBe(cap);
  });

  it('refuses what is not a positive integer, keeping the count', () => {
    setNumThreads(2);
    expect(() => setNumThreads(0)).toThrow(/Expected a positive integer for numThreads but received number 0/);
    expect(() => setNumThreads(2.5)).toThrow(RangeError);
    expect(() => setNumThreads(Infinity)).toThrow(RangeError);
    expect(() => setNumThreads('4' as never)).toThrow(TypeError);
    expect(getNumThreads()).toBe(2);
  });
});
