// The demo program: the same network (the MLP, or d2l's LeNet with --model cnn) trained on Fashion-MNIST with and
// without normkit's batch norm, compared.
//
// d2l's point (https://d2l.ai/chapter_convolutional-modern/batch-norm.html): batch norm lets a network train at a
// learning rate (1.0 in d2l) where the same network without it struggles. Both runs here share the seed (so the
// same initial weights and the same batch order), the learning rate and the data; only batch norm differs.
// Whatever happens is reported as measured.
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildInfo, loadSafetensors, saveSafetensors, setNumThreads, type Communicator } from 'normkit';
import { USAGE, UsageError, parseCli, type DemoOptions } from './cli.js';
import { LeNet } from './cnn.js';
import { describeSource, gatherBatch, loadData, locateData, type DataSource, type Dataset } from './data.js';
import { estimateRun, formatDuration } from './estimate.js';
import { Mlp } from './mlp.js';
import type { Network } from './network.js';
import { broadcastState, identicalOnAllRanks, stateArrays } from './parallel.js';
import { defaultOutDir } from './paths.js';
import { renderPlot } from './plot.js';
import { progressHooks } from './progress.js';
import { bestTestAccuracy, comparisonTable, epochLine } from './report.js';
import { fit, lrAt, type History } from './train.js';

const CLASSES = 10;

/** Where the demo's text goes: stdout and stderr for the program, a buffer in the tests. */
export interface Output {
  log(line: string): void;
  error(line: string): void;
}

export const consoleOutput: Output = {
  log: (line) => console.log(line),
  error: (line) => process.stderr.write(`${line}\n`),
};

/** Ranks other than 0 print nothing: rank 0 speaks for the job. Errors still go to stderr. */
const quietOutput: Output = { log: () => {}, error: consoleOutput.error };

/** This process's (or thread's) part of a data-parallel run. */
export interface RankContext {
  comm: Communicator;
  /** How the ranks talk: worker threads of one process, or MPI processes. */
  communicator: 'threads' | 'mpi';
}

/** What differs between --model mlp and --model cnn. */
interface ModelSpec {
  make(batchNorm: boolean): Network;
  /** One line: the layers, for the output and the plot's title. */
  description: string;
  normName: string;
  /** Where the batch norm layers sit. */
  placement: string;
  checkpointName: string;
}

function modelSpec(o: DemoOptions, train: Dataset): ModelSpec {
  if (o.model === 'cnn') {
    const side = Math.round(Math.sqrt(train.pixels));
    if (side * side !== train.pixels) throw new RangeError(`--model cnn needs square images, got ${train.pixels} pixels per image`);
    LeNet.featureSide(side);  // throws a RangeError for images too small for two 5x5 convolutions and poolings
    return {
      make: (batchNorm) => new LeNet({ side, classes: CLASSES, batchNorm, seed: o.seed }),
      description: `d2l's LeNet: conv 6@5x5, sigmoid, avgpool 2, conv 16@5x5, sigmoid, avgpool 2, dense 120, 84, 10 (sigmoid)`,
      normName: 'BatchNorm2d/1d',
      placement: 'BatchNorm2d after each convolution, BatchNorm1d after each hidden dense layer',
      checkpointName: 'cnn-bn.safetensors',
    };
  }
  return {
    make: (batchNorm) => new Mlp({ inputs: train.pixels, hidden: o.hidden, classes: CLASSES, batchNorm, seed: o.seed }),
    description: `MLP ${[train.pixels, ...o.hidden, CLASSES].join(' -> ')}, ReLU`,
    normName: 'BatchNorm1d',
    placement: 'BatchNorm1d after each hidden dense layer',
    checkpointName: 'mlp-bn.safetensors',
  };
}

/** "lr 1 (0.1 in the last epoch)" */
function scheduleText(o: DemoOptions): string {
  const decay = Math.min(o.decayEpochs, o.epochs - 1);
  if (decay === 0) return `lr ${o.lr}`;
  return `lr ${o.lr} (${lrAt(o.epochs, o)} in the last ${decay === 1 ? 'epoch' : `${decay} epochs`})`;
}

const fmtLoss = (v: number | undefined) => (v === undefined ? '?' : v.toFixed(2));

function runOne(out: Output, label: string, model: Network, batchNorm: boolean, o: DemoOptions, train: Dataset, test: Dataset,
  rank: RankContext | null): History {
  out.log(`\n${label}`);
  const bar = rank && rank.comm.rank !== 0 ? {} : progressHooks(batchNorm ? 'with BN   ' : 'without BN', o.epochs);
  return fit(model, train, test, { epochs: o.epochs, lr: o.lr, decayEpochs: o.decayEpochs, batchSize: o.batchSize, seed: o.seed }, {
    ...bar,
    epochEnd(result) {
      bar.epochEnd?.(result);  // clears the bar before the line is printed
      out.log(epochLine(result, o.epochs));
    },
  }, rank?.comm ?? null);
}

