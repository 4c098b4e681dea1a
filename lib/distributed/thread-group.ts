// A Communicator for worker_threads on one machine: the ranks share two SharedArrayBuffers, made once by
// threadGroup() and handed to each worker through workerData (they are structured-cloneable; the memory is shared,
// not copied). joinThreadGroup(group, rank) in each participant (the main thread may be one) returns its
// Communicator. The protocol itself lives in thread-group-comm.ts.
import { invalidRange, invalidType } from '../errors.js';
import { isPlainObject } from '../options.js';
import type { Communicator } from './communicator.js';
import { controlLength, dataLength, ThreadGroupCommunicator, JOINED } from './thread-group-comm.js';

/** What threadGroup() returns: plain data (post it to workers as workerData), the same object for every rank. */
export interface ThreadGroup {
  readonly kind: 'normkit.ThreadGroup';
  readonly size: number;
  readonly timeoutMs: number;
  /** Values per rank per step of the shared staging area; longer buffers travel in chunks of this many. */
  readonly chunkElements: number;
  readonly control: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

/** Options of threadGroup: timeoutMs (60 000), chunkElements (8192). */
export interface ThreadGroupOptions {
  /** How long a rank waits for the others in one step of a collective before the group fails (default 60 000). */
  timeoutMs?: number;
  /**
   * The shared staging area holds this many float64 values per rank (twice: consecutive steps alternate halves),
   * default 8192 (64 KiB per rank and half). Buffers of any length work: longer ones are sent in chunks of this
   * size, one synchronization per chunk. A fixed area keeps the group's memory known at creation.
   */
  chunkElements?: number;
}

const MAX_SIZE = 4096;

function positiveInt(v: unknown, name: string, max: number): number {
  if (typeof v !== 'number') throw invalidType(name, `an integer in [1, ${max}]`, v);
  if (!Number.isInteger(v) || v < 1 || v > max) throw invalidRange(name, `an integer in [1, ${max}]`, v);
  return v;
}

/**
 * Creates a group of `size` ranks for worker_threads of one process. Pass the returned object to every worker
 * (e.g. in workerData) and call joinThreadGroup(group, rank) once per rank.
 */
export function threadGroup(size: number, options?: ThreadGroupOptions): ThreadGroup {
  positiveInt(size, 'threadGroup size', MAX_SIZE);
  if (options !== undefined && !isPlainObject(options)) throw invalidType('threadGroup options', 'an object', options);
  for (const key of Object.keys(options ?? {})) {
    if (key !== 'timeoutMs' && key !== 'chunkElements') throw new TypeError(`unknown option "${key}" for threadGroup (known: timeoutMs, chunkElements)`);
  }
  const timeoutMs = options?.timeoutMs === undefined ? 60_000 : options.timeoutMs;
  if (typeof timeoutMs !== 'number') throw invalidType('threadGroup option "timeoutMs"', 'a positive number of milliseconds', timeoutMs);
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) throw invalidRange('threadGroup option "timeoutMs"', 'a positive finite number of milliseconds', timeoutMs);
  const chunkElements = options?.chunkElements === undefined ? 8192 : positiveInt(options.chunkElements, 'threadGroup option "chunkElements"', 1 << 24);
  return Object.freeze({
    kind: 'normkit.ThreadGroup' as const, size, timeoutMs, chunkElements,
    control: new SharedArrayBuffer(controlLength(size) * 4),
    data: new SharedArrayBuffer(dataLength(size, chunkElements) * 8),
  });
}

function checkGroup(v: unknown): ThreadGroup {
  const g = v as Partial<ThreadGroup> | null;
  if (typeof v !== 'object' || g === null || g.kind !== 'normkit.ThreadGroup' || typeof g.size !== 'number' ||
      typeof g.timeoutMs !== 'number' || typeof g.chunkElements !== 'number' ||
      !(g.control instanceof SharedArrayBuffer) || !(g.data instanceof SharedArrayBuffer)) {
    throw invalidType('joinThreadGroup group', 'the object returned by threadGroup()', v);
  }
  if (g.control.byteLength !== controlLength(g.size) * 4 || g.data.byteLength !== dataLength(g.size, g.chunkElements) * 8) {
    throw new RangeError('joinThreadGroup: the group\'s shared buffers do not match its size and chunkElements (was it modified?)');
  }
  return g as ThreadGroup;
}

/** Joins `group` as `rank`; each rank may be joined once, by one thread. */
export function joinThreadGroup(group: ThreadGroup, rank: number): Communicator {
  const g = checkGroup(group);
  if (typeof rank !== 'number') throw invalidType('joinThreadGroup rank', `an integer in [0, ${g.size - 1}]`, rank);
  if (!Number.isInteger(rank) || rank < 0 || rank >= g.size) throw invalidRange('joinThreadGroup rank', `an integer in [0, ${g.size - 1}]`, rank);
  const control = new Int32Array(g.control);
  if (Atomics.compareExchange(control, JOINED + rank, 0, 1) !== 0) {
    throw new Error(`joinThreadGroup: rank ${rank} of this group has already been joined (each rank joins once)`);
  }
  return new ThreadGroupCommunicator(g, rank);
}
