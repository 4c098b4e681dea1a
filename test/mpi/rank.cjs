// One MPI rank of a test scenario: run by test/mpi.test.ts as `mpirun -np 3 node test/mpi/rank.cjs <scenario> <dir>`.
// It loads the built package (dist/), as a user's program would, and writes what it saw to <dir>/rank<r>.json;
// the test decodes the bits and checks them against reduceInRankOrder over every rank's reported inputs.
// Plain CommonJS: mpirun starts plain node.
'use strict';
const { createHash } = require('node:crypto');
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const nk = require(join(__dirname, '..', '..', 'dist', 'cjs', 'index.js'));

const [scenario, dir] = process.argv.slice(2);
const bits = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
const sha = (a) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

// Inputs whose rank-order double sum differs from other orders: magnitudes from 1e-3 to 1e20 side by side.
function input(rank, n, Ctor, seed) {
  const a = new Ctor(n);
  let s = (seed * 7919 + rank * 104729 + n * 31) >>> 0;
  const next = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  for (let i = 0; i < n; i++) a[i] = (next() - 0.5) * [1e-3, 1, 1e4, 1e8][i % 4] * (i % 5 === 0 && rank === 1 ? 1e12 : 1);
  return a;
}
// The large cases' inputs, by a formula test/mpi.test.ts evaluates too (no 100 MB of base64 on the way back).
function large(rank, n, Ctor) {
  const a = new Ctor(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + rank) * (1 + (i % 1000)) + rank / 3;
  return a;
}

const errorOf = (e) => ({ type: e.constructor.name, message: e.message });
async function outcome(fn) {
  try { await fn(); return null; } catch (e) { return errorOf(e); }
}

async function collectives(w) {
  const out = { rank: w.rank, size: w.size, library: w.library, same: nk.mpiWorld() === w, cases: [], large: [], errors: {} };
  const record = (name, kind, inArr, outArr, extra) => out.cases.push({ name, kind, dtype: inArr.constructor.name,
    input: bits(inArr), output: bits(outArr), ...extra });
  let seed = 1;
  for (const mode of ['sync', 'async']) {
    for (const Ctor of [Float32Array, Float64Array]) {
      for (const op of ['sum', 'mean']) {
        for (const n of [0, 1, 2, 3, 7, 1001, 40001]) {  // 40001: above the all-gather cut, uneven chunks
          const buf = input(w.rank, n, Ctor, seed++), before = buf.slice();
          if (mode === 'sync') w.allReduce(buf, op); else await w.allReduceAsync(buf, op);
          record(`allReduce ${mode} ${Ctor.name} ${op} n=${n}`, 'allReduce', before, buf, { op });
        }
      }
      for (const root of [0, w.size - 1]) {
        for (const n of [0, 9]) {
          const buf = input(w.rank, n, Ctor, seed++), before = buf.slice();
          if (mode === 'sync') w.broadcast(buf, root); else await w.broadcastAsync(buf, root);
          record(`broadcast ${mode} ${Ctor.name} root=${root} n=${n}`, 'broadcast', before, buf, { root });
        }
      }
    }
    for (const n of [0, 1, 5]) {
      const local = input(w.rank, n, Float64Array, seed++);
      const all = mode === 'sync' ? w.allGather(local) : await w.allGatherAsync(local);
      record(`allGather ${mode} n=${n}`, 'allGather', local, all);
    }
    if (mode === 'sync') w.barrier(); else await w.barrierAsync();
  }
  // Sync and async calls run in call order: an async allReduce started first completes first.
  {
    const a = input(w.rank, 10, Float32Array, seed++), b = input(w.rank, 11, Float64Array, seed++);
    const a0 = a.slice(), b0 = b.slice();
    const pending = w.allReduceAsync(a, 'sum');
    w.allReduce(b, 'mean');
    await pending;
    record('interleaved async then sync (async part)', 'allReduce', a0, a, { op: 'sum' });
    record('interleaved async then sync (sync part)', 'allReduce', b0, b, { op: 'mean' });
  }
  // A view into a larger buffer: only its elements take part, the rest of the buffer is left alone.
  {
    const whole = input(w.rank, 20, Float64Array, seed++), view = whole.subarray(3, 10);
    const view0 = view.slice(), outside = bits(whole.subarray(10));
    w.allReduce(view, 'sum');
    record('a subarray view', 'allReduce', view0, view, { op: 'sum' });
    out.viewOutsideUntouched = bits(whole.subarray(10)) === outside;
  }
  // Several segments of the chunked allReduce, float32 and float64, sync and async.
  for (const [Ctor, n, op, mode] of [[Float32Array, (1 << 23) + 5, 'sum', 'sync'], [Float64Array, (1 << 22) + 7, 'mean', 'async']]) {
    const buf = large(w.rank, n, Ctor);
    if (mode === 'sync') w.allReduce(buf, op); else await w.allReduceAsync(buf, op);
    out.large.push({ dtype: Ctor.name, n, op, sha: sha(buf) });
  }

  // Ranks that disagree: every rank throws the same Error, and no data moves.
  const e = out.errors;
  const untouched = (buf, fn) => async () => { const before = bits(buf); try { await fn(); } finally { e.untouched = (e.untouched ?? true) && bits(buf) === before; } };
  const f5 = input(w.rank, w.rank === 1 ? 6 : 5, Float32Array, 99);
  e.length = await outcome(untouched(f5, () => w.allReduce(f5)));
  e.lengthAsync = await outcome(untouched(f5, () => w.allReduceAsync(f5)));
  const mixed = w.rank === 2 ? new Float64Array(5) : new Float32Array(5);
  e.dtype = await outcome(untouched(mixed, () => w.allReduce(mixed)));
  e.op = await outcome(() => w.allReduce(new Float32Array(4), w.rank === 0 ? 'mean' : 'sum'));
  e.root = await outcome(() => w.broadcast(new Float64Array(3), w.rank === 0 ? 1 : 0));
  e.gather = await outcome(() => w.allGather(new Float64Array(w.rank === 2 ? 2 : 3)));
  e.kind = await outcome(() => (w.rank === 1 ? w.barrier() : w.allReduce(new Float32Array(2))));
  // Invalid arguments on one rank: its TypeError/RangeError there, an Error naming it on the others.
  e.badType = await outcome(() => w.allReduce(w.rank === 2 ? new Int32Array(3) : new Float32Array(3)));
  e.badTypeAsync = await outcome(() => w.allReduceAsync(w.rank === 2 ? [1, 2, 3] : new Float32Array(3)));
  e.badOp = await outcome(() => w.allReduce(new Float32Array(3), w.rank === 0 ? 'max' : 'sum'));
  e.badRoot = await outcome(() => w.broadcast(new Float32Array(3), w.size));
  e.badGather = await outcome(() => w.allGather(new Float32Array(2)));
  // Still usable afterwards.
  const after = input(w.rank, 13, Float64Array, seed++), after0 = after.slice();
  w.allReduce(after, 'sum');
  record('after the errors', 'allReduce', after0, after, { op: 'sum' });

  w.close();
  w.close();  // a second close is a no-op
  e.afterClose = await outcome(() => w.barrier());
  e.afterCloseAsync = await outcome(() => w.allReduceAsync(new Float32Array(1)));
  e.worldAfterClose = await outcome(() => nk.mpiWorld());
  return out;
}

