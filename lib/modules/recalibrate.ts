// recalibrate: torch.optim.swa_utils.update_bn. After weights change without the running statistics following
// (weight averaging, pruning, a loaded checkpoint), fresh statistics are gathered over data the caller feeds.
import { invalidType } from '../errors.js';
import { BatchNormBase } from './batch-norm.js';
import { recalibration, type NormBase } from './norm-base.js';

/** The layers to recalibrate, checked before any state changes: each a BatchNorm with running statistics. */
function checkLayers(layers: unknown): BatchNormBase[] {
  if (!Array.isArray(layers)) throw invalidType('recalibrate layers', 'an array of BatchNorm layers', layers);
  layers.forEach((layer: unknown, i) => {
    if (!(layer instanceof BatchNormBase)) {
      throw invalidType(`recalibrate layers[${i}]`, 'a BatchNorm1d/2d/3d or SyncBatchNorm (a cumulative average needs momentum null)', layer);
    }
    if (!layer.runningMean) throw new RangeError(`recalibrate: layers[${i}] (${layer.constructor.name}) has no running statistics (trackRunningStats is false)`);
    recalibration.assertIdle(layer, 'recalibrate');
  });
  return [...new Set(layers as BatchNormBase[])];
}

/**
 * torch.optim.swa_utils.update_bn: resets each layer's running statistics, makes it a cumulative average
 * (momentum null) in training mode while `run()` feeds data through the model, then restores each layer's momentum
 * and mode — also when `run` throws or rejects (the statistics gathered so far stay). Other modules' modes are
 * yours to set. With no layers, `run` is not called (as update_bn).
 * @param layers BatchNorm1d/2d/3d or SyncBatchNorm layers with running statistics
 * @param run feeds the data, e.g. `() => { for (const x of batches) model.forward(x); }`; may be async
 * @throws TypeError / RangeError on bad arguments, before any state changes; rethrows what run throws
 */
export async function recalibrate(layers: readonly NormBase[], run: () => void | Promise<void>): Promise<void> {
  const list = checkLayers(layers);
  if (typeof run !== 'function') throw invalidType('recalibrate run', 'a function', run);
  if (list.length === 0) return;
  const saved = list.map((layer) => ({ layer, momentum: layer.momentum, training: layer.training }));
  for (const layer of list) {
    layer.resetRunningStats();
    recalibration.setMomentum(layer, null);
    layer.train(true);
  }
  try {
    await run();
  } finally {
    for (const s of saved) {
      recalibration.setMomentum(s.layer, s.momentum);
      s.layer.train(s.training);
    }
  }
}
