// The time estimate printed before training: a few SGD steps and one evaluation batch of a throwaway copy of the
// network on this machine, scaled up to the whole run. The first steps are left out of the timing (V8 compiles
// the hot loops during them); the throwaway model is discarded, so the real runs start from the same state.
import { batchCount, gatherBatch, type Dataset } from './data.js';
import type { Network } from './network.js';
import { trainStep } from './train.js';

export interface RunShape {
  epochs: number;
  batchSize: number;
  /** How many networks are trained one after the other (with and without batch norm: 2). */
  networks: number;
  /** Images per evaluation batch (train.ts's evaluate). */
  evalBatch: number;
}

export interface Estimate {
  /** Seconds for one training step of a full batch, and for one evaluation batch. */
  stepSeconds: number;
  evalSeconds: number;
  /** The whole run: every network, every epoch, training and evaluation. */
  totalSeconds: number;
}

const WARMUP = 2, TIMED = 2;

export function estimateRun(makeNetwork: () => Network, train: Dataset, test: Dataset, shape: RunShape): Estimate {
  const model = makeNetwork().train();
  const batchSize = Math.min(shape.batchSize, train.count);
  const batch = gatherBatch(train, Uint32Array.from({ length: batchSize }, (_, i) => i));
  let stepSeconds = Infinity;
  for (let i = 0; i < WARMUP + TIMED; i++) {
    const start = performance.now();
    trainStep(model, batch, 0);  // lr 0: the cost of a step without moving the weights
    if (i >= WARMUP) stepSeconds = Math.min(stepSeconds, (performance.now() - start) / 1000);
  }
  const evalCount = Math.min(shape.evalBatch, test.count);
  const evalBatch = gatherBatch(test, Uint32Array.from({ length: evalCount }, (_, i) => i));
  model.eval();
  const start = performance.now();
  model.logits(evalBatch.x, evalBatch.n);
  const evalSeconds = (performance.now() - start) / 1000;
  const steps = batchCount(train.count, batchSize, batchSize);
  const perEpoch = steps * stepSeconds + (test.count / evalCount) * evalSeconds;
  return { stepSeconds, evalSeconds, totalSeconds: shape.networks * shape.epochs * perEpoch };
}

/** "about 1 min 20 s" / "about 45 s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60), rest = Math.round(seconds - 60 * minutes);
  return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
}
