// One code path for sync and async calls. An operation is written once as a generator that yields the native
// kernel calls it needs and does the O(channels) bookkeeping in between; `runSync` performs each call at once,
// `runAsync` awaits the addon's async twin (libuv pool) of each, so the event loop keeps turning.
import { native, type NativeBinding } from './binding.js';

type SyncOp = 'moments' | 'normalize' | 'backwardReduce' | 'backwardApply' | 'paramGrad' | 'forwardTrain' | 'backwardTrain';

export interface NativeCall<K extends SyncOp = SyncOp> {
  readonly op: K;
  readonly args: Parameters<NativeBinding[K]>;
}

export type Steps<R> = Generator<NativeCall, R, void>;

export function call<K extends SyncOp>(op: K, ...args: Parameters<NativeBinding[K]>): NativeCall<K> {
  return { op, args };
}

export function runSync<R>(steps: Steps<R>): R {
  const nb = native();
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done) return s.value;
    (nb[s.value.op] as (...a: unknown[]) => void)(...s.value.args);
  }
}

export async function runAsync<R>(steps: Steps<R>): Promise<R> {
  const nb = native();
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done) return s.value;
    const asyncOp = `${s.value.op}Async` as const;
    await (nb[asyncOp] as (...a: unknown[]) => Promise<void>)(...s.value.args);
  }
}
