// Thread count and build facts. The thread count belongs to this JS realm (each worker_thread has its own).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, packageRoot } from './binding.js';
import { invalidRange, invalidType } from './errors.js';

let threads: number | undefined;

/**
 * The most threads a kernel call uses: max(16, 4 × cores). More only adds idle OpenMP teams; the native side
 * applies the same cap, so what getNumThreads() reports is what runs.
 */
export function maxThreads(): number {
  return Math.max(16, 4 * native().info().processors);
}

/**
 * Sets the threads each kernel call may use (this thread's calls; each worker_thread has its own count).
 * Any positive integer is accepted; counts above max(16, 4 × cores) are capped to it, and getNumThreads() reports
 * the capped count. Results are bit-identical for every value.
 * @throws TypeError if n is not a number, RangeError if it is not a positive integer
 */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number') throw invalidType('numThreads', 'a positive integer', n);
  if (!Number.isSafeInteger(n) || n < 1) throw invalidRange('numThreads', 'a positive integer', n);
  threads = Math.min(n, maxThreads());
}

/** The threads each kernel call uses: OpenMP's default (the cores, or OMP_NUM_THREADS) until setNumThreads. */
export function getNumThreads(): number {
  threads ??= Math.min(Math.max(1, native().info().maxThreads), maxThreads());
  return threads;
}

/** What this build is and runs with. */
export interface BuildInfo {
  /** The package version. */
  version: string;
  /** The SIMD kernels in use: 'baseline' (x86-64), 'avx2' or 'avx512' (NORMKIT_ISA forces one). */
  simd: string;
  /** Every SIMD path this CPU and build can run. */
  supportedSimd: string[];
  /** Whether the addon was built with OpenMP threads. */
  openmp: boolean;
  /** getNumThreads(). */
  threads: number;
}

/** Version, SIMD path, OpenMP and thread count of the loaded addon. */
export function buildInfo(): BuildInfo {
  const info = native().info();
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, simd: info.isa, supportedSimd: info.supportedIsas, openmp: info.openmp,
    threads: getNumThreads() };
}
