// Timing with medians. Machines are noisy (a 103 MB copy took 5 ms one day and 10-14 ms another), so every
// kernel time is paired with a copy of the same bytes run right before it, and ratios are medians of pairs.
import { performance } from 'node:perf_hooks';

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function timeOnce(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export async function timeOnceAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface Paired { ms: number; copyMs: number; ratio: number; ntCopyMs: number; ntRatio: number }

/**
 * Median time of `fn`, and the medians of (fn time / copy time) over triples run back to back: `copy` is memcpy,
 * `ntCopy` a copy with non-temporal stores (the bytes a streaming kernel moves).
 */
export function paired(fn: () => unknown, copy: () => unknown, ntCopy: () => unknown, reps: number): Paired {
  fn(); copy(); ntCopy();  // warm: page faults, code, caches
  const t: number[] = [], c: number[] = [], r: number[] = [], n: number[] = [], nr: number[] = [];
  for (let i = 0; i < reps; i++) {
    const tc = timeOnce(copy), tn = timeOnce(ntCopy), tk = timeOnce(fn);
    t.push(tk); c.push(tc); r.push(tk / tc); n.push(tn); nr.push(tk / tn);
  }
  return { ms: median(t), copyMs: median(c), ratio: median(r), ntCopyMs: median(n), ntRatio: median(nr) };
}

/** Median of `reps` runs after one warm-up, stopping early once `budgetMs` is spent (slow peers). */
export async function repeat(fn: () => unknown | Promise<unknown>, reps: number, budgetMs = 20_000): Promise<number> {
  const first = await timeOnceAsync(async () => { await fn(); });
  const times: number[] = [];
  let spent = first;
  for (let i = 0; i < reps && spent < budgetMs; i++) {
    const t = await timeOnceAsync(async () => { await fn(); });
    times.push(t); spent += t;
  }
  return times.length ? median(times) : first;
}

/**
 * Median per-call time of `fn` over `reps` samples of `batch` back-to-back calls. For calls of a few microseconds:
 * one timer read per call, and the copies `paired` runs between calls (which evict a tiny layer's tensors from L1),
 * would be a large part of what is measured.
 *
 * Timed once V8 has optimized the call's JavaScript, as in a training loop that calls a layer many thousand times:
 * BatchNorm2d.forward on [8,16,8,8] took 9-12 us per call over its first 4000 calls, 3.2-4.9 over the next 20000 and
 * 2.6-2.7 from about 30000 calls (2026-12-02, 2 threads), and the rows timed after a hundred warm calls read 1.3-1.7x
 * the steady state.
 */
export function batched(fn: () => unknown, reps: number, batch: number, warmMs = 400): number {
  for (const start = performance.now(); performance.now() - start < warmMs;)
    for (let i = 0; i < batch; i++) fn();
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) fn();
    t.push((performance.now() - t0) / batch);
  }
  return median(t);
}
