// Command-line options. Parsing only: no I/O, so the rules are easy to test; main.ts decides what to do with
// --help (exit 0) and with a UsageError (message, exit code 2).
import { parseArgs } from 'node:util';

export interface DemoOptions {
  epochs: number;
  lr: number;
  batchSize: number;
  hidden: number[];
  seed: number;
  /** normkit kernel threads; undefined keeps normkit's default (the machine's cores). */
  threads: number | undefined;
  /** A folder with the four Fashion-MNIST files; undefined: Debian's package, else the shipped subset. */
  data: string | undefined;
  json: string | undefined;
  /** Output folder; undefined: examples/fashion-mnist/out/. */
  out: string | undefined;
}

// Sized for about 2 minutes for both networks on a 2-core machine with the full data set (~10 s per epoch each,
// the matrix products in plain JS being the cost): two hidden layers of 128 and 64, and batch size 256 and lr 1.0
// as in d2l's batch norm chapter. At lr 1.0 the network without batch norm does not train at all; at 0.5 it does,
// more slowly than with batch norm.
export const DEFAULTS = {
  epochs: 6,
  lr: 1.0,
  batchSize: 256,
  hidden: [128, 64],
  seed: 42,
} as const;

export const USAGE = `Usage: npm run demo -- [options]
       node dist/tools/examples/fashion-mnist/main.js [options]

Trains the same MLP on Fashion-MNIST with and without normkit's BatchNorm1d (same seed, data and learning
rate) and compares them: per-epoch loss and accuracy, a table, an SVG plot and a safetensors checkpoint.

Options:
  --epochs N        epochs per network (default ${DEFAULTS.epochs})
  --lr X            SGD learning rate, for both networks (default ${DEFAULTS.lr})
  --batch-size N    mini-batch size, at least 2 (default ${DEFAULTS.batchSize})
  --hidden A,B,...  hidden layer sizes (default ${DEFAULTS.hidden.join(',')})
  --seed N          seed for initialization and shuffling (default ${DEFAULTS.seed})
  --threads N       normkit kernel threads (setNumThreads; default: one per core)
  --data DIR        folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
                    (default: /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist,
                    else the 3000 + 1000 image subset shipped in examples/fashion-mnist/data/)
  --json FILE       also write the curves as JSON to FILE
  --out DIR         folder for the plot and the checkpoint (default examples/fashion-mnist/out/)
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

function sizes(name: string, value: string | undefined, fallback: readonly number[]): number[] {
  if (value === undefined) return [...fallback];
  const parts = value.split(',');
  if (!parts.every((p) => /^\d+$/.test(p.trim()) && Number(p) >= 1)) {
    throw new UsageError(`--${name} expects comma-separated sizes >= 1 such as 128,64, got '${value}'`);
  }
  return parts.map(Number);
}

const OPTIONS = {
  epochs: { type: 'string' },
  lr: { type: 'string' },
  'batch-size': { type: 'string' },
  hidden: { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  data: { type: 'string' },
  json: { type: 'string' },
  out: { type: 'string' },
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
  return {
    help: false,
    options: {
      epochs: positiveInt('epochs', values.epochs, DEFAULTS.epochs),
      lr: positiveNumber('lr', values.lr, DEFAULTS.lr),
      batchSize: positiveInt('batch-size', values['batch-size'], DEFAULTS.batchSize, 2),
      hidden: sizes('hidden', values.hidden, DEFAULTS.hidden),
      seed: positiveInt('seed', values.seed, DEFAULTS.seed, 0),
      threads: values.threads === undefined ? undefined : positiveInt('threads', values.threads, 1),
      data: values.data,
      json: values.json,
      out: values.out,
    },
  };
}
