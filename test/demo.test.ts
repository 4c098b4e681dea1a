// The Fashion-MNIST demo (examples/fashion-mnist/): its IDX reader on the shipped subset, the data fallback, its
// matrix products and backpropagation, a few training steps with BatchNorm1d, and the checkpoint round trip
// (normkit's safetensors, fresh layers, bit-identical eval outputs; PyTorch loads it when /usr/bin/python3 has torch).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { centralDifference } from './helpers/compare.js';
import { expectSameLogits, hasTorch, torchLogits } from './helpers/torch-logits.js';
import { BatchNorm1d, loadSafetensors, saveSafetensors, type StateDict } from '../lib/index.js';
import { DEFAULTS, UsageError, parseCli } from '../examples/fashion-mnist/cli.js';
import { runDemo } from '../examples/fashion-mnist/demo.js';
import {
  IMAGE_MAGIC, LABEL_MAGIC, batchCount, batches, findDataFiles, gatherBatch, loadSplit, locateData, shuffledOrder,
} from '../examples/fashion-mnist/data.js';
import { encodeIdx, parseIdx, readIdxFile } from '../examples/fashion-mnist/idx.js';
import { Mlp } from '../examples/fashion-mnist/mlp.js';
import { Dense, f32, matmul, matmulTransposedAAdd, softmaxCrossEntropy } from '../examples/fashion-mnist/nn.js';
import { shippedDataDir } from '../examples/fashion-mnist/paths.js';
import { renderPlot } from '../examples/fashion-mnist/plot.js';
import { Rng } from '../examples/fashion-mnist/rng.js';
import { evaluate, lrAt, trainStep, type History } from '../examples/fashion-mnist/train.js';

// The demo imports the library as 'normkit' (the package's self-reference, the built dist/ when it runs). Here it
// gets lib/'s sources instead, the same module instance this file uses: vitest would otherwise run dist/'s
// CommonJS through its ESM transform, and two copies of the library would be loaded.
vi.mock('normkit', () => import('../lib/index.js'));

const DATA = shippedDataDir();
const file = (name: string) => join(DATA, name);

