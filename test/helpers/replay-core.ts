// Replays a fixture case's steps through a layer and lists every output or piece of state, after each step, that
// differs from what PyTorch recorded. Free of vitest and of lib/ (normkit is passed in), so the same replay runs
// in the vitest parity suites and in test/platform/run.ts against an installed package under another Node.
import type * as Normkit from '../../lib/index.js';
import { firstMismatch, tolerance } from './close.js';
import type { FixtureCase } from './fixtures.js';

export type ReplayLayer = Normkit.Module & {
  weight: Normkit.Parameter | null; bias: Normkit.Parameter | null;
  runningMean?: ArrayLike<number> | null; runningVar?: ArrayLike<number> | null; numBatchesTracked?: number;
};

export const typed = (dtype: string, data: readonly number[]) =>
  (dtype === 'float32' ? Float32Array.from(data) : Float64Array.from(data));

const MAKERS: Record<string, (nk: typeof Normkit, c: FixtureCase, o: object) => ReplayLayer> = {
  BatchNorm1d: (nk, c, o) => new nk.BatchNorm1d(c.numFeatures!, o),
  BatchNorm2d: (nk, c, o) => new nk.BatchNorm2d(c.numFeatures!, o),
  BatchNorm3d: (nk, c, o) => new nk.BatchNorm3d(c.numFeatures!, o),
  LayerNorm: (nk, c, o) => new nk.LayerNorm(c.args![0] as number[], o),
  RMSNorm: (nk, c, o) => new nk.RMSNorm(c.args![0] as number[], o),
  GroupNorm: (nk, c, o) => new nk.GroupNorm(c.args![0] as number, c.args![1] as number, o),
  InstanceNorm1d: (nk, c, o) => new nk.InstanceNorm1d(c.args![0] as number, o),
  InstanceNorm2d: (nk, c, o) => new nk.InstanceNorm2d(c.args![0] as number, o),
  InstanceNorm3d: (nk, c, o) => new nk.InstanceNorm3d(c.args![0] as number, o),
};
export const FIXTURE_LAYERS = Object.keys(MAKERS);

/** The case's layer, with its initial state (if any) loaded. */
export function buildLayer(nk: typeof Normkit, c: FixtureCase): ReplayLayer {
  const make = MAKERS[c.layer];
  if (!make) throw new Error(`fixture case ${c.name}: unknown layer ${c.layer}`);
  const layer = make(nk, c, { ...c.options, dtype: c.dtype });
  if (c.initial && Object.keys(c.initial).length) {
    const shapes = layer.stateDict();
    const sd: Normkit.StateDict = {};
    for (const [k, v] of Object.entries(c.initial)) sd[k] = { data: typed(c.dtype, v), shape: shapes[k]!.shape };
    layer.loadStateDict(sd, { strict: false });
  }
  return layer;
}

/** Every difference from PyTorch over the case's steps (empty: the layer matches). `seen` gets each array compared
 * (to fingerprint a build's results). */
export function replayMismatches(nk: typeof Normkit, c: FixtureCase, layer: ReplayLayer,
  seen?: (what: string, got: ArrayLike<number>) => void): string[] {
  const tol = tolerance(c.dtype);
  const out: string[] = [];
  const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
    seen?.(what, got);
    const m = firstMismatch(got, want, tol, what);
    if (m) out.push(m);
  };
  c.steps.forEach((step, i) => {
    const at = `step ${i + 1} (${step.mode})`;
    layer.train(step.mode === 'train');
    const y = layer.forward(nk.tensor(typed(c.dtype, step.x.data), step.x.shape));
    if (y.shape.join() !== step.x.shape.join()) out.push(`${at} y: shape [${y.shape.join(', ')}], expected [${step.x.shape.join(', ')}]`);
    close(y.data, step.y, `${at} y`);
    if (step.dy && step.dx) close(layer.backward(nk.tensor(typed(c.dtype, step.dy.data), step.dy.shape)).data, step.dx, `${at} dx`);
    const s = step.state;
    const check = (got: ArrayLike<number> | null | undefined, want: unknown, name: string) => {
      if (want === undefined) return;  // the fixture's layer has no such tensor
      if (want === null) { if (got != null) out.push(`${at} ${name}: set, expected unset`); return; }
      if (!got) { out.push(`${at} ${name}: missing`); return; }
      close(got, want as number[], `${at} ${name}`);
    };
    check(layer.weight?.data, s.weight, 'weight');
    check(layer.bias?.data, s.bias, 'bias');
    check(layer.weight?.grad, s.weight_grad, 'weight.grad');
    check(layer.bias?.grad, s.bias_grad, 'bias.grad');
    check(layer.runningMean, s.running_mean, 'running_mean');
    check(layer.runningVar, s.running_var, 'running_var');
    if (typeof s.num_batches_tracked === 'number' && layer.numBatchesTracked !== s.num_batches_tracked) {
      out.push(`${at} num_batches_tracked: ${layer.numBatchesTracked}, expected ${s.num_batches_tracked}`);
    }
  });
  return out;
}
