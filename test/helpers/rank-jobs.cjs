// Jobs the distributed tests run on every rank (see rank-worker.cjs). Plain CommonJS: workers load dist/ directly.
// Each job returns plain data (typed arrays are copied back by postMessage); errors a rank is expected to throw are
// caught and returned as { name, message } so the test sees every rank's outcome.

const typed = (dtype, data) => (dtype === 'float32' ? Float32Array.from(data) : Float64Array.from(data));
const caught = (e) => ({ name: e.name, message: e.message });
const copy = (a) => (a ? a.slice() : null);

/** Builds a SyncBatchNorm for a fixture case (initial state loaded) and runs its steps on this rank's shard. */
async function replay(nk, comm, d) {
  nk.setNumThreads(d.threads);
  const out = [];
  for (const c of d.cases) {
    const bn = new nk.SyncBatchNorm(c.numFeatures, { ...c.options, dtype: c.dtype, comm });
    const sd = {};
    for (const [k, v] of Object.entries(c.initial)) sd[k] = { data: typed(c.dtype, v), shape: [v.length] };
    bn.loadStateDict(sd, { strict: false });
    const steps = [];
    for (const s of c.steps) {
      bn.train(s.mode === 'train');
      const x = { data: typed(c.dtype, s.x.data), shape: s.x.shape };
      const y = d.async ? await bn.forwardAsync(x) : bn.forward(x);
      let dx = null;
      if (s.dy) {
        const dy = { data: typed(c.dtype, s.dy.data), shape: s.dy.shape };
        dx = (d.async ? await bn.backwardAsync(dy) : bn.backward(dy)).data;
      }
      steps.push({
        y: y.data, dx, weightGrad: copy(bn.weight && bn.weight.grad), biasGrad: copy(bn.bias && bn.bias.grad),
        runningMean: copy(bn.runningMean), runningVar: copy(bn.runningVar), numBatchesTracked: bn.numBatchesTracked,
      });
    }
    out.push(steps);
  }
  return out;
}

/** One training forward (and backward when it succeeds) of SyncBatchNorm(C) on this rank's input; errors returned. */
async function forwardOnce(nk, comm, d) {
  const bn = new nk.SyncBatchNorm(d.C, { dtype: d.dtype, channelsLast: d.channelsLast, comm });
  const n = d.shape.reduce((a, b) => a * b, 1);
  const x = { data: typed(d.dtype, Array.from({ length: n }, (_, i) => Math.sin(i + d.shape[0]))), shape: d.shape };
  const state = () => ({ numBatchesTracked: bn.numBatchesTracked, runningMean: copy(bn.runningMean), runningVar: copy(bn.runningVar) });
  try {
    const y = d.async ? await bn.forwardAsync(x) : bn.forward(x);
    return { y: y.data, ...state() };
  } catch (e) {
    return { error: caught(e), ...state() };
  }
}

/** Every collective in its sync form, for the tests of the thread group on its own. */
function collectives(nk, comm, d) {
  const r = comm.rank;
  const sum32 = Float32Array.from(d.values[r]), mean64 = Float64Array.from(d.values[r]);
  comm.allReduce(sum32, 'sum');
  comm.allReduce(mean64, 'mean');
  const gathered = comm.allGather(Float64Array.from([r, r * 10, -r]));
  const bcast = new Float64Array(d.values[r].length);
  if (r === d.root) bcast.set(d.values[r]);
  comm.broadcast(bcast, d.root);
  // Barrier ordering: every rank writes its mark before the barrier; after it, every mark is visible.
  const marks = new Int32Array(d.marks);
  Atomics.store(marks, r, r + 1);
  comm.barrier();
  const seen = Array.from(marks);
  comm.close();
  let afterClose = null;
  try { comm.barrier(); } catch (e) { afterClose = caught(e); }
  return { sum32, mean64, gathered, bcast, seen, afterClose };
}

/** Calls one collective with this rank's arguments (mismatch tests); returns the error or the buffer. */
function mismatched(nk, comm, d) {
  const buf = typed(d.dtype[comm.rank], new Array(d.length[comm.rank]).fill(1));
  try {
    comm.allReduce(buf, 'sum');
    return { buf };
  } catch (e) {
    // The group stays in step after a mismatch every rank saw: the next collective works.
    const ok = Float64Array.of(comm.rank);
    comm.allReduce(ok, 'sum');
    return { error: caught(e), next: ok };
  }
}

/** Joins and returns without ever calling a collective (a rank that does not arrive). */
function idle() {
  return null;
}

module.exports = { replay, forwardOnce, collectives, mismatched, idle, syncBnTrace: require('./sync-bn-trace.cjs') };