describe('the shipped Fashion-MNIST subset, through the IDX reader', () => {
  const trainImages = readIdxFile(file('train-images-idx3-ubyte.gz'));
  const trainLabels = readIdxFile(file('train-labels-idx1-ubyte.gz'));
  const testImages = readIdxFile(file('t10k-images-idx3-ubyte.gz'));
  const testLabels = readIdxFile(file('t10k-labels-idx1-ubyte.gz'));

  it('has the IDX magic numbers and the counts of the first 12000 training images and all 10000 test images', () => {
    expect(trainImages.magic).toBe(0x00000803);
    expect(testImages.magic).toBe(0x00000803);
    expect(trainLabels.magic).toBe(0x00000801);
    expect(testLabels.magic).toBe(0x00000801);
    expect(trainImages.dims).toEqual([12000, 28, 28]);
    expect(trainLabels.dims).toEqual([12000]);
    expect(testImages.dims).toEqual([10000, 28, 28]);
    expect(testLabels.dims).toEqual([10000]);
    expect(trainImages.data.length).toBe(12000 * 784);
  });

  it('holds the real data: Fashion-MNIST\'s first labels and its near-uniform class distribution', () => {
    // The first labels of the official files (train: ankle boot, T-shirt, T-shirt, dress, ...).
    expect([...trainLabels.data.subarray(0, 10)]).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect([...testLabels.data.subarray(0, 10)]).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    const histogram = (labels: Uint8Array) => Array.from({ length: 10 }, (_, c) => labels.filter((l) => l === c).length);
    // The whole test set: Zalando's README gives 1000 images per class. The training prefix's counts were taken
    // from the Debian package's files when the subset was cut.
    expect(histogram(testLabels.data)).toEqual(Array(10).fill(1000));
    expect(histogram(trainLabels.data)).toEqual([1122, 1220, 1201, 1212, 1181, 1204, 1244, 1192, 1195, 1229]);
    // Fashion-MNIST is balanced (6000 per class in the training set): no class of a prefix strays far from a tenth.
    for (const count of histogram(trainLabels.data)) expect(Math.abs(count - 1200)).toBeLessThan(100);
  });

  it('holds images, not noise: 8-bit pixels with a black background (about half of all pixels are 0)', () => {
    let zeros = 0, max = 0;
    for (const p of trainImages.data) { if (p === 0) zeros++; if (p > max) max = p; }
    expect(max).toBe(255);
    expect(zeros / trainImages.data.length).toBeGreaterThan(0.4);
    expect(zeros / trainImages.data.length).toBeLessThan(0.6);
    // Every image has some ink.
    for (let i = 0; i < 12000; i++) expect(trainImages.data.subarray(i * 784, (i + 1) * 784).some((p) => p > 0)).toBe(true);
  });

  it('round-trips through encodeIdx and rejects malformed bytes with a clear error', () => {
    const again = parseIdx(encodeIdx(testLabels.dims, testLabels.data));
    expect(again.magic).toBe(LABEL_MAGIC);
    expect(again.data).toEqual(testLabels.data);
    const bytes = encodeIdx([2, 2, 2], Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    expect(parseIdx(bytes).magic).toBe(IMAGE_MAGIC);
    expect(() => parseIdx(bytes.subarray(0, bytes.length - 1), 'cut')).toThrow(/cut: header says 2x2x2 = 8 elements but the file holds 7/);
    const float = bytes.slice();
    float[2] = 0x0d;
    expect(() => parseIdx(float, 'floats')).toThrow(/floats: not an IDX file of unsigned bytes \(magic 0x00000d03\)/);
    expect(() => parseIdx(Uint8Array.of(0, 0), 'tiny')).toThrow(/too short/);
  });
});

describe('choosing the data', () => {
  it('falls back to the shipped subset when the Debian package is missing, and says so', () => {
    const source = locateData(undefined, '/nonexistent/fashion-mnist');
    expect(source.kind).toBe('subset');
    expect(source.dir).toBe(DATA);
    expect(source.files.trainImages).toBe(file('train-images-idx3-ubyte.gz'));
  });

  it('uses an explicit --data folder, and refuses one that lacks the files instead of silently using another', () => {
    expect(locateData(DATA, '/nonexistent').kind).toBe('argument');
    expect(() => locateData('/nonexistent/dir')).toThrow(/--data \/nonexistent\/dir: missing train-images-idx3-ubyte\[\.gz\]/);
    expect(findDataFiles(tmpdir())).toHaveProperty('missing');
  });

  it('batches a seeded shuffle: every image once per epoch, the same order for the same seed', () => {
    const a = shuffledOrder(1000, new Rng(5)), b = shuffledOrder(1000, new Rng(5));
    expect(a).toEqual(b);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(a).not.toEqual(shuffledOrder(1000, new Rng(6)));
    const ds = loadSplit(file('t10k-images-idx3-ubyte.gz'), file('t10k-labels-idx1-ubyte.gz'));
    const sizes = [...batches(ds, a, 256, 256)].map((batch) => batch.n);
    expect(sizes).toEqual([256, 256, 256]);  // the short last batch (232) is dropped when training
    expect(batchCount(1000, 256, 256)).toBe(3);
    expect(batchCount(1000, 256, 2)).toBe(4);
    const batch = gatherBatch(ds, [0]);
    expect(batch.labels[0]).toBe(9);
    expect(Math.max(...batch.x)).toBe(1);
    expect(Math.min(...batch.x)).toBe(0);
  });
});

describe('the hand-written parts of the network', () => {
  const rng = new Rng(3);
  const random = (n: number, zeros = 0) => Float32Array.from({ length: n }, () => (rng.next() < zeros ? 0 : rng.normal()));

  it('matmul and matmulTransposedAAdd equal a float64 reference (row counts that are not multiples of 4, zero rows)', () => {
    for (const [n, k, m] of [[7, 5, 3], [8, 13, 9], [1, 4, 6], [13, 30, 17]] as const) {
      const a = random(n * k, 0.4), b = random(k * m);
      const out = new Float32Array(n * m).fill(99);  // matmul overwrites
      matmul(a, b, out, n, k, m);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * m + j]!;
        expect(out[i * m + j]).toBeCloseTo(s, 4);
      }
      const dy = random(n * m), acc = new Float32Array(k * m).fill(1);  // the transposed product adds
      matmulTransposedAAdd(a, dy, acc, n, k, m);
      for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) {
        let s = 1;
        for (let i = 0; i < n; i++) s += a[i * k + p]! * dy[i * m + j]!;
        expect(acc[p * m + j]).toBeCloseTo(s, 4);
      }
    }
  });

  it('backpropagates the gradient of the loss (finite differences through dense, BatchNorm1d and ReLU layers)', () => {
    const model = new Mlp({ inputs: 6, hidden: [5, 4], classes: 10, batchNorm: true, seed: 11 });
    const n = 8, x = random(n * 6), labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const loss = () => softmaxCrossEntropy(model.logits(x, n), labels, n, 10).loss;
    model.zeroGrad();
    model.backpropagate(softmaxCrossEntropy(model.logits(x, n), labels, n, 10).dLogits);
    // Central differences at two step sizes: float32 rounding limits how small h can be, and a step can cross a
    // ReLU kink (where the difference quotient is wrong, not the gradient), which one of the two then avoids.
    const numeric = (data: Float32Array | Float64Array, i: number, h: number) => centralDifference(loss, data, i, h);
    let count = 0, largest = 0;
    for (const p of model.parameters()) {
      for (let i = 0; i < p.data.length; i++) {
        const g = p.grad![i]!;
        const error = Math.min(...[1e-2, 1e-3].map((h) => Math.abs(numeric(p.data, i, h) - g)));
        expect(error).toBeLessThan(5e-4 + 0.01 * Math.abs(g));
        largest = Math.max(largest, Math.abs(g));
        count++;
      }
    }
    expect(count).toBe(6 * 5 + 5 + 5 * 4 + 4 + 4 * 10 + 10 + 2 * (5 + 4));  // dense weights and biases, BN weights and biases
    expect(largest).toBeGreaterThan(0.05);  // not all trivially zero
  });

  it('initializes dense layers He-style: std sqrt(2 / fan_in), zero bias', () => {
    const d = new Dense(784, 128, new Rng(1));
    const w = f32(d.weight);
    const mean = w.reduce((a, b) => a + b, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(std / Math.sqrt(2 / 784)).toBeCloseTo(1, 1);
    expect(d.bias.data.every((b) => b === 0)).toBe(true);
  });
});

