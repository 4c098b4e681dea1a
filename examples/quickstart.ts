// A few training steps of a BatchNorm2d layer, then eval and a save/load round trip through safetensors.
// Run: npm run demo (after npm install). This is the README's usage example, runnable.
import { BatchNorm2d, buildInfo, loadSafetensors, saveSafetensors, tensor } from 'normkit';

const info = buildInfo();
console.log(`normkit ${info.version}: ${info.simd} kernels, ${info.threads} thread(s), OpenMP ${info.openmp ? 'on' : 'off'}`);

// A batch of 16 "images" with 3 channels of 8x8, each channel with its own offset and spread.
const N = 16, C = 3, H = 8, W = 8;
let seed = 1;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
const batch = () => tensor(Float32Array.from({ length: N * C * H * W }, (_, i) => {
  const c = Math.floor(i / (H * W)) % C;
  return 10 * c + (c + 1) * random();
}), [N, C, H, W]);

const bn = new BatchNorm2d(C);
const lr = 0.1;
for (let step = 1; step <= 5; step++) {
  const x = batch();
  const y = bn.forward(x);                                      // training mode: batch statistics
  // A toy loss: 0.5 * sum((y - 1)^2) / numel, so dy = (y - 1) / numel pulls every output towards 1.
  const dy = tensor(y.data.map((v) => (v - 1) / y.data.length), y.shape);
  bn.backward(dy);                                              // adds into weight.grad / bias.grad
  for (const p of bn.parameters()) p.data.forEach((v, i) => { p.data[i] = v - lr * p.grad![i]!; });
  bn.zeroGrad();
  let loss = 0;
  for (const v of y.data) loss += (0.5 * (v - 1) ** 2) / y.data.length;
  console.log(`step ${step}: loss ${loss.toFixed(4)}  running_mean [${[...bn.runningMean!].map((v) => v.toFixed(3)).join(', ')}]`);
}

bn.eval();                                                      // running statistics from now on
const test = bn.forward(batch());
let sum = 0;
for (const v of test.data) sum += v;
console.log(`eval output mean ${(sum / test.data.length).toFixed(4)}`);

const bytes = saveSafetensors(bn.stateDict('bn1.'), { format: 'pt' });
const restored = new BatchNorm2d(C).eval();
restored.loadStateDict(loadSafetensors(bytes), { prefix: 'bn1.' });
console.log(`saved ${bytes.length} bytes of safetensors; reloaded num_batches_tracked = ${restored.numBatchesTracked}`);
