// The thread group's protocol. Every collective is a sequence of steps; in a step each rank writes its chunk (and,
// in a collective's first step, a header naming the call) into its own slot of the shared staging area, announces
// its arrival, waits until every rank has arrived, then reads the other ranks' slots.
//
// Why this is safe without locks: a rank can only be one step ahead of the slowest (it waits for all at every
// step), and consecutive steps alternate between two halves of the staging area, so the slot a rank writes at
// step k+2 is overwritten only after every rank arrived at step k+1 — that is, after every rank finished reading
// step k. Arrival = storing the rank's step counter, then ringing a shared doorbell (Atomics.add + notify) that
// every waiter sleeps on; failures and departures ring it too, so no wake-up is lost.
//
// Every rank computes the same expression from the same shared values (reduceInRankOrder for allReduce), so every
// rank ends with the same bits. A header mismatch (another operation, dtype, length or root) is seen by every rank
// at the same step: all throw, and the group stays in step. A rank that does not arrive within timeoutMs makes the
// waiting ranks record the failure in shared memory and close the group for everyone.
import type { FloatArray } from '../tensor.js';
import { checkFloatBuffer, checkGatherBuffer, checkReduceOp, checkRoot } from './checks.js';
import { reduceInRankOrder, type Communicator, type ReduceOp } from './communicator.js';
import type { ThreadGroup } from './thread-group.js';

// Control words (Int32): fixed fields, then four arrays of `size`.
const STATE = 0;        // 0 open, 1 a failure is being recorded, 2 failed (closed for everyone)
const BELL = 1;         // the doorbell: incremented on every arrival, failure and departure
const FAIL_OP = 2;      // the operation that failed (OPS index)
const FAIL_REASON = 3;  // 1: timed out, 2: a rank left (close()) while others waited for it
const FAIL_STEP = 4;    // the step the recording rank waited at (the missing ranks' own steps are in EPOCH)
export const JOINED = 8;
const EPOCH = (size: number) => JOINED + size;       // per rank: the number of the last step it arrived at
const MISSING = (size: number) => JOINED + 2 * size;  // per rank: 1 if the failure waited for it
const LEFT = (size: number) => JOINED + 3 * size;     // per rank: 1 after its close()

export const controlLength = (size: number) => JOINED + 4 * size;
const HEADER = 5;  // [op, dtype, length, root, reduce op]
export const dataLength = (size: number, chunk: number) => 2 * size * (HEADER + chunk);

const OPS = ['', 'allGather', 'allReduce', 'broadcast', 'barrier'] as const;
type OpName = Exclude<(typeof OPS)[number], ''>;
const DTYPES = ['float32', 'float64'] as const;
const REDUCE: readonly (ReduceOp | '')[] = ['', 'sum', 'mean'];
// Before sleeping in Atomics.wait, poll for up to SPIN_US: ranks that run in step arrive within microseconds of
// each other, and a futex sleep + wake costs tens of microseconds (more when the machine is busy).
const SPIN_US = 50;

