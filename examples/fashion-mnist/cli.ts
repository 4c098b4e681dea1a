// Command-line options. Parsing only: no I/O, so the rules are easy to test; main.ts decides what to do with
// --help (exit 0) and with a UsageError (message, exit code 2).
import { parseArgs } from 'node:util';

export type ModelKind = 'mlp' | 'cnn';

export interface DemoOptions {
  /** 'mlp': the MLP of mlp.ts; 'cnn': d2l's LeNet of cnn.ts. */
  model: ModelKind;
  epochs: number;
  lr: number;
  /** The last this many epochs run at lr / 10 (train.ts's lrAt). */
  decayEpochs: number;
  batchSize: number;
  /** The MLP's hidden layer sizes (the LeNet's are fixed). */
  hidden: number[];
  seed: number;
  /** normkit kernel threads; undefined keeps normkit's default (the machine's cores). */
  threads: number | undefined;
  /** A folder with the four Fashion-MNIST files; undefined: Debian's package, else the shipped subset. */
  data: string | undefined;
  json: string | undefined;
  /** Output folder; undefined: examples/fashion-mnist/out/. */
  out: string | undefined;
  /** Data-parallel ranks on worker threads of this process (a thread group); 1: no data parallelism. */
  workers: number;
  /** Data-parallel over MPI: this process is one rank of the mpirun job. */
  mpi: boolean;
}

// The MLP's defaults are sized for under a minute for both networks on an idle 2-core machine with the shipped data
// (12000 training images, the matrix products in plain JS being the cost): two hidden layers of 128 and 64, and
// batch size 256 and lr 1.0 as in d2l's batch norm chapter, 8 epochs of which the last runs at lr 0.1 (see
// train.ts's lrAt; 0.8625 test accuracy with batch norm, seed 42; 10 epochs: 0.8648). At lr 1.0 the network
// without batch norm does not train at all; at 0.5 it does, more slowly than with batch norm. The LeNet gets d2l's
// 10 epochs.
export const DEFAULTS = {
  model: 'mlp' as ModelKind,
  epochs: 8,
  cnnEpochs: 10,
  lr: 1.0,
  decayEpochs: 1,
  batchSize: 256,
  hidden: [128, 64],
  seed: 42,
} as const;

export const USAGE = `Usage: npm run demo -- [options]
       node dist/tools/examples/fashion-mnist/main.js [options]

Trains the same network on Fashion-MNIST with and without normkit's batch norm (same seed, data and learning
rate) and compares them: per-epoch loss and accuracy, a table, an SVG plot and a safetensors checkpoint.

Options:
  --model mlp|cnn   mlp: 784 -> hidden -> 10, BatchNorm1d + ReLU fused (default); cnn: d2l's LeNet with
                    BatchNorm2d after each convolution and BatchNorm1d after each hidden dense layer
  --epochs N        epochs per network (default ${DEFAULTS.epochs}, ${DEFAULTS.cnnEpochs} with --model cnn)
  --lr X            SGD learning rate, for both networks (default ${DEFAULTS.lr})
  --decay-epochs N  the last N epochs run at lr / 10, never the first (default ${DEFAULTS.decayEpochs}; 0: constant lr)
  --batch-size N    mini-batch size, at least 2 (default ${DEFAULTS.batchSize})
  --hidden A,B,...  the MLP's hidden layer sizes (default ${DEFAULTS.hidden.join(',')})
  --seed N          seed for initialization and shuffling (default ${DEFAULTS.seed})
  --threads N       normkit kernel threads (setNumThreads; default: one per core)
  --data DIR        folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
                    (default: /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist,
                    else the 12000 + 10000 image subset shipped in examples/fashion-mnist/data/)
  --json FILE       also write the curves as JSON to FILE
  --out DIR         folder for the plot and the checkpoint (default examples/fashion-mnist/out/)
  --workers N       data-parallel on N worker threads (a thread group): each takes its shard of every batch,
                    SyncBatchNorm, gradients averaged every step; same results as 1 up to float32 rounding
  --mpi             data-parallel over MPI, one rank per process: mpirun -np 2 node dist/tools/examples/
                    fashion-mnist/main.js --mpi (rank 0 prints and writes the files)
  -h, --help        show this help
`;

/** A mistake on the command line: main prints it with a hint and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type Command = { help: true } | { help: false; options: DemoOptions };

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} expects an integer >= ${min}, got '${value}'`);
  return n;
}

function positiveNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const x = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(x) || x <= 0) throw new UsageError(`--${name} expects a number > 0, got '${value}'`);
  return x;
}

const MODELS: readonly ModelKind[] = ['mlp', 'cnn'];

function modelKind(value: string | undefined): ModelKind {
  if (value === undefined) return DEFAULTS.model;
  if (!(MODELS as readonly string[]).includes(value)) throw new UsageError(`--model expects ${MODELS.join(' or ')}, got '${value}'`);
  return value as ModelKind;
}

function sizes(name: string, value: string | undefined, fallback: readonly number[]): number[] {
  if (value === undefined) return [...fallback];
  const parts = value.split(',');
  if (!parts.every((p) => /^\d+$/.test(p.trim()) && Number(p) >= 1)) {
    throw new UsageError(`--${name} expects comma-separated sizes >= 1 such as 128,64, got '${value}'`);
  }
  return parts.map(Number);
}

const OPTIONS = {
  model: { type: 'string' },
  epochs: { type: 'string' },
  lr: { type: 'string' },
  'decay-epochs': { type: 'string' },
  'batch-size': { type: 'string' },
  hidden: { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  data: { type: 'string' },
  json: { type: 'string' },
  out: { type: 'string' },
  workers: { type: 'string' },
  mpi: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** node:util's parser, strict: unknown options, missing values and positionals throw. */
function rawValues(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    // Its messages are clear ("Unknown option '--foo'..."); only the kind of error changes.
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** Parses the arguments after the script name. Throws UsageError on unknown options or bad values. */
export function parseCli(argv: readonly string[]): Command {
  const values = rawValues(argv);
  if (values.help) return { help: true };
  const model = modelKind(values.model);
  // The LeNet's layers are d2l's; sizes for it would be silently ignored, so they are refused.
  if (model === 'cnn' && values.hidden !== undefined) throw new UsageError('--hidden sets the MLP\'s layers; --model cnn has fixed ones');
  const workers = positiveInt('workers', values.workers, 1);
  if (workers > 1 && values.mpi) throw new UsageError('--workers and --mpi are two ways to run ranks: give one (under mpirun, -np sets the ranks)');
  const batchSize = positiveInt('batch-size', values['batch-size'], DEFAULTS.batchSize, 2);
  return {
    help: false,
    options: {
      model,
      epochs: positiveInt('epochs', values.epochs, model === 'cnn' ? DEFAULTS.cnnEpochs : DEFAULTS.epochs),
      lr: positiveNumber('lr', values.lr, DEFAULTS.lr),
      decayEpochs: positiveInt('decay-epochs', values['decay-epochs'], DEFAULTS.decayEpochs, 0),
      batchSize,
      hidden: sizes('hidden', values.hidden, DEFAULTS.hidden),
      seed: positiveInt('seed', values.seed, DEFAULTS.seed, 0),
      threads: values.threads === undefined ? undefined : positiveInt('threads', values.threads, 1),
      data: values.data,
      json: values.json,
      out: values.out,
      workers,
      mpi: values.mpi ?? false,
    },
  };
}
