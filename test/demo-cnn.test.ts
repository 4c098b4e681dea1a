// The Fashion-MNIST demo's --model cnn (examples/fashion-mnist/cnn.ts, conv.ts): its convolution and pooling
// against float64 definitions, backpropagation through BatchNorm2d/BatchNorm1d by finite differences, a short
// training run on a few hundred shipped images, and the checkpoint against PyTorch's state_dict layout
// (test/fixtures/fashion-mnist-state-dicts.json, written by load_in_pytorch.py --describe; when /usr/bin/python3
// has torch, also against torch.nn's logits).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { centralDifference } from './helpers/compare.js';
import { expectSameLogits, hasTorch, torchLogits } from './helpers/torch-logits.js';
import { loadSafetensors, saveSafetensors, type StateDict } from '../lib/index.js';
import { LeNet } from '../examples/fashion-mnist/cnn.js';
import { AvgPool2x2, Conv2d, col2imAdd, im2col, matmulBt } from '../examples/fashion-mnist/conv.js';
import { batches, gatherBatch, loadSplit, shuffledOrder } from '../examples/fashion-mnist/data.js';
import { softmaxCrossEntropy } from '../examples/fashion-mnist/nn.js';
import { shippedDataDir } from '../examples/fashion-mnist/paths.js';
import { Rng } from '../examples/fashion-mnist/rng.js';
import { trainStep } from '../examples/fashion-mnist/train.js';

// As in demo.test.ts: the demo's 'normkit' is lib/'s sources, the module instance this file uses.
vi.mock('normkit', () => import('../lib/index.js'));

const rng = new Rng(17);
const random = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

describe('convolution and pooling against their float64 definitions', () => {
  it('matmulBt computes a . b^T (odd row counts, widths not multiples of 4) and accumulates on request', () => {
    for (const [n, k, m] of [[1, 3, 1], [2, 5, 4], [5, 7, 6], [6, 25, 13], [3, 1, 9]] as const) {
      const a = random(n * k), b = random(m * k);
      const out = new Float32Array(n * m).fill(7);
      matmulBt(a, b, out, n, k, m);
      const acc = new Float32Array(n * m).fill(1);
      matmulBt(a, b, acc, n, k, m, true);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          const s = dot(a.subarray(i * k, (i + 1) * k), b.subarray(j * k, (j + 1) * k));
          expect(out[i * m + j]).toBeCloseTo(s, 4);
          expect(acc[i * m + j]).toBeCloseTo(1 + s, 4);
        }
      }
    }
  });

  it('Conv2d.forward is PyTorch\'s convolution (cross-correlation, stride 1, no padding) with bias', () => {
    const [n, c, h, w, o, k] = [3, 2, 7, 6, 5, 3];
    const conv = new Conv2d(c, o, k, new Rng(1));
    conv.bias.data.set(random(o));
    const x = random(n * c * h * w);
    const y = conv.forward({ data: x, shape: [n, c, h, w] });
    const [oh, ow] = [h - k + 1, w - k + 1];
    expect(y.shape).toEqual([n, o, oh, ow]);
    const W = conv.weight.data;  // (O, C, k, k)
    for (let s = 0; s < n; s++) for (let f = 0; f < o; f++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) {
      let sum = conv.bias.data[f]!;
      for (let ch = 0; ch < c; ch++) for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) {
        sum += W[((f * c + ch) * k + a) * k + b]! * x[((s * c + ch) * h + i + a) * w + j + b]!;
      }
      expect(y.data[((s * o + f) * oh + i) * ow + j]).toBeCloseTo(sum, 4);
    }
    expect(() => conv.forward({ data: x, shape: [n, 3, h, w] })).toThrow(/Conv2d\(2, 5, 3\): expected \[n, 2, h >= 3, w >= 3\], got \[3, 3, 7, 6\]/);
  });

  it('col2imAdd is the adjoint of im2col in both layouts: <im2col(x), g> = <x, col2im(g)>', () => {
    const [c, h, w, k] = [3, 6, 5, 2];
    const rows = c * k * k, p = (h - k + 1) * (w - k + 1);
    const x = random(c * h * w), g = random(rows * p);
    for (const [rowStride, posStride] of [[p, 1], [1, rows]] as const) {
      const cols = new Float32Array(rows * p);
      im2col(x, 0, c, h, w, k, cols, rowStride, posStride);
      const back = new Float32Array(c * h * w);
      col2imAdd(g, rowStride, posStride, c, h, w, k, back, 0);
      expect(dot(cols, g)).toBeCloseTo(dot(x, back), 3);
    }
  });

  it('AvgPool2x2 averages 2 x 2 blocks (dropping an odd last row and column) and spreads a quarter back', () => {
    const pool = new AvgPool2x2();
    const x = Float32Array.from({ length: 2 * 5 * 4 }, (_, i) => i);  // 2 planes of 5 x 4
    const y = pool.forward({ data: x, shape: [1, 2, 5, 4] });
    expect(y.shape).toEqual([1, 2, 2, 2]);
    expect([...y.data]).toEqual([2.5, 4.5, 10.5, 12.5, 22.5, 24.5, 30.5, 32.5]);
    const dx = pool.backward({ data: Float32Array.of(4, 8, 12, 16, 0, 0, 0, 4), shape: [1, 2, 2, 2] });
    expect([...dx.data.subarray(0, 20)]).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4, 0, 0, 0, 0]);
    expect(dx.data[20 + 8 + 2]).toBe(1);  // second plane, third row, third column: the last block's quarter
  });
});