describe('training with BatchNorm1d on the shipped subset, and the checkpoint', () => {
  const data = locateData(undefined, '/nonexistent');
  const train = loadSplit(data.files.trainImages, data.files.trainLabels);
  const test = loadSplit(data.files.testImages, data.files.testLabels);
  const options = { inputs: 784, hidden: [128, 64], classes: 10, batchNorm: true, seed: 42 };  // the demo's default sizes
  const model = new Mlp(options);
  const STEPS = 30;
  const losses: number[] = [];
  for (const batch of batches(train, shuffledOrder(train.count, new Rng(42)), 64, 64)) {
    if (losses.length === STEPS) break;
    losses.push(trainStep(model, batch, 0.5).loss);
  }
  const testBatch = gatherBatch(test, Uint32Array.from({ length: 200 }, (_, i) => i));
  const eval1 = model.eval().logits(testBatch.x, testBatch.n);

  it('lowers the loss within a few steps and beats chance on the test set', () => {
    expect(losses).toHaveLength(STEPS);
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(losses[0]).toBeGreaterThan(1.5);  // about ln 10 at the start
    expect(mean(losses.slice(-5))).toBeLessThan(0.7 * mean(losses.slice(0, 5)));
    expect(evaluate(model, test)).toBeGreaterThan(0.5);
    // Training mode updated the running statistics once per step.
    expect(model.norms.map((bn) => bn.numBatchesTracked)).toEqual([STEPS, STEPS]);
  });

  it('saves the model with saveSafetensors under PyTorch keys, in module order; reloaded BatchNorm1d state gives identical eval outputs', () => {
    const bytes = saveSafetensors(model.stateDict(), { format: 'pt' });
    const sd = loadSafetensors(bytes);
    const bn = (i: number) => ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `bn${i}.${k}`);
    expect(Object.keys(model.stateDict())).toEqual([
      'fc1.weight', 'fc1.bias', ...bn(1), 'fc2.weight', 'fc2.bias', ...bn(2), 'fc3.weight', 'fc3.bias',
    ]);
    expect(sd['bn1.weight']!.shape).toEqual([128]);
    expect(sd['bn2.num_batches_tracked']!.data).toEqual(BigInt64Array.of(BigInt(STEPS)));

    // A fresh BatchNorm1d layer, in eval mode, against the trained one on the same (hidden) inputs.
    const h = new Float32Array(64 * 128).map((_, i) => Math.sin(i) * 3 + 1);
    const fresh = new BatchNorm1d(128, { activation: 'relu' }).eval();  // as the MLP's: BatchNorm1d + ReLU fused
    const before = fresh.forward({ data: h, shape: [64, 128] }).data;
    const bn1 = Object.fromEntries(Object.entries(sd).filter(([k]) => k.startsWith('bn1.'))) as StateDict;
    fresh.loadStateDict(bn1, { prefix: 'bn1.' });  // strict: bn1.*'s own keys must all be there
    const original = model.norms[0]!.forward({ data: h, shape: [64, 128] }).data;
    expect(before).not.toEqual(original);  // the comparison below is not trivially true
    expect(fresh.forward({ data: h, shape: [64, 128] }).data).toEqual(original);

    // A fresh model with the trained dense layers only (non-strict), then the batch norm entries too.
    const again = new Mlp(options);
    const denseOnly = Object.fromEntries(Object.entries(sd).filter(([k]) => k.startsWith('fc'))) as StateDict;
    again.loadStateDict(denseOnly, { strict: false });
    const untrainedBN = again.eval().logits(testBatch.x, testBatch.n);
    expect(untrainedBN).not.toEqual(eval1);
    again.loadStateDict(sd);
    const eval2 = again.eval().logits(testBatch.x, testBatch.n);
    expect(eval2.every((v, i) => Object.is(v, eval1[i]))).toBe(true);
    // Eval mode does not depend on the batch: a single image gives the same logits as inside the batch.
    expect(again.logits(testBatch.x.subarray(0, 784), 1)).toEqual(eval1.subarray(0, 10));
  });

  it('saves and reloads the whole model (fc*, bn*) with identical eval outputs, strictly', () => {
    const sd = loadSafetensors(saveSafetensors(model.stateDict(), { format: 'pt' }));
    expect(sd['fc1.weight']!.shape).toEqual([128, 784]);  // nn.Linear's (out, in)
    expect(sd['fc3.weight']!.shape).toEqual([10, 64]);
    const again = new Mlp(options);
    again.loadStateDict(sd);
    expect(again.eval().logits(testBatch.x, testBatch.n)).toEqual(eval1);
    const extra: StateDict = { ...sd, 'fc9.weight': { data: new Float32Array(1), shape: [1] } };
    expect(() => new Mlp(options).loadStateDict(extra)).toThrow(/Unexpected key\(s\) in state_dict: "fc9.weight"/);
    const { ['bn2.running_var']: _dropped, ...missing } = sd;
    expect(() => new Mlp(options).loadStateDict(missing)).toThrow(/Missing key\(s\) in state_dict: "bn2.running_var"/);
  });

  it.skipIf(!hasTorch)('loads into the equivalent torch.nn module strictly, with the same eval-mode logits', () => {
    expectSameLogits(torchLogits(model.stateDict(), 'mlp-bn.safetensors', testBatch.x), eval1);
  });
});

