// Thread count and build facts. The thread count belongs to this JS realm (each worker_thread has its own).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { native, packageRoot } from './binding.js';
import { invalidRange, invalidType } from './errors.js';

let threads: number | undefined;

/** Threads each kernel call may use. Results are bit-identical for every value. */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number') throw invalidType('numThreads', 'a positive integer', n);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw invalidRange('numThreads', 'an integer from 1 to 1024', n);
  threads = n;
}

export function getNumThreads(): number {
  threads ??= Math.max(1, native().info().maxThreads);
  return threads;
}

export interface BuildInfo {
  version: string;
  simd: string;
  supportedSimd: string[];
  openmp: boolean;
  threads: number;
}

export function buildInfo(): BuildInfo {
  const info = native().info();
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return { version: pkg.version, simd: info.isa, supportedSimd: info.supportedIsas, openmp: info.openmp,
    threads: getNumThreads() };
}
