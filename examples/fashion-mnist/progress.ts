// A progress bar per epoch (cli-progress) on stderr, so stdout keeps only the results. On a terminal it redraws in
// place and is cleared at the end of the epoch, leaving the epoch's result line; when stderr is not a terminal
// (CI logs, a pipe) no bar is drawn at all: redraw escape codes would only clutter the log, and the per-epoch
// lines on stdout already say how far training is.
import { Presets, SingleBar } from 'cli-progress';
import type { TrainHooks } from './train.js';

export function progressHooks(label: string, epochs: number, stream: NodeJS.WriteStream = process.stderr): TrainHooks {
  if (!stream.isTTY) return {};
  let bar: SingleBar | null = null;
  return {
    epochStart(epoch, batches) {
      bar = new SingleBar({
        stream,
        format: `${label} epoch ${epoch}/${epochs} [{bar}] {value}/{total} batches | loss {loss} | acc {acc} | ETA {eta_formatted}`,
        clearOnComplete: true,
        hideCursor: true,
        barsize: 30,
      }, Presets.shades_classic);
      bar.start(batches, 0, { loss: '-', acc: '-' });
    },
    step(done, loss, accuracy) {
      bar?.update(done, { loss: loss.toFixed(4), acc: accuracy.toFixed(4) });
    },
    epochEnd() {
      bar?.stop();
      bar = null;
    },
  };
}
