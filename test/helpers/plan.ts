// What the layers' fast-path tests (call-plan*.test.ts) share: counting the full path's calls, and checking that a
// refused call throws the full path's error and leaves the layer's state as it was.
import { expect, vi } from 'vitest';
import { expectBitIdentical } from './compare.js';

/** Counts the calls of a layer's full-path steps (forwardSteps, backwardSteps), which the fast path skips. */
export function fullPathCalls(m: object): { forward: () => number; backward: () => number } {
  const steps = m as { forwardSteps: (...a: unknown[]) => unknown; backwardSteps: (...a: unknown[]) => unknown };
  const f = vi.spyOn(steps, 'forwardSteps'), b = vi.spyOn(steps, 'backwardSteps');
  return { forward: () => f.mock.calls.length, backward: () => b.mock.calls.length };
}

/**
 * act() must throw a `type` whose message matches; `state()` (every byte of the layer's state) must read as before,
 * unless `changes` (the case replaced an array of the layer itself: that array is the change the test made).
 */
export function expectRefused(act: () => unknown, type: ErrorConstructor, message: RegExp, state: () => string, changes = false): void {
  const before = state();
  let thrown: unknown;
  try { act(); } catch (e) { thrown = e; }
  expect(thrown, 'must throw').toBeInstanceOf(type);
  expect((thrown as Error).message).toMatch(message);
  if (!changes) expect(state()).toBe(before);
}

type Data = Float32Array | Float64Array;
interface Steppable {
  forward(x: { data: Data; shape: number[] }, options?: { out?: Data }): { data: Data; shape: readonly number[] };
  backward(dy: { data: Data; shape: number[] }, options?: { out?: Data }): { data: Data; shape: readonly number[] };
  forwardAsync(x: { data: Data; shape: number[] }): Promise<{ data: Data; shape: readonly number[] }>;
  backwardAsync(dy: { data: Data; shape: number[] }): Promise<{ data: Data; shape: readonly number[] }>;
}

/**
 * Training step `step` of twin layers on x and dy: `fast` by sync calls (the fast path, where it serves), with `out`
 * on odd forwards and even backwards, `full` by async calls (always the full path). y, dx and the state
 * (`state`: every byte of a layer's) must agree bit for bit. Returns fast's y and dx.
 */
export async function stepTwins<L extends Steppable>(fast: L, full: L, x: { data: Data; shape: number[] }, dy: { data: Data; shape: number[] },
  step: number, state: (m: L) => string): Promise<{ y: { data: Data; shape: readonly number[] }; dx: { data: Data } }> {
  const make = () => (x.data instanceof Float32Array ? new Float32Array(x.data.length) : new Float64Array(x.data.length));
  const out = step % 2 ? make() : undefined;
  const y = fast.forward(x, out ? { out } : undefined), yFull = await full.forwardAsync(x);
  expectBitIdentical(y.data, yFull.data, `y, step ${step}`);
  if (out) expect(y.data).toBe(out);
  expect(y.shape).toEqual(x.shape);
  const dx = fast.backward(dy, step % 2 ? undefined : { out: make() }), dxFull = await full.backwardAsync(dy);
  expectBitIdentical(dx.data, dxFull.data, `dx, step ${step}`);
  expect(state(fast), `state after step ${step}`).toBe(state(full));
  return { y, dx };
}

interface WithParams extends Steppable {
  weight: { requiresGrad: boolean; grad: Data | null } | null;
  bias: { requiresGrad: boolean; grad: Data | null } | null;
}

/**
 * Frozen parameters keep null grads through the fast path (sync calls of `fast`), as through the full path (async
 * calls of `full`); with the bias unfrozen again, it accumulates as the full path's and the weight stays null.
 */
export async function expectFrozenAsFull(fast: WithParams, full: WithParams, x: { data: Data; shape: number[] },
  dy: { data: Data; shape: number[] }): Promise<void> {
  for (const m of [fast, full]) { m.weight!.requiresGrad = false; m.bias!.requiresGrad = false; }
  for (let i = 0; i < 3; i++) {
    fast.forward(x); await full.forwardAsync(x);
    expectBitIdentical(fast.backward(dy).data, (await full.backwardAsync(dy)).data, 'dx');
  }
  expect(fast.weight!.grad).toBeNull();
  expect(fast.bias!.grad).toBeNull();
  for (const m of [fast, full]) m.bias!.requiresGrad = true;
  for (let i = 0; i < 3; i++) { fast.forward(x); fast.backward(dy); await full.forwardAsync(x); await full.backwardAsync(dy); }
  expect(fast.weight!.grad).toBeNull();
  expectBitIdentical(fast.bias!.grad!, full.bias!.grad!, 'bias grad');
}
