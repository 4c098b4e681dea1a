// The fused activation against PyTorch: autograd through relu(layer(x) [+ residual]) in float64 on the same inputs
// (test/fixtures/beyond.json.gz, "fused", gen_fixtures.py). Every case holds exact ReLU ties (PyTorch's gradient at
// 0 is 0), and the forms cover BatchNorm1d/2d/3d (train, eval, channels-last, momentum null, affine off),
// GroupNorm (channels-last too), LayerNorm and InstanceNorm (with running statistics).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm, tensor, type StateDict,
} from '../lib/index.js';
import { expectBitIdentical, expectClose, tolerance } from './helpers/compare.js';
import type { FixtureCase, FixtureTensor } from './helpers/fixtures.js';
import { typed } from './helpers/replay.js';

interface FusedCase extends FixtureCase { residual: FixtureTensor | null; dresidual: number[] | null; ties: number }
const cases = (JSON.parse(gunzipSync(readFileSync(join(__dirname, 'fixtures', 'beyond.json.gz'))).toString('utf8')) as { fused: FusedCase[] }).fused;

type Fused = BatchNorm1d | BatchNorm2d | BatchNorm3d | GroupNorm | LayerNorm | InstanceNorm1d | InstanceNorm2d;
const MAKERS: Record<string, (args: unknown[], options: object) => Fused> = {
  BatchNorm1d: (a, o) => new BatchNorm1d(a[0] as number, o),
  BatchNorm2d: (a, o) => new BatchNorm2d(a[0] as number, o),
  BatchNorm3d: (a, o) => new BatchNorm3d(a[0] as number, o),
  GroupNorm: (a, o) => new GroupNorm(a[0] as number, a[1] as number, o),
  LayerNorm: (a, o) => new LayerNorm(a[0] as number[], o),
  InstanceNorm1d: (a, o) => new InstanceNorm1d(a[0] as number, o),
  InstanceNorm2d: (a, o) => new InstanceNorm2d(a[0] as number, o),
};

function build(c: FusedCase): Fused {
  const layer = MAKERS[c.layer]!(c.args!, { ...c.options, dtype: c.dtype });
  const shapes = layer.stateDict(), sd: StateDict = {};
  for (const [k, v] of Object.entries(c.initial ?? {})) sd[k] = { data: typed(c.dtype, v), shape: shapes[k]!.shape };
  layer.loadStateDict(sd, { strict: false });
  return layer;
}

const inputs = (c: FusedCase) => {
  const step = c.steps[0]!;
  return {
    step, x: tensor(typed(c.dtype, step.x.data), step.x.shape), dy: tensor(typed(c.dtype, step.dy!.data), step.dy!.shape),
    residual: c.residual ? tensor(typed(c.dtype, c.residual.data), c.residual.shape) : undefined,
  };
};

describe('activation relu matches autograd through relu(layer(x) [+ residual])', () => {
  it('covers every fused form in both dtypes, each with exact ties', () => {
    for (const layer of Object.keys(MAKERS)) for (const dtype of ['float32', 'float64']) {
      expect(cases.some((c) => c.layer === layer && c.dtype === dtype), `${layer} ${dtype}`).toBe(true);
    }
    expect(cases.every((c) => c.ties > 0)).toBe(true);
    expect(cases.some((c) => c.residual !== null && c.options.channelsLast === true)).toBe(true);
  });

  for (const c of cases) {
    it(c.name, () => {
      const layer = build(c), tol = tolerance(c.dtype), { step, x, dy, residual } = inputs(c);
      expect(layer.activation).toBe('relu');
      layer.train(step.mode === 'train');
      const y = layer.forward(x, { residual });
      expectClose(y.data, step.y, tol, 'y');
      expectClose(layer.backward(dy).data, step.dx!, tol, 'dx');
      if (c.dresidual) expectClose(layer.residualGrad!.data, c.dresidual, tol, 'residual grad');
      else expect(layer.residualGrad).toBeNull();
      const s = step.state;
      const check = (got: ArrayLike<number> | null | undefined, want: unknown, name: string) => {
        if (want === undefined) return;
        if (want === null) { expect(got ?? null, name).toBeNull(); return; }
        expectClose(got!, want as number[], tol, name);
      };
      check(layer.weight?.grad, s.weight_grad, 'weight.grad');
      check(layer.bias?.grad, s.bias_grad, 'bias.grad');
      check('runningMean' in layer ? layer.runningMean : undefined, s.running_mean, 'running_mean');
      check('runningVar' in layer ? layer.runningVar : undefined, s.running_var, 'running_var');
    });
  }
});

describe('the fused forms in other call shapes give the same bits', () => {
  const c = cases.find((k) => k.residual && k.dtype === 'float32' && k.options.channelsLast === true)!;

  it('async forms, out and residualOut', async () => {
    const { x, dy, residual } = inputs(c);
    const a = build(c), b = build(c);
    const y = a.forward(x, { residual }), dx = a.backward(dy);
    const out = new Float32Array(x.data.length), dxOut = new Float32Array(x.data.length), rOut = new Float32Array(x.data.length);
    const y2 = await b.forwardAsync(x, { residual, out });
    const dx2 = await b.backwardAsync(dy, { out: dxOut, residualOut: rOut });
    expect(y2.data).toBe(out); expect(dx2.data).toBe(dxOut); expect(b.residualGrad!.data).toBe(rOut);
    expectBitIdentical(y2.data, y.data as Float32Array, 'y');
    expectBitIdentical(dx2.data, dx.data as Float32Array, 'dx');
    expectBitIdentical(rOut, a.residualGrad!.data as Float32Array, 'residual grad');
  });
});
