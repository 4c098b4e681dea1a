// The rest of the family in the bench: LayerNorm and RMSNorm over the last dim, GroupNorm over NCHW. Each row
// times the training forward and the backward through the functional API (eval is BatchNorm's alone).
import { functional as F, type FloatArray } from 'normkit';
import type { BenchShape } from './shapes.js';

export type FamilyOps = { fwd: () => unknown; bwd: () => unknown };

/** Weight and bias of `n` entries away from 1 and 0, so the affine paths do real work. */
function affine(Ctor: Float32ArrayConstructor | Float64ArrayConstructor, n: number) {
  return { weight: new Ctor(n).map((_, i) => 0.5 + (i % 7) / 4), bias: new Ctor(n).map((_, i) => ((i % 5) - 2) / 3) };
}

export function familyOps(s: BenchShape, x: FloatArray, dy: FloatArray, y: FloatArray, dx: FloatArray): FamilyOps {
  const Ctor = x instanceof Float32Array ? Float32Array : Float64Array;
  const t = { data: x, shape: s.shape }, dyT = { data: dy, shape: s.shape };
  if (s.family === 'groupNorm') {
    const G = s.groups!, { weight, bias } = affine(Ctor, s.shape[1]!);
    const saved = F.groupNorm(t, G, { weight, bias });
    return {
      fwd: () => F.groupNorm(t, G, { weight, bias, out: y }),
      bwd: () => F.groupNormBackward(dyT, t, G, { weight, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, out: dx }),
    };
  }
  const D = s.shape.at(-1)!, { weight, bias } = affine(Ctor, D);
  if (s.family === 'rmsNorm') {
    const saved = F.rmsNorm(t, D, { weight });
    return {
      fwd: () => F.rmsNorm(t, D, { weight, out: y }),
      bwd: () => F.rmsNormBackward(dyT, t, D, { weight, saveInvRms: saved.saveInvRms, out: dx }),
    };
  }
  const saved = F.layerNorm(t, D, { weight, bias });
  return {
    fwd: () => F.layerNorm(t, D, { weight, bias, out: y }),
    bwd: () => F.layerNormBackward(dyT, t, D, { weight, bias, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, out: dx }),
  };
}
