// worker_threads each load the addon (per-environment state) and compute the same bits as the main thread;
// a worker that used OpenMP threads can exit without taking the process down (-z nodelete).
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, tensor } from '../lib/index.js';
import { expectBitIdentical, randn } from './helpers/compare.js';

const root = join(__dirname, '..');

// The worker runs the built CommonJS package (dist/), as a user's worker would.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const nk = require(workerData.root + '/dist/cjs/index.js');
const x = { data: new Float32Array(workerData.x), shape: workerData.shape };
const bn = new nk.BatchNorm2d(workerData.shape[1]);
const y = bn.forward(x);
const dx = bn.backward(x);
parentPort.postMessage({ y: y.data, dx: dx.data, rm: bn.runningMean, simd: nk.buildInfo().simd });
`;

function runWorker(x: Float32Array, shape: number[]): Promise<{ y: Float32Array; dx: Float32Array; rm: Float32Array; simd: string }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { eval: true, workerData: { root, x: Array.from(x), shape } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

describe('worker_threads', () => {
  it('several workers at once compute what the main thread computes, and exit cleanly', async () => {
    const shape = [4, 6, 48, 48], n = 4 * 6 * 48 * 48;  // above the single-thread cut-off: OpenMP runs in workers
    const x = randn(n, 77, Float32Array) as Float32Array;
    const bn = new BatchNorm2d(6);
    const y = bn.forward(tensor(x, shape)), dx = bn.backward(tensor(x, shape));
    const results = await Promise.all([1, 2, 3, 4].map(() => runWorker(x, shape)));
    for (const r of results) {
      expectBitIdentical(r.y, y.data as Float32Array, 'worker y');
      expectBitIdentical(r.dx, dx.data as Float32Array, 'worker dx');
      expectBitIdentical(r.rm, bn.runningMean as Float32Array, 'worker running_mean');
      expect(['baseline', 'avx2', 'avx512']).toContain(r.simd);
    }
    // The main thread still works after the workers (and their OpenMP teams) are gone.
    expectBitIdentical(new BatchNorm2d(6).forward(tensor(x, shape)).data, y.data, 'after workers');
  });
});
