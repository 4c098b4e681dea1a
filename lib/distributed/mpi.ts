// mpiWorld(): a Communicator over Open MPI's MPI_COMM_WORLD, for ranks started by `mpirun` (on one machine or
// several). One dedicated native thread owns MPI; sync calls block this thread until the collective is done, async
// calls settle their promise when it is. Results are those of reduceInRankOrder, bit for bit, whatever the
// communicator (native/mpi/collectives.cpp computes the same expression).
//
// Rules, beyond the Communicator interface:
// - One world per process: mpiWorld() returns the same communicator every time, on the main thread only (MPI
//   belongs to the process, not to a worker_thread). After close() MPI is finalized for good: Open MPI cannot be
//   initialized twice, so a later mpiWorld() throws.
// - Every rank makes the same calls in the same order (sync and async alike: they run in call order). A call
//   whose arguments are invalid throws its TypeError/RangeError on that rank and still takes its turn, so the other
//   ranks throw an Error naming it rather than wait forever; ranks that disagree on the operation, dtype, length,
//   op or root all throw the same Error and no data moves.
// - A buffer passed to an async call must not be touched until its promise settles.
// - Exit: a clean exit (code 0, nothing in flight) finalizes MPI; any other exit — an uncaught exception,
//   process.exit(1), a collective left in flight — calls MPI_Abort, which ends every rank of the job within seconds.
//   A rank killed by a signal is noticed by mpirun, which ends the job.
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { invalidRange, invalidType } from '../errors.js';
import { isFloatArray, type FloatArray } from '../tensor.js';
import type { Communicator, ReduceOp } from './communicator.js';
import { mpiBinding, type CollectiveKind, type MpiBinding } from './mpi-binding.js';

// MPI counts are C ints: allGather hands each rank's length to MPI as one.
const MAX_GATHER = 2 ** 31 - 1;

type Args = [data: FloatArray | null, out: Float64Array | null, extra: number];

function checkArray(value: unknown, name: string): FloatArray {
  if (!isFloatArray(value)) throw invalidType(name, 'a Float32Array or Float64Array', value);
  if ((value.buffer as ArrayBuffer & { detached?: boolean }).detached) {
    throw new TypeError(`Expected an attached buffer for ${name} but its ArrayBuffer is detached`);
  }
  return value;
}

function opCode(op: unknown): number {
  if (op === undefined) return 0;
  if (typeof op !== 'string') throw invalidType('op', "'sum' or 'mean'", op);
  if (op !== 'sum' && op !== 'mean') throw invalidRange('op', "'sum' or 'mean'", op);
  return op === 'mean' ? 1 : 0;
}

/**
 * The Communicator over Open MPI's MPI_COMM_WORLD that mpiWorld() returns: every collective runs on one dedicated
 * MPI thread, computes reduceInRankOrder's bits, and checks a header first so disagreeing ranks all throw.
 * close() is collective and final (MPI is finalized).
 */