describe('command line and plot', () => {
  it('parses the options, and rejects unknown options and bad values with a UsageError', () => {
    const { cnnEpochs: _cnn, ...mlpDefaults } = DEFAULTS;
    expect(parseCli([])).toEqual({ help: false, options: { ...mlpDefaults, hidden: [...DEFAULTS.hidden], threads: undefined, data: undefined, json: undefined, out: undefined, workers: 1, mpi: false } });
    const c = parseCli(['--epochs', '2', '--lr=0.25', '--decay-epochs', '0', '--batch-size', '64', '--threads', '1', '--data', 'd', '--json', 'r.json', '--out', 'o', '--hidden', '32,16']);
    expect(c).toEqual({ help: false, options: { model: 'mlp', epochs: 2, lr: 0.25, decayEpochs: 0, batchSize: 64, hidden: [32, 16], seed: DEFAULTS.seed, threads: 1, data: 'd', json: 'r.json', out: 'o', workers: 1, mpi: false } });
    expect(parseCli(['--workers', '3'])).toMatchObject({ options: { workers: 3, mpi: false } });
    expect(parseCli(['--mpi'])).toMatchObject({ options: { workers: 1, mpi: true } });
    expect(() => parseCli(['--workers', '2', '--mpi'])).toThrow(/--workers and --mpi are two ways to run ranks: give one/);
    expect(() => parseCli(['--workers', '0'])).toThrow(/--workers expects an integer >= 1, got '0'/);
    // --model cnn has its own default epochs (d2l's 10) and no --hidden.
    expect(parseCli(['--model', 'cnn'])).toMatchObject({ options: { model: 'cnn', epochs: DEFAULTS.cnnEpochs } });
    expect(parseCli(['--model', 'cnn', '--epochs', '3'])).toMatchObject({ options: { model: 'cnn', epochs: 3 } });
    expect(() => parseCli(['--model', 'cnn', '--hidden', '8'])).toThrow(/--hidden sets the MLP's layers; --model cnn has fixed ones/);
    expect(() => parseCli(['--model', 'resnet'])).toThrow(/--model expects mlp or cnn, got 'resnet'/);
    expect(parseCli(['--help'])).toEqual({ help: true });
    expect(parseCli(['-h'])).toEqual({ help: true });
    expect(() => parseCli(['--epoch', '3'])).toThrow(UsageError);
    expect(() => parseCli(['--epoch', '3'])).toThrow(/Unknown option '--epoch'/);
    expect(() => parseCli(['extra'])).toThrow(UsageError);
    expect(() => parseCli(['--epochs', '0'])).toThrow(/--epochs expects an integer >= 1, got '0'/);
    expect(() => parseCli(['--decay-epochs', '1.5'])).toThrow(/--decay-epochs expects an integer >= 0, got '1.5'/);
    expect(() => parseCli(['--lr', 'fast'])).toThrow(/--lr expects a number > 0, got 'fast'/);
    expect(() => parseCli(['--batch-size', '1'])).toThrow(/--batch-size expects an integer >= 2/);
    expect(() => parseCli(['--hidden', '128,,64'])).toThrow(/--hidden expects comma-separated sizes/);
    expect(() => parseCli(['--lr'])).toThrow(UsageError);
  });

  it('decays the learning rate tenfold for the last epochs, never the first', () => {
    const at = (epochs: number, decayEpochs: number) => Array.from({ length: epochs }, (_, i) => lrAt(i + 1, { epochs, lr: 1, decayEpochs }));
    expect(at(5, 1)).toEqual([1, 1, 1, 1, 0.1]);
    expect(at(5, 2)).toEqual([1, 1, 1, 0.1, 0.1]);
    expect(at(3, 0)).toEqual([1, 1, 1]);
    expect(at(2, 5)).toEqual([1, 0.1]);
    expect(at(1, 1)).toEqual([1]);
  });

  it('draws both runs in an SVG, leaving out the points of a diverged run', () => {
    const run = (loss: number[], acc: number[]): History => ({ lr: loss.map(() => 1), trainLoss: loss, trainAccuracy: acc, testAccuracy: acc, epochSeconds: loss.map(() => 1), seconds: 3 });
    const svg = renderPlot([
      { label: 'with BatchNorm1d', color: '#1f77b4', history: run([0.5, 0.35, 0.3], [0.82, 0.86, 0.87]) },
      { label: 'without', color: '#ff7f0e', history: run([2.4, NaN, 2.3], [0.1, 0.1, 0.1]) },
    ], 'test <plot>');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('test &#60;plot&#62;');  // escaped
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    // with BN: loss, train and test accuracy lines; without: the NaN splits its loss into single points (dots, no
    // line), plus its two accuracy lines.
    expect(svg.match(/<polyline/g)?.length).toBe(3 + 2);
    expect(svg.match(/<circle/g)?.length).toBe(9 + 2 + 6);
  });
});

describe('npm run demo on the shipped data, one epoch', () => {
  const FIXTURE = JSON.parse(readFileSync(join(__dirname, 'fixtures/fashion-mnist-state-dicts.json'), 'utf8')) as
    Record<string, Array<[string, number[], string]>>;

  it('prints an estimate and the results, writes the JSON, the plot and a PyTorch-keyed checkpoint; batch norm wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'normkit-demo-run-'));
    const jsonPath = join(dir, 'run.json');
    const lines: string[] = [];
    // --data: the shipped files even where Debian's dataset-fashion-mnist is installed (it would be preferred).
    const code = runDemo(['--epochs', '1', '--data', DATA, '--json', jsonPath, '--out', dir],
      { log: (line) => lines.push(line), error: (line) => lines.push(line) });
    expect(code, lines.join('\n')).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/estimate: about \d+ s for both networks on this machine/);
    expect(text).toContain('reloaded into a fresh model: eval outputs bit-identical');

    const json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    expect(Object.keys(json).sort()).toEqual(['checkpoint', 'checkpointKeys', 'data', 'estimateSeconds', 'model', 'options',
      'plot', 'seconds', 'testCount', 'trainCount', 'withBN', 'withoutBN']);
    expect(json.model).toBe('mlp');
    expect(json.testCount).toBe(10000);
    expect(json.options).toMatchObject({ epochs: 1, lr: DEFAULTS.lr, batchSize: DEFAULTS.batchSize, hidden: [...DEFAULTS.hidden] });
    for (const run of [json.withBN, json.withoutBN]) {
      expect(Object.keys(run).sort()).toEqual(['epochSeconds', 'lr', 'seconds', 'testAccuracy', 'trainAccuracy', 'trainLoss']);
      expect(run.lr).toEqual([DEFAULTS.lr]);  // one epoch: no decay
      expect(run.testAccuracy).toHaveLength(1);
      expect(run.epochSeconds[0]).toBeGreaterThan(0);
    }
    // d2l's point at lr 1.0: the network with batch norm learns, the one without does not (or far less).
    expect(json.withBN.testAccuracy[0]).toBeGreaterThan(0.7);
    expect(json.withBN.testAccuracy[0]).toBeGreaterThan(json.withoutBN.testAccuracy[0] + 0.2);

    const svg = readFileSync(json.plot, 'utf8');
    expect(json.plot).toBe(join(dir, 'fashion-mnist-bn.svg'));
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('with BatchNorm1d');
    // The checkpoint holds PyTorch's keys, shapes and dtypes for the MLP, as load_in_pytorch.py --describe wrote them
    // (the file sorts its tensors, as safetensors does; the state dict had PyTorch's module order).
    const sd = loadSafetensors(new Uint8Array(readFileSync(json.checkpoint)));
    const byKey = (a: [string, ...unknown[]], b: [string, ...unknown[]]) => (a[0] < b[0] ? -1 : 1);
    expect(Object.entries(sd).map(([k, t]): [string, number[], string] => [k, [...t.shape], t.data instanceof BigInt64Array ? 'int64' : 'float32'])
      .sort(byKey)).toEqual([...FIXTURE['mlp-bn']!].sort(byKey));
    expect(json.checkpointKeys).toEqual(FIXTURE['mlp-bn']!.map(([k]) => k));
  }, 300_000);  // about 7 s on an idle 2-core machine; the limit only guards against a hang on a shared one

  it('exits with code 2 on a usage error and 1 on a --data folder without the files, training nothing', () => {
    const lines: string[] = [];
    const out = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    expect(runDemo(['--model', 'rnn'], out)).toBe(2);
    expect(lines.join('\n')).toMatch(/error: --model expects mlp or cnn, got 'rnn'\nTry --help/);
    expect(runDemo(['--data', '/nonexistent/fm'], out)).toBe(1);
    expect(lines.join('\n')).toMatch(/error: --data \/nonexistent\/fm: missing train-images-idx3-ubyte\[\.gz\]/);
    expect(runDemo(['--help'], out)).toBe(0);
    expect(lines.join('\n')).toContain('--model mlp|cnn');
  });
});