// Rank 1 dies in the way named; the others wait in a collective that can never complete.
async function die(w, how) {
  w.barrier();
  if (w.rank !== 1) {
    console.log(`rank ${w.rank} waiting`);
    if (how === 'exit0') await w.allReduceAsync(new Float32Array(10)); else w.barrier();
    console.log(`rank ${w.rank} was never released`);
    return;
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  if (how === 'throw') throw new Error('rank 1 fails with an uncaught exception');
  if (how === 'reject') { void Promise.reject(new Error('rank 1 fails with an unhandled rejection')); return; }
  if (how === 'exit') process.exit(3);
  if (how === 'kill') process.kill(process.pid, 'SIGKILL');
  if (how === 'exit0') process.exit(0);
}

(async () => {
  const w = nk.mpiWorld();
  if (scenario === 'collectives') writeFileSync(join(dir, `rank${w.rank}.json`), JSON.stringify(await collectives(w)));
  else if (scenario === 'sync-batch-norm') {  // the trace test/mpi-sync-batch-norm.test.ts compares with a thread group's
    try {
      writeFileSync(join(dir, `rank${w.rank}.json`), JSON.stringify(await require('../helpers/sync-bn-trace.cjs')(nk, w)));
    } catch (e) {
      require('node:fs').writeSync(2, `rank ${w.rank}: ${e.stack}\n`);  // before the exit hook's MPI_Abort
      throw e;
    }
  }
  else if (scenario.startsWith('die-')) await die(w, scenario.slice(4));
  else if (scenario === 'exit-clean') {  // no close(): the exit finalizes; rank 0 leaves last
    await w.allReduceAsync(new Float32Array(5));
    if (w.rank === 0) await new Promise((resolve) => setTimeout(resolve, 500));
    console.log(`rank ${w.rank} done`);
  }
  else throw new Error(`unknown scenario ${scenario}`);
})();