describe('LeNet backpropagation', () => {
  it('matches finite differences through conv, BatchNorm2d, sigmoid, pooling, dense and BatchNorm1d layers', () => {
    // 16 x 16 images keep it small: 12 x 12 -> 6 x 6 -> 2 x 2 -> 1 x 1 feature maps.
    const model = new LeNet({ side: 16, classes: 10, batchNorm: true, seed: 5 });
    const n = 6, x = random(n * 256), labels = Uint8Array.from({ length: n }, (_, i) => (3 * i) % 10);
    // Non-default batch norm affine parameters, so that their gradients are not checked at a special point.
    for (const bn of model.norms) bn.weight!.data.forEach((_, i, a) => { a[i] = 0.5 + rng.next(); });
    const loss = () => softmaxCrossEntropy(model.logits(x, n), labels, n, 10).loss;
    model.zeroGrad();
    model.backpropagate(softmaxCrossEntropy(model.logits(x, n), labels, n, 10).dLogits);
    const numeric = (data: Float32Array | Float64Array, i: number, h: number) => centralDifference(loss, data, i, h);
    const params = model.parameters();
    expect(params).toHaveLength(2 * 5 + 2 * 4);  // 5 conv/dense layers and 4 batch norm layers, weight and bias each
    let checked = 0, largest = 0;
    for (const p of params) {
      // Up to 8 entries of each parameter: all of them would take thousands of forward passes.
      for (let t = 0; t < Math.min(8, p.data.length); t++) {
        const i = rng.int(p.data.length);
        const g = p.grad![i]!;
        const error = Math.min(...[1e-2, 3e-3].map((h) => Math.abs(numeric(p.data, i, h) - g)));
        expect(error).toBeLessThan(2e-4 + 0.02 * Math.abs(g));
        largest = Math.max(largest, Math.abs(g));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect(largest).toBeGreaterThan(0.01);  // not all trivially zero
  });
});

const DATA = shippedDataDir();
const FIXTURE = JSON.parse(readFileSync(join(__dirname, 'fixtures/fashion-mnist-state-dicts.json'), 'utf8')) as
  Record<string, Array<[string, number[], string]>>;

/** [key, shape, dtype] in the state dict's order, as load_in_pytorch.py --describe writes PyTorch's. */
function layout(sd: StateDict): Array<[string, number[], string]> {
  return Object.entries(sd).map(([k, t]) => [k, [...t.shape], t.data instanceof BigInt64Array ? 'int64' : 'float32']);
}

describe('LeNet with batch norm on a few hundred shipped images, and its checkpoint', () => {
  const train = loadSplit(join(DATA, 'train-images-idx3-ubyte.gz'), join(DATA, 'train-labels-idx1-ubyte.gz'));
  const test = loadSplit(join(DATA, 't10k-images-idx3-ubyte.gz'), join(DATA, 't10k-labels-idx1-ubyte.gz'));
  const few = { ...train, count: 400, images: train.images.subarray(0, 400 * 784), labels: train.labels.subarray(0, 400) };
  const model = new LeNet({ side: 28, classes: 10, batchNorm: true, seed: 42 });
  const losses: number[] = [];
  const epochs = 3, batchSize = 50;
  const shuffle = new Rng(42);
  let bn1WeightGrad = 0;
  for (let e = 0; e < epochs; e++) {
    for (const batch of batches(few, shuffledOrder(few.count, shuffle), batchSize, batchSize)) {
      losses.push(trainStep(model, batch, 1.0).loss);
      bn1WeightGrad = Math.max(bn1WeightGrad, ...[...model.norms[0]!.weight!.grad!].map(Math.abs));
    }
  }
  const probe = gatherBatch(test, Uint32Array.from({ length: 64 }, (_, i) => i));
  const logits = model.eval().logits(probe.x, probe.n);

  it('lowers the loss, with gradients reaching BatchNorm2d\'s parameters and running statistics updated', () => {
    expect(losses).toHaveLength(epochs * (400 / batchSize));
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(losses[0]).toBeGreaterThan(1.8);  // about ln 10 at the start
    expect(mean(losses.slice(-4))).toBeLessThan(0.75 * mean(losses.slice(0, 4)));
    expect(bn1WeightGrad).toBeGreaterThan(1e-4);
    expect(model.norms.map((bn) => bn.numBatchesTracked)).toEqual([24, 24, 24, 24]);
    expect(model.norms.map((bn) => bn.constructor.name)).toEqual(['BatchNorm2d', 'BatchNorm2d', 'BatchNorm1d', 'BatchNorm1d']);
    // The first BatchNorm2d's running mean moved away from its initial zeros.
    expect(Math.max(...[...model.norms[0]!.runningMean!].map(Math.abs))).toBeGreaterThan(1e-3);
  });

  it('has PyTorch\'s state_dict keys, shapes, dtypes and order, with and without batch norm', () => {
    expect(layout(model.stateDict())).toEqual(FIXTURE['cnn-bn']);
    expect(layout(new LeNet({ side: 28, classes: 10, batchNorm: false, seed: 1 }).stateDict())).toEqual(FIXTURE['cnn']);
  });

  it('round-trips through safetensors into a fresh model with bit-identical eval outputs, strictly', () => {
    const sd = loadSafetensors(saveSafetensors(model.stateDict(), { format: 'pt' }));
    const fresh = new LeNet({ side: 28, classes: 10, batchNorm: true, seed: 7 });
    expect(fresh.eval().logits(probe.x, probe.n)).not.toEqual(logits);
    fresh.loadStateDict(sd);
    const again = fresh.logits(probe.x, probe.n);
    expect(again.every((v, i) => Object.is(v, logits[i]))).toBe(true);
    const { ['bn2.running_var']: _dropped, ...missing } = sd;
    expect(() => new LeNet(model.options).loadStateDict(missing)).toThrow(/Missing key\(s\) in state_dict: "bn2.running_var"/);
    const extra: StateDict = { ...sd, 'conv1.extra': { data: new Float32Array(1), shape: [1] } };
    expect(() => new LeNet(model.options).loadStateDict(extra)).toThrow(/Unexpected key\(s\) in state_dict: "conv1.extra"/);
    const wrong: StateDict = { ...sd, 'conv2.weight': { data: new Float32Array(2400), shape: [16, 150] } };
    expect(() => new LeNet(model.options).loadStateDict(wrong)).toThrow(/size mismatch for conv2.weight: copying a tensor of shape \[16, 150\]/);
    expect(() => new LeNet({ ...model.options, batchNorm: false }).loadStateDict(sd)).toThrow(/Unexpected key\(s\) in state_dict: "bn1\./);
  });

  it.skipIf(!hasTorch)('loads into load_in_pytorch.py\'s LeNet strictly, with the same eval-mode logits', () => {
    expectSameLogits(torchLogits(model.stateDict(), 'cnn-bn.safetensors', probe.x), logits);
  });
});
