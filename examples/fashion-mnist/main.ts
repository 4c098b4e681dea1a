// npm run demo: the same MLP trained on Fashion-MNIST with and without normkit's BatchNorm1d, compared.
//
// d2l's point (https://d2l.ai/chapter_convolutional-modern/batch-norm.html): batch norm lets a network train at a
// learning rate (1.0 in d2l) where the same network without it struggles. Both runs here share the seed (so the
// same initial dense weights and the same batch order), the learning rate and the data; only BatchNorm1d differs.
// Whatever happens is reported as measured.
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildInfo, loadSafetensors, saveSafetensors, setNumThreads } from 'normkit';
import { USAGE, UsageError, parseCli, type DemoOptions } from './cli.js';
import { describeSource, gatherBatch, loadData, locateData, type DataSource, type Dataset } from './data.js';
import { Mlp } from './model.js';
import { defaultOutDir } from './paths.js';
import { renderPlot } from './plot.js';
import { progressHooks } from './progress.js';
import { bestTestAccuracy, comparisonTable, epochLine } from './report.js';
import { fit, type History } from './train.js';

const CLASSES = 10;

const fmtLoss = (v: number | undefined) => (v === undefined ? '?' : v.toFixed(2));

function runOne(label: string, batchNorm: boolean, o: DemoOptions, train: Dataset, test: Dataset): { model: Mlp; history: History } {
  const model = new Mlp({ inputs: train.pixels, hidden: o.hidden, classes: CLASSES, batchNorm, seed: o.seed });
  console.log(`\n${label}`);
  const bar = progressHooks(batchNorm ? 'with BN   ' : 'without BN', o.epochs);
  const history = fit(model, train, test, { epochs: o.epochs, lr: o.lr, batchSize: o.batchSize, seed: o.seed }, {
    ...bar,
    epochEnd(result) {
      bar.epochEnd?.(result);  // clears the bar before the line is printed
      console.log(epochLine(result, o.epochs));
    },
  });
  return { model, history };
}

/** "fc1.{weight,bias}, bn1.{weight,...}, ...": the checkpoint's keys, grouped by layer. */
function keySummary(keys: readonly string[]): string {
  const layers = new Map<string, string[]>();
  for (const key of keys) {
    const dot = key.indexOf('.');
    const layer = key.slice(0, dot);
    layers.set(layer, [...(layers.get(layer) ?? []), key.slice(dot + 1)]);
  }
  return [...layers].map(([layer, names]) => `${layer}.{${names.join(',')}}`).join(', ');
}

/**
 * Saves the trained model with PyTorch's key names and checks the file: a fresh model loaded from it must give
 * bit-identical eval-mode outputs on the first test images.
 */
function saveCheckpoint(model: Mlp, path: string, test: Dataset): { keys: string[]; identical: boolean } {
  const sd = model.stateDict();
  writeFileSync(path, saveSafetensors(sd, { format: 'pt' }));
  const again = new Mlp(model.options);
  again.loadStateDict(loadSafetensors(new Uint8Array(readFileSync(path))));
  const batch = gatherBatch(test, Uint32Array.from({ length: Math.min(256, test.count) }, (_, i) => i));
  const a = model.eval().forward(batch.x, batch.n), b = again.eval().forward(batch.x, batch.n);
  return { keys: Object.keys(sd), identical: a.every((v, i) => Object.is(v, b[i])) };
}

function main(argv: readonly string[]): number {
  let options: DemoOptions;
  try {
    const command = parseCli(argv);
    if (command.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    options = command.options;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\nTry --help for the options.\n`);
    return 2;
  }
  const start = performance.now();
  if (options.threads !== undefined) setNumThreads(options.threads);
  const info = buildInfo();
  console.log(`normkit ${info.version}: ${info.simd} kernels, ${info.threads} thread(s), OpenMP ${info.openmp ? 'on' : 'off'}`);

  let source: DataSource;
  try {
    source = locateData(options.data);
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  const { train, test } = loadData(source);
  const dataDescription = describeSource(source, train, test);
  console.log(`data: ${dataDescription}`);
  const sizes = [train.pixels, ...options.hidden, CLASSES].join(' -> ');
  console.log(`network: ${sizes}, ReLU; SGD lr ${options.lr}, batch size ${options.batchSize}, ${options.epochs} epoch(s), seed ${options.seed}`);

  const bn = runOne('with BatchNorm1d after each hidden dense layer', true, options, train, test);
  const plain = runOne('without batch norm (same seed, data and learning rate)', false, options, train, test);

  console.log(`\n${comparisonTable(bn.history, plain.history)}`);
  const bestBN = bestTestAccuracy(bn.history), bestPlain = bestTestAccuracy(plain.history);
  const last = (h: History) => h.testAccuracy[h.testAccuracy.length - 1] ?? NaN;
  console.log(`\nfinal test accuracy at lr ${options.lr}: ${last(bn.history).toFixed(4)} with BatchNorm1d, ` +
    `${last(plain.history).toFixed(4)} without (best ${bestBN.accuracy.toFixed(4)} at epoch ${bestBN.epoch}, ` +
    `${bestPlain.accuracy.toFixed(4)} at epoch ${bestPlain.epoch})`);
  for (const [name, h] of [['with', bn.history], ['without', plain.history]] as const) {
    // Say what a collapsed run means instead of leaving a bare 0.1 to look like a bug in the demo.
    if (!(last(h) >= 0.2)) {
      console.log(`note: the network ${name} batch norm did not learn at lr ${options.lr}: test accuracy ` +
        `${last(h).toFixed(2)} is chance level for 10 classes (train loss ${fmtLoss(h.trainLoss[0])} in the first epoch, ` +
        `${fmtLoss(h.trainLoss[h.trainLoss.length - 1])} in the last; a uniform guess scores ln 10 = 2.30). Try a smaller --lr, e.g. 0.5.`);
    }
  }

  const outDir = resolve(options.out ?? defaultOutDir());
  mkdirSync(outDir, { recursive: true });
  const plotPath = join(outDir, 'fashion-mnist-bn.svg');
  writeFileSync(plotPath, renderPlot([
    { label: 'with BatchNorm1d', color: '#1f77b4', history: bn.history },
    { label: 'without batch norm', color: '#ff7f0e', history: plain.history },
  ], `Fashion-MNIST MLP ${sizes}, SGD lr ${options.lr}, batch ${options.batchSize}, ${train.count} training images`));
  console.log(`\nplot: ${plotPath}`);

  const checkpointPath = join(outDir, 'mlp-bn.safetensors');
  const saved = saveCheckpoint(bn.model, checkpointPath, test);
  console.log(`checkpoint of the model with BatchNorm1d (safetensors): ${checkpointPath}`);
  console.log(`  PyTorch keys: ${keySummary(saved.keys)}`);
  console.log(`  reloaded into a fresh model: eval outputs ${saved.identical ? 'bit-identical' : 'DIFFER'}` +
    '; in PyTorch: python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT');

  if (options.json !== undefined) {
    const summary = (h: History) => ({ testAccuracy: h.testAccuracy, trainLoss: h.trainLoss, trainAccuracy: h.trainAccuracy,
      epochSeconds: h.epochSeconds, seconds: h.seconds });
    // JSON has no NaN: a diverged run's NaN losses are written as null.
    const json = { withBN: summary(bn.history), withoutBN: summary(plain.history), plot: plotPath, checkpoint: checkpointPath,
      data: dataDescription, options };
    writeFileSync(options.json, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`json: ${resolve(options.json)}`);
  }
  console.log(`total time ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return saved.identical ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