/**
 * The model a rank trains: with data parallelism its batch norm layers become SyncBatchNorm over the ranks and
 * rank 0's initial state is copied to all (they are the same from the seed already; DDP does it anyway).
 */
function replica(model: Network, rank: RankContext | null): Network {
  if (!rank) return model;
  model.synchronizeBatchNorm(rank.comm);
  const sd = model.stateDict();
  broadcastState(stateArrays(sd), rank.comm);
  model.loadStateDict(sd);
  return model;
}

/** "fc1.{weight,bias}, bn1.{weight,...}, ...": the checkpoint's keys, grouped by layer. */
export function keySummary(keys: readonly string[]): string {
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
function saveCheckpoint(model: Network, fresh: Network, path: string, test: Dataset): { keys: string[]; identical: boolean } {
  const sd = model.stateDict();
  writeFileSync(path, saveSafetensors(sd, { format: 'pt' }));
  fresh.loadStateDict(loadSafetensors(new Uint8Array(readFileSync(path))));
  const batch = gatherBatch(test, Uint32Array.from({ length: Math.min(256, test.count) }, (_, i) => i));
  const a = model.eval().logits(batch.x, batch.n), b = fresh.eval().logits(batch.x, batch.n);
  return { keys: Object.keys(sd), identical: a.every((v, i) => Object.is(v, b[i])) };
}

/** What a data-parallel run does and synchronizes per step (the model with batch norm; README "Distributed training"). */
function parallelLine(rank: RankContext, batchSize: number, model: Network): string {
  const size = rank.comm.size, channels = model.norms.reduce((s, bn) => s + bn.numFeatures, 0);
  const params = model.parameters().reduce((s, p) => s + p.data.length, 0);
  const low = Math.floor(batchSize / size), high = Math.ceil(batchSize / size);
  return `data-parallel: ${size} ranks (${rank.communicator === 'mpi' ? 'MPI processes' : 'worker threads'}), each ` +
    `${low === high ? low : `${low}-${high}`} images of every batch of ${batchSize}\n` +
    `  per step and rank: SyncBatchNorm (${model.norms.length} layers, ${channels} channels) ${3 * channels} doubles forward ` +
    `and ${2 * channels} backward; gradients ${params.toLocaleString('en-US')} float32 in one allReduce('mean')`;
}

/** Parses the command line; a number is the exit code when there is nothing to train (help, usage error). */
function command(argv: readonly string[], out: Output): DemoOptions | number {
  try {
    const parsed = parseCli(argv);
    if (!parsed.help) return parsed.options;
    out.log(USAGE.trimEnd());
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    out.error(`error: ${e.message}\nTry --help for the options.`);
    return 2;
  }
}

/**
 * Runs the demo for the arguments after the script name; returns the exit code. --workers and --mpi are
 * main.ts's business (it starts the ranks and calls runRank in each); here they are refused.
 */
export function runDemo(argv: readonly string[], out: Output = consoleOutput): number {
  const parsed = command(argv, out);
  if (typeof parsed === 'number') return parsed;
  if (parsed.workers > 1 || parsed.mpi) throw new Error('runDemo runs one process; main.ts starts the ranks of --workers and --mpi');
  return train(parsed, out, null);
}

/** One rank of a data-parallel demo: every rank trains, rank 0 alone prints and writes files. Returns the exit code. */
export function runRank(options: DemoOptions, rank: RankContext): number {
  return train(options, rank.comm.rank === 0 ? consoleOutput : quietOutput, rank);
}

/** Parses the command line for main.ts: the options, or the exit code when there is nothing to train. */
export function parseCommand(argv: readonly string[], out: Output = consoleOutput): DemoOptions | number {
  return command(argv, out);
}

function train(options: DemoOptions, out: Output, rank: RankContext | null): number {
  const start = performance.now();
  const root = !rank || rank.comm.rank === 0;
  if (options.threads !== undefined) setNumThreads(options.threads);
  const info = buildInfo();
  out.log(`normkit ${info.version}: ${info.simd} kernels, ${info.threads} thread(s), OpenMP ${info.openmp ? 'on' : 'off'}`);

  let source: DataSource;
  try {
    source = locateData(options.data);
  } catch (e) {
    out.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const { train, test } = loadData(source);
  const dataDescription = describeSource(source, train, test);
  out.log(`data: ${dataDescription}`);
  let spec: ModelSpec;
  try {
    spec = modelSpec(options, train);
  } catch (e) {
    out.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  out.log(`network: ${spec.description}`);
  out.log(`training: plain SGD, ${scheduleText(options)}, batch size ${options.batchSize}, ${options.epochs} epoch(s), seed ${options.seed}`);
  // The estimate times single-process steps; a data-parallel run says what it runs on instead.
  const estimate = rank ? null : estimateRun(() => spec.make(true), train, test,
    { epochs: options.epochs, batchSize: options.batchSize, networks: 2, evalBatch: 1000 });
  if (estimate) {
    out.log(`estimate: about ${formatDuration(estimate.totalSeconds)} for both networks on this machine ` +
      `(${(estimate.stepSeconds * 1000).toFixed(0)} ms per training batch, timed just now)`);
  }
  const withNorm = replica(spec.make(true), rank), plain = replica(spec.make(false), rank);
  if (rank) out.log(parallelLine(rank, options.batchSize, withNorm));
  const bn = runOne(out, `with ${spec.placement}`, withNorm, true, options, train, test, rank);
  const none = runOne(out, 'without batch norm (same seed, data and learning rate)', plain, false, options, train, test, rank);
  // Every rank takes part (a collective); the state includes the running statistics.
  const identicalWeights = !rank || [withNorm, plain].every((m) => identicalOnAllRanks(stateArrays(m.stateDict()), rank.comm));
  if (rank) {
    out.log(`\nweights and running statistics after training: ${identicalWeights ? 'bit-identical' : 'DIFFERENT'} on all ${rank.comm.size} ranks`);
  }
  if (!root) return identicalWeights ? 0 : 1;

  out.log(`\n${comparisonTable(bn, none, `with ${spec.normName}`)}`);
  const bestBN = bestTestAccuracy(bn), bestPlain = bestTestAccuracy(none);
  const last = (h: History) => h.testAccuracy[h.testAccuracy.length - 1] ?? NaN;
  out.log(`\nfinal test accuracy: ${last(bn).toFixed(4)} with ${spec.normName}, ` +
    `${last(none).toFixed(4)} without (best ${bestBN.accuracy.toFixed(4)} at epoch ${bestBN.epoch}, ` +
    `${bestPlain.accuracy.toFixed(4)} at epoch ${bestPlain.epoch})`);
  for (const [name, h] of [['with', bn], ['without', none]] as const) {
    // Say what a collapsed run means instead of leaving a bare 0.1 to look like a bug in the demo.
    if (!(last(h) >= 0.2)) {
      out.log(`note: the network ${name} batch norm did not learn at lr ${options.lr}: test accuracy ` +
        `${last(h).toFixed(2)} is chance level for 10 classes (train loss ${fmtLoss(h.trainLoss[0])} in the first epoch, ` +
        `${fmtLoss(h.trainLoss[h.trainLoss.length - 1])} in the last; a uniform guess scores ln 10 = 2.30). Try a smaller --lr, e.g. 0.5.`);
    }
  }

  const outDir = resolve(options.out ?? defaultOutDir());
  mkdirSync(outDir, { recursive: true });
  const plotPath = join(outDir, options.model === 'cnn' ? 'fashion-mnist-cnn-bn.svg' : 'fashion-mnist-bn.svg');
  writeFileSync(plotPath, renderPlot([
    { label: `with ${spec.normName}`, color: '#1f77b4', history: bn },
    { label: 'without batch norm', color: '#ff7f0e', history: none },
  ], `Fashion-MNIST ${spec.description}; SGD ${scheduleText(options)}, batch ${options.batchSize}, ${train.count} training images`));
  out.log(`\nplot: ${plotPath}`);

  const checkpointPath = join(outDir, spec.checkpointName);
  const saved = saveCheckpoint(withNorm, spec.make(true), checkpointPath, test);
  out.log(`checkpoint of the model with batch norm (safetensors): ${checkpointPath}`);
  out.log(`  PyTorch keys: ${keySummary(saved.keys)}`);
  out.log(`  reloaded into a fresh model: eval outputs ${saved.identical ? 'bit-identical' : 'DIFFER'}` +
    '; in PyTorch: python3 examples/fashion-mnist/load_in_pytorch.py CHECKPOINT');

  const seconds = (performance.now() - start) / 1000;
  if (options.json !== undefined) {
    const summary = (h: History) => ({ lr: h.lr, testAccuracy: h.testAccuracy, trainLoss: h.trainLoss, trainAccuracy: h.trainAccuracy,
      epochSeconds: h.epochSeconds, seconds: h.seconds });
    // JSON has no NaN: a diverged run's NaN losses are written as null.
    const json = { model: options.model, withBN: summary(bn), withoutBN: summary(none), plot: plotPath, checkpoint: checkpointPath,
      checkpointKeys: saved.keys, data: dataDescription, trainCount: train.count, testCount: test.count,
      estimateSeconds: estimate?.totalSeconds ?? null, seconds, options,
      ...(rank ? { distributed: { ranks: rank.comm.size, communicator: rank.communicator, identicalWeights } } : {}) };
    writeFileSync(options.json, `${JSON.stringify(json, null, 2)}\n`);
    out.log(`json: ${resolve(options.json)}`);
  }
  out.log(`total time ${seconds.toFixed(1)} s`);
  return saved.identical && identicalWeights ? 0 : 1;
}
