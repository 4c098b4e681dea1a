// One code path for sync and async calls. An operation is written once as a generator that yields the steps it
// needs and does the O(channels) bookkeeping in between; `runSync` performs each step at once, `runAsync` awaits
// its async twin, so the event loop keeps turning. A step is a native kernel call (the addon's async twin runs on
// the libuv pool) or a communication (SyncBatchNorm's collective between two kernel calls: a Communicator method
// and its …Async form).
import { native, type NativeBinding } from './binding.js';

type SyncOp = 'moments' | 'normalize' | 'backwardReduce' | 'backwardApply' | 'paramGrad' | 'forwardTrain' | 'backwardTrain';

export interface NativeCall<K extends SyncOp = SyncOp> {
  readonly op: K;
  readonly args: Parameters<NativeBinding[K]>;
}

/** A collective: `sync` blocks the calling thread, `async` never blocks the event loop; both store the result. */
export interface CommCall {
  readonly op: 'comm';
  sync(): void;
  async(): Promise<void>;
}

export type Steps<R> = Generator<NativeCall | CommCall, R, void>;

export function call<K extends SyncOp>(op: K, ...args: Parameters<NativeBinding[K]>): NativeCall<K> {
  return { op, args };
}

/** A communication step: yields it, and returns what the sync or async form produced. */
export function* communicate<T>(sync: () => T, async: () => Promise<T>): Steps<T> {
  let result: { value: T } | null = null;
  yield { op: 'comm', sync: () => { result = { value: sync() }; }, async: async () => { result = { value: await async() }; } };
  if (result === null) throw new Error('normkit internal: a communication step was not run');
  return (result as { value: T }).value;
}

// A step that throws is thrown back into the generator at its `yield`, so an operation can add context to a
// failed step (SyncBatchNorm names what this rank sent when a collective fails); uncaught, it propagates as is.

export function runSync<R>(steps: Steps<R>): R {
  const nb = native();
  for (let s = steps.next(); ;) {
    if (s.done) return s.value;
    const step = s.value;
    try {
      if (step.op === 'comm') step.sync();
      else (nb[step.op] as (...a: unknown[]) => void)(...step.args);
    } catch (e) {
      s = steps.throw(e);
      continue;
    }
    s = steps.next();
  }
}

export async function runAsync<R>(steps: Steps<R>): Promise<R> {
  const nb = native();
  for (let s = steps.next(); ;) {
    if (s.done) return s.value;
    const step = s.value;
    try {
      if (step.op === 'comm') await step.async();
      else await (nb[`${step.op}Async` as const] as (...a: unknown[]) => Promise<void>)(...step.args);
    } catch (e) {
      s = steps.throw(e);
      continue;
    }
    s = steps.next();
  }
}
