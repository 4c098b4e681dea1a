// 10,000 forward/backward calls (sync and async) must not grow the process: no leaked scratch, pinned buffers
// or references. Memory is compared after a warm-up, with garbage collection where the runtime exposes it.
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, LayerNorm, tensor } from '../lib/index.js';

const gc = (globalThis as { gc?: () => void }).gc;

describe('no growth over 10,000 calls', () => {
  it('sync and async forward/backward', async () => {
    const bn = new BatchNorm2d(8), ln = new LayerNorm(64);
    const x = tensor(new Float32Array(4 * 8 * 8 * 8).map((_, i) => Math.sin(i)), [4, 8, 8, 8]);
    const xl = tensor(new Float32Array(16 * 64).map((_, i) => Math.cos(i)), [16, 64]);
    const round = async (n: number) => {
      for (let i = 0; i < n; i++) {
        bn.forward(x); bn.backward(x); ln.forward(xl); ln.backward(xl);
        if (i % 10 === 0) { await bn.forwardAsync(x); await bn.backwardAsync(x); }
      }
    };
    await round(2000);  // warm-up: arenas, JIT, allocator pools
    gc?.();
    const before = process.memoryUsage();
    await round(10_000);
    gc?.();
    const after = process.memoryUsage();
    // Each call allocates ~20 KB of JS output; without a leak, RSS settles. 10,000 leaked outputs would be 200+ MB.
    expect(after.rss - before.rss).toBeLessThan(48 * 1024 * 1024);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(16 * 1024 * 1024);
  });
});
