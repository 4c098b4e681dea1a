// Data-parallel training of a SyncBatchNorm layer over worker_threads: each worker (rank) holds a different part
// of every batch (uneven, one rank empty), the layer normalizes with the statistics of the whole batch, and the
// parameter gradients are averaged with the same communicator before each SGD step. At the end the main thread
// checks the ranks against one BatchNorm2d trained on the whole batches.
// Run: npm run example:distributed (after npm install).
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { BatchNorm2d, joinThreadGroup, SyncBatchNorm, tensor, threadGroup, type Communicator, type FloatArray, type Tensor, type ThreadGroup } from 'normkit';

const C = 3, H = 4, W = 4, SHARDS = [5, 3, 0, 2], STEPS = 4, LR = 0.5;

/** Step `step`'s whole batch and its upstream gradient (deterministic, so every thread can make it). */
function batch(step: number): { x: Float32Array; dy: Float32Array } {
  const n = SHARDS.reduce((a, b) => a + b, 0) * C * H * W;
  const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + step) * 3 + (Math.floor(i / (H * W)) % C));
  const dy = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3 + step));
  return { x, dy };
}

/** Rank r's rows of a whole batch. */
function shard(data: Float32Array, rank: number): Tensor {
  const per = C * H * W, from = SHARDS.slice(0, rank).reduce((a, b) => a + b, 0);
  return tensor(data.slice(from * per, (from + SHARDS[rank]!) * per), [SHARDS[rank]!, C, H, W]);
}

/** One rank: forward, backward, average the gradients over the ranks (data parallelism), SGD step. */
async function rank(group: ThreadGroup, r: number): Promise<{ y: FloatArray; runningVar: FloatArray; weight: FloatArray }> {
  const comm: Communicator = joinThreadGroup(group, r);
  const bn = new SyncBatchNorm(C, { comm });
  let y: FloatArray = new Float32Array(0);
  for (let step = 0; step < STEPS; step++) {
    const { x, dy } = batch(step);
    bn.zeroGrad();
    y = (await bn.forwardAsync(shard(x, r))).data;
    await bn.backwardAsync(shard(dy, r));
    // weight.grad / bias.grad hold this rank's share: sum them over the ranks (the whole batch's gradient).
    for (const p of bn.parameters()) {
      const g = p.grad ?? new Float32Array(C);
      await comm.allReduceAsync(g, 'sum');
      p.data.forEach((v, i) => { p.data[i] = v - LR * g[i]!; });
    }
  }
  comm.close();
  return { y, runningVar: bn.runningVar!, weight: bn.weight!.data };
}

async function main(): Promise<void> {
  const group = threadGroup(SHARDS.length, { timeoutMs: 10_000 });
  const results = await Promise.all(SHARDS.map((_, r) => new Promise<Awaited<ReturnType<typeof rank>>>((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { group, rank: r } });
    w.once('message', resolve);
    w.once('error', reject);
  })));

  // The reference: one BatchNorm2d on the whole batches, the same SGD steps.
  const ref = new BatchNorm2d(C);
  let yRef: FloatArray = new Float32Array(0);
  for (let step = 0; step < STEPS; step++) {
    const { x, dy } = batch(step);
    ref.zeroGrad();
    yRef = ref.forward(tensor(x, [x.length / (C * H * W), C, H, W])).data;
    ref.backward(tensor(dy, [dy.length / (C * H * W), C, H, W]));
    for (const p of ref.parameters()) p.data.forEach((v, i) => { p.data[i] = v - LR * p.grad![i]!; });
  }
  const y = Float32Array.from(results.flatMap((r) => Array.from(r.y)));
  const maxDiff = y.reduce((m, v, i) => Math.max(m, Math.abs(v - yRef[i]!)), 0);
  const sameStats = results.every((r) => r.runningVar.every((v, i) => Object.is(v, results[0]!.runningVar[i])));
  console.log(`${SHARDS.length} ranks with batches of ${SHARDS.join(', ')} samples, ${STEPS} SGD steps`);
  console.log(`running_var on every rank: [${Array.from(results[0]!.runningVar, (v) => v.toFixed(5)).join(', ')}] (bit-identical: ${sameStats})`);
  console.log(`weight on rank 0:          [${Array.from(results[0]!.weight, (v) => v.toFixed(5)).join(', ')}]`);
  console.log(`weight of BatchNorm2d:     [${Array.from(ref.weight!.data, (v) => v.toFixed(5)).join(', ')}]`);
  console.log(`last output vs BatchNorm2d on the whole batch: max |difference| ${maxDiff.toExponential(2)}`);
  if (!sameStats || !(maxDiff < 1e-4)) process.exitCode = 1;
}

if (isMainThread) {
  main().catch((e: unknown) => { console.error(e); process.exit(1); });
} else {
  const { group, rank: r } = workerData as { group: ThreadGroup; rank: number };
  rank(group, r).then((res) => parentPort!.postMessage(res));
}