export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  /** The MPI library in use, as MPI_Get_library_version names it (e.g. "Open MPI v4.1.4"). */
  readonly library: string;
  #closed = false;

  constructor(private readonly native: MpiBinding) {
    const info = native.init();
    this.rank = info.rank;
    this.size = info.size;
    this.library = info.library;
  }

  allGather(local: Float64Array): Float64Array {
    const args = this.#sync('allGather', () => this.#gatherArgs(local));
    return args[1]!;
  }

  async allGatherAsync(local: Float64Array): Promise<Float64Array> {
    const args = await this.#async('allGather', () => this.#gatherArgs(local));
    return args[1]!;
  }

  allReduce(buf: FloatArray, op?: ReduceOp): void {
    this.#sync('allReduce', () => [checkArray(buf, 'buf'), null, opCode(op)]);
  }

  async allReduceAsync(buf: FloatArray, op?: ReduceOp): Promise<void> {
    await this.#async('allReduce', () => [checkArray(buf, 'buf'), null, opCode(op)]);
  }

  broadcast(buf: FloatArray, root?: number): void {
    this.#sync('broadcast', () => [checkArray(buf, 'buf'), null, this.#root(root)]);
  }

  async broadcastAsync(buf: FloatArray, root?: number): Promise<void> {
    await this.#async('broadcast', () => [checkArray(buf, 'buf'), null, this.#root(root)]);
  }

  barrier(): void {
    this.#sync('barrier', () => [null, null, 0]);
  }

  async barrierAsync(): Promise<void> {
    await this.#async('barrier', () => [null, null, 0]);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Collective: every rank calls it. Finalizes MPI; later calls throw, and so does mpiWorld(). */
  close(): void {
    if (this.#closed) return;
    this.native.close();
    this.#closed = true;
  }

  #gatherArgs(local: unknown): Args {
    if (!(local instanceof Float64Array)) throw invalidType('local', 'a Float64Array', local);
    checkArray(local, 'local');
    if (local.length > MAX_GATHER) throw invalidRange('local.length', `at most ${MAX_GATHER}`, local.length);
    return [local, new Float64Array(this.size * local.length), 0];
  }

  #root(root: unknown): number {
    if (root === undefined) return 0;
    if (typeof root !== 'number') throw invalidType('root', `an integer rank 0 … ${this.size - 1}`, root);
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw invalidRange('root', `an integer rank 0 … ${this.size - 1}`, root);
    }
    return root;
  }

  #checkOpen(kind: string): void {
    if (this.#closed) throw new Error(`mpiWorld: ${kind}() on a closed communicator`);
  }

  #sync(kind: CollectiveKind, parse: () => Args): Args {
    this.#checkOpen(kind);
    let args: Args;
    try {
      args = parse();
    } catch (e) {
      try { this.native.collective(kind, null, null, 0, false); } catch { /* the others learn it; ours is `e` */ }
      throw e;
    }
    this.native.collective(kind, ...args, true);
    return args;
  }

  async #async(kind: CollectiveKind, parse: () => Args): Promise<Args> {
    this.#checkOpen(kind);
    let args: Args;
    try {
      args = parse();
    } catch (e) {
      await this.native.collectiveAsync(kind, null, null, 0, false).catch(() => undefined);
      throw e;
    }
    await this.native.collectiveAsync(kind, ...args, true);
    return args;
  }
}

let world: MpiCommunicator | undefined;

// Started by mpirun (Open MPI's launcher sets these), or able to start a world of one: Open MPI 4 then forks its
// orted daemon, found on PATH, and when it cannot, MPI_Init aborts the whole process. Refuse before that.
function checkLauncher(): void {
  if (['OMPI_COMM_WORLD_SIZE', 'PMIX_RANK', 'PMI_RANK'].some((k) => process.env[k] !== undefined)) return;
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  if (['orted', 'prte'].some((daemon) => dirs.some((d) => existsSync(join(d, daemon))))) return;
  throw new Error('mpiWorld(): this process was not started by mpirun, and Open MPI cannot start a world of one ' +
    "without its daemon (orted) on PATH. Start the program with mpirun (mpirun -np 2 node train.js), or put Open " +
    "MPI's bin directory on PATH (Debian/Ubuntu: apt-get install openmpi-bin).");
}

/**
 * The communicator over MPI_COMM_WORLD of the job this process was started in by `mpirun` (without mpirun: a
 * world of one). The same object on every call. Throws an Error naming what to install when Open MPI is absent.
 */
export function mpiWorld(): MpiCommunicator {
  if (world?.closed) {
    throw new Error('mpiWorld: MPI was finalized by close(); Open MPI cannot be initialized twice in one process');
  }
  if (world) return world;
  if (!isMainThread) {
    throw new Error('mpiWorld() must be called on the main thread: MPI belongs to the process, not to a worker_thread');
  }
  const native = mpiBinding();
  checkLauncher();
  world = new MpiCommunicator(native);
  // Registered once MPI runs: a clean exit finalizes, any other exit aborts the job (see the notes above).
  process.on('exit', (code) => native.exit(code));
  return world;
}