// Atomics.waitAsync is in every Node this package supports (>= 16) but only in TypeScript's es2024 lib.
type WaitAsync = (a: Int32Array, i: number, v: number, timeout: number) =>
  { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync: WaitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** A collective as steps: each `yield` = arrive and wait for every rank. Sync and async drivers share it. */
type Steps<R> = Generator<void, R, void>;

interface Header { op: OpName; dtype: 'float32' | 'float64'; length: number; root: number; reduce: ReduceOp | '' }

export class ThreadGroupCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  private readonly ctl: Int32Array;
  private readonly timeoutMs: number;
  private readonly chunk: number;
  private readonly headers: Float64Array[][];  // [half][rank]
  private readonly slots: Float64Array[][];    // [half][rank]
  private step = 0;                           // steps this rank has arrived at (int32, wraps)
  private closed = false;
  private busyWith: string | null = null;

  constructor(group: ThreadGroup, rank: number) {
    this.rank = rank; this.size = group.size; this.timeoutMs = group.timeoutMs; this.chunk = group.chunkElements;
    this.ctl = new Int32Array(group.control);
    const data = new Float64Array(group.data), per = HEADER + this.chunk;
    const view = (h: number, r: number, at: number, n: number) => data.subarray((h * this.size + r) * per + at, (h * this.size + r) * per + at + n);
    this.headers = [0, 1].map((h) => Array.from({ length: this.size }, (_, r) => view(h, r, 0, HEADER)));
    this.slots = [0, 1].map((h) => Array.from({ length: this.size }, (_, r) => view(h, r, HEADER, this.chunk)));
    this.step = Atomics.load(this.ctl, EPOCH(this.size) + rank);
  }

  allGather(local: Float64Array): Float64Array { return this.runSync('allGather', this.gatherSteps(checkGatherBuffer(local, 'allGather'))); }
  allGatherAsync(local: Float64Array): Promise<Float64Array> {
    return this.runAsync('allGatherAsync', () => this.gatherSteps(checkGatherBuffer(local, 'allGatherAsync')));
  }
  allReduce(buf: FloatArray, op?: ReduceOp): void {
    this.runSync('allReduce', this.reduceSteps(checkFloatBuffer(buf, 'allReduce'), checkReduceOp(op, 'allReduce')));
  }
  allReduceAsync(buf: FloatArray, op?: ReduceOp): Promise<void> {
    return this.runAsync('allReduceAsync', () => this.reduceSteps(checkFloatBuffer(buf, 'allReduceAsync'), checkReduceOp(op, 'allReduceAsync')));
  }
  broadcast(buf: FloatArray, root?: number): void {
    this.runSync('broadcast', this.broadcastSteps(checkFloatBuffer(buf, 'broadcast'), checkRoot(root, this.size, 'broadcast')));
  }
  broadcastAsync(buf: FloatArray, root?: number): Promise<void> {
    return this.runAsync('broadcastAsync', () => this.broadcastSteps(checkFloatBuffer(buf, 'broadcastAsync'), checkRoot(root, this.size, 'broadcastAsync')));
  }
  barrier(): void { this.runSync('barrier', this.collective({ op: 'barrier', dtype: 'float64', length: 0, root: 0, reduce: '' }, () => undefined)); }
  barrierAsync(): Promise<void> {
    return this.runAsync('barrierAsync', () => this.collective({ op: 'barrier', dtype: 'float64', length: 0, root: 0, reduce: '' }, () => undefined));
  }

  /** Leaves the group: later calls here throw, and ranks waiting for this one fail at once instead of timing out. */
  close(): void {
    if (this.busyWith !== null) throw new Error(`thread group rank ${this.rank}: close() while ${this.busyWith} is in flight; await it first`);
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, LEFT(this.size) + this.rank, 1);
    this.ring();
  }

  // ---- the collectives as steps ----------------------------------------------------------------------------------

  private *gatherSteps(local: Float64Array): Steps<Float64Array> {
    const L = local.length, out = new Float64Array(this.size * L);
    yield* this.collective({ op: 'allGather', dtype: 'float64', length: L, root: 0, reduce: '' }, (off, n, mine) => {
      mine.set(local.subarray(off, off + n));
      return (slots) => { for (let q = 0; q < this.size; q++) out.set(slots[q]!.subarray(0, n), q * L + off); };
    });
    return out;
  }

  private *reduceSteps(buf: FloatArray, op: ReduceOp): Steps<void> {
    yield* this.collective({ op: 'allReduce', dtype: dtypeName(buf), length: buf.length, root: 0, reduce: op }, (off, n, mine) => {
      for (let i = 0; i < n; i++) mine[i] = buf[off + i]!;  // float32 -> double is exact
      // The shared definition, on the shared values: the same expression and so the same bits on every rank.
      return (slots) => reduceInRankOrder(slots.map((s) => s.subarray(0, n)), buf.subarray(off, off + n), op);
    });
  }

  private *broadcastSteps(buf: FloatArray, root: number): Steps<void> {
    yield* this.collective({ op: 'broadcast', dtype: dtypeName(buf), length: buf.length, root, reduce: '' }, (off, n, mine) => {
      if (this.rank === root) for (let i = 0; i < n; i++) mine[i] = buf[off + i]!;
      return (slots) => { if (this.rank !== root) buf.set(slots[root]!.subarray(0, n), off); };
    });
  }

  /**
   * The frame of every collective: one step per chunk (at least one, which carries the header). `chunk(off, n,
   * mine)` writes this rank's part into its slot and returns what to do with every rank's slots after the step.
   */
  private *collective(h: Header, chunk: (off: number, n: number, mine: Float64Array) => ((slots: Float64Array[]) => void) | undefined): Steps<void> {
    for (let off = 0, first = true; first || off < h.length; off += this.chunk, first = false) {
      const half = this.step & 1, n = Math.min(this.chunk, h.length - off);
      if (first) writeHeader(this.headers[half]![this.rank]!, h);
      const after = chunk(off, n, this.slots[half]![this.rank]!);
      yield;
      if (first) this.checkHeaders(this.headers[half]!);
      if (after) after(this.slots[half]!);
    }
  }

  /** Every rank reads the same headers, so every rank throws the same Error (and the group stays in step). */
  private checkHeaders(headers: Float64Array[]): void {
    const same = headers.every((hd) => hd.every((v, i) => v === headers[0]![i]));
    if (same) return;
    const calls = headers.map((hd, q) => `rank ${q}: ${describeCall(readHeader(hd))}`).join(', ');
    throw new Error(`thread group: ranks called different collectives (${calls}); every rank throws, nothing was exchanged`);
  }

  // ---- drivers ---------------------------------------------------------------------------------------------------

  private runSync<R>(what: string, steps: Steps<R>): R {
    this.assertUsable(what);
    this.busyWith = what;
    try {
      for (let s = steps.next(); ; s = steps.next()) {
        if (s.done) return s.value;
        this.waitAllSync(this.arrive(), what);
      }
    } finally { this.busyWith = null; }
  }

  private async runAsync<R>(what: string, make: () => Steps<R>): Promise<R> {
    this.assertUsable(what);
    const steps = make();  // argument checks throw here, as a rejected promise
    this.busyWith = what;
    try {
      for (let s = steps.next(); ; s = steps.next()) {
        if (s.done) return s.value;
        await this.waitAllAsync(this.arrive(), what);
      }
    } finally { this.busyWith = null; }
  }

  private assertUsable(what: string): void {
    if (this.closed) throw new Error(`thread group rank ${this.rank}: ${what} after close(); this communicator is closed`);
    if (this.busyWith !== null) throw new Error(`thread group rank ${this.rank} is busy with ${this.busyWith}; ${what} must wait until it settles`);
    this.throwIfFailed();
  }

  private arrive(): number {
    this.step = (this.step + 1) | 0;
    Atomics.store(this.ctl, EPOCH(this.size) + this.rank, this.step);
    this.ring();
    return this.step;
  }

  private ring(): void {
    Atomics.add(this.ctl, BELL, 1);
    Atomics.notify(this.ctl, BELL);
  }

  /** The ranks that have not yet arrived at `step` (none: everyone is there). Throws if the group failed. */
  private missing(step: number, what: string): number[] {
    this.throwIfFailed();
    const late: number[] = [];
    for (let q = 0; q < this.size; q++) if (((Atomics.load(this.ctl, EPOCH(this.size) + q) - step) | 0) < 0) late.push(q);
    // Re-read a departed rank's step after reading LEFT: it stores its step before LEFT, so a rank that arrived at
    // `step` and then closed (between the two reads above) is seen as arrived here, not as missing.
    const gone = late.filter((q) => Atomics.load(this.ctl, LEFT(this.size) + q) === 1 &&
      ((Atomics.load(this.ctl, EPOCH(this.size) + q) - step) | 0) < 0);
    if (gone.length > 0) this.fail(what, 2, gone, step);
    return late;
  }

  private allArrived(step: number): boolean {
    for (let q = 0; q < this.size; q++) if (((Atomics.load(this.ctl, EPOCH(this.size) + q) - step) | 0) < 0) return false;
    return true;
  }

  private waitAllSync(step: number, what: string): void {
    const spinUntil = performance.now() + SPIN_US / 1000;
    do {
      for (let i = 0; i < 64; i++) if (this.allArrived(step)) return;  // no allocation, no syscall
    } while (performance.now() < spinUntil);
    const deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const bell = Atomics.load(this.ctl, BELL);  // read before checking: a change after it makes wait return
      const late = this.missing(step, what);
      if (late.length === 0) return;
      const left = deadline - performance.now();
      if (left <= 0) this.fail(what, 1, late, step);
      Atomics.wait(this.ctl, BELL, bell, left);
    }
  }

  private async waitAllAsync(step: number, what: string): Promise<void> {
    const deadline = performance.now() + this.timeoutMs;
    for (;;) {
      const bell = Atomics.load(this.ctl, BELL);
      const late = this.missing(step, what);
      if (late.length === 0) return;
      const left = deadline - performance.now();
      if (left <= 0) this.fail(what, 1, late, step);
      const w = waitAsync(this.ctl, BELL, bell, left);
      if (!w.async) continue;
      // A pending waitAsync does not keep Node's event loop alive: without this timer a worker whose only work is
      // the wait would exit in the middle of the collective.
      const keepAlive = setTimeout(() => undefined, left + 1000);
      try { await w.value; } finally { clearTimeout(keepAlive); }
    }
  }

  /** Records the failure for every rank (the first recorder wins), closes the group, wakes everyone; throws. */
  private fail(what: string, reason: 1 | 2, ranks: number[], step: number): never {
    if (Atomics.compareExchange(this.ctl, STATE, 0, 1) === 0) {
      Atomics.store(this.ctl, FAIL_OP, OPS.indexOf(baseOp(what)));
      Atomics.store(this.ctl, FAIL_REASON, reason);
      Atomics.store(this.ctl, FAIL_STEP, step);
      for (const q of ranks) Atomics.store(this.ctl, MISSING(this.size) + q, 1);
      Atomics.store(this.ctl, STATE, 2);
      this.ring();
    }
    this.throwIfFailed();
    throw new Error('normkit internal: thread group failure record missing');
  }

  private throwIfFailed(): void {
    let state = Atomics.load(this.ctl, STATE);
    while (state === 1) state = Atomics.load(this.ctl, STATE);  // another rank is writing the record: a few stores
    if (state === 0) return;
    const op = OPS[Atomics.load(this.ctl, FAIL_OP)] ?? 'a collective';
    const ranks: number[] = [];
    for (let q = 0; q < this.size; q++) if (Atomics.load(this.ctl, MISSING(this.size) + q) === 1) ranks.push(q);
    const who = `${ranks.length === 1 ? 'rank' : 'ranks'} ${ranks.join(', ')}`;
    const steps = ranks.map((q) => Atomics.load(this.ctl, EPOCH(this.size) + q)).join(', ');
    throw new Error(Atomics.load(this.ctl, FAIL_REASON) === 2
      ? `thread group: ${op} failed: ${who} left the group (close()) while the others waited; the group of ${this.size} is closed ` +
        `(collective step ${Atomics.load(this.ctl, FAIL_STEP)}; the departed at step ${steps})`
      : `thread group: ${op} timed out after ${this.timeoutMs} ms waiting for ${who} (group of ${this.size}); the group is closed and every later call throws`);
  }
}

function baseOp(what: string): OpName {
  return what.replace(/Async$/, '') as OpName;
}

function dtypeName(buf: FloatArray): 'float32' | 'float64' {
  return buf instanceof Float32Array ? 'float32' : 'float64';
}

function writeHeader(slot: Float64Array, h: Header): void {
  slot[0] = OPS.indexOf(h.op); slot[1] = DTYPES.indexOf(h.dtype); slot[2] = h.length; slot[3] = h.root;
  slot[4] = REDUCE.indexOf(h.reduce);
}

function readHeader(s: Float64Array): Header {
  return { op: (OPS[s[0]!] || 'barrier') as OpName, dtype: DTYPES[s[1]!] ?? 'float64', length: s[2]!, root: s[3]!, reduce: REDUCE[s[4]!] ?? '' };
}

function describeCall(h: Header): string {
  if (h.op === 'barrier') return 'barrier()';
  const buf = `${h.dtype}[${h.length}]`;
  if (h.op === 'allReduce') return `allReduce(${buf}, '${h.reduce}')`;
  if (h.op === 'broadcast') return `broadcast(${buf}, root ${h.root})`;
  return `allGather(${buf})`;
}
