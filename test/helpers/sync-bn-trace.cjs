// A fixed sequence of SyncBatchNorm steps on one rank, recorded as bits: run on every rank of a thread group
// (rank-jobs.cjs) and of an mpirun job (test/mpi/rank.cjs), so test/mpi-sync-batch-norm.test.ts can check that
// both communicators give the same bits. The shards are uneven and some are empty; inputs are functions of the
// global row index, so a rank's shard is its part of one global batch. Odd steps use the async forms.
'use strict';

const bits = (a) => (a ? Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64') : null);

const CASES = [
  // BatchNorm1d-shaped (N, C), float32; the second step leaves rank 2 empty, the first rank 1.
  { name: '(N, 4) float32', C: 4, spatial: [], dtype: 'float32', options: {}, shards: [[5, 0, 2], [1, 3, 0], [2, 2, 2]] },
  // BatchNorm2d-shaped (N, C, H, W), float64, momentum null (cumulative average), rank 0 empty once.
  { name: '(N, 3, 3, 2) float64', C: 3, spatial: [3, 2], dtype: 'float64', options: { momentum: null }, shards: [[0, 4, 1], [3, 3, 3]] },
  // Channels last (N, H, W, C), float32, without affine parameters.
  { name: '(N, 2, 2, 5) channelsLast float32', C: 5, spatial: [2, 2], dtype: 'float32', options: { channelsLast: true, affine: false }, shards: [[1, 1, 4]] },
];

function values(Ctor, n, offset, per, seed) {
  return Ctor.from({ length: n * per }, (_, i) => Math.sin((offset * per + i) * 0.37 + seed) * 2 + ((i % 7) - 3) * 0.25);
}

module.exports = async function syncBnTrace(nk, comm) {
  const out = [];
  for (const c of CASES) {
    const Ctor = c.dtype === 'float32' ? Float32Array : Float64Array;
    const bn = new nk.SyncBatchNorm(c.C, { ...c.options, dtype: c.dtype, comm });
    const per = c.C * c.spatial.reduce((a, b) => a * b, 1);
    const steps = [];
    for (let s = 0; s < c.shards.length; s++) {
      const sizes = c.shards[s], n = sizes[comm.rank];
      const offset = sizes.slice(0, comm.rank).reduce((a, b) => a + b, 0);
      const shape = c.options.channelsLast ? [n, ...c.spatial, c.C] : [n, c.C, ...c.spatial];
      const x = { data: values(Ctor, n, offset, per, s), shape };
      const dy = { data: values(Ctor, n, offset, per, 10 + s), shape };
      const async = s % 2 === 1;
      const y = async ? await bn.forwardAsync(x) : bn.forward(x);
      const dx = async ? await bn.backwardAsync(dy) : bn.backward(dy);
      steps.push({ y: bits(y.data), dx: bits(dx.data), weightGrad: bits(bn.weight && bn.weight.grad),
        biasGrad: bits(bn.bias && bn.bias.grad), runningMean: bits(bn.runningMean), runningVar: bits(bn.runningVar),
        numBatchesTracked: bn.numBatchesTracked });
    }
    // Eval mode uses the running statistics every rank now shares.
    bn.eval();
    const probe = { data: values(Ctor, 2, 0, per, 99), shape: c.options.channelsLast ? [2, ...c.spatial, c.C] : [2, c.C, ...c.spatial] };
    out.push({ name: c.name, steps, evalY: bits(bn.forward(probe).data) });
  }
  return out;
};
