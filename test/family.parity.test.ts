// Parity with PyTorch for LayerNorm, GroupNorm, InstanceNorm1d/2d/3d and RMSNorm: every case of
// test/fixtures/family.json.gz (gen_fixtures.py; RMSNorm computed with torch autograd, torch 1.13 has no nn.RMSNorm).
import { describe, expect, it } from 'vitest';
import { GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm, Module, Parameter, RMSNorm, tensor, type StateDict } from '../lib/index.js';
import { expectClose, tolerance } from './helpers/compare.js';
import { loadCases, type FixtureCase } from './helpers/fixtures.js';

type Layer = Module & { weight: Parameter | null; bias: Parameter | null; runningMean?: ArrayLike<number> | null; runningVar?: ArrayLike<number> | null };

const MAKERS: Record<string, (args: unknown[], options: object) => Layer> = {
  LayerNorm: (a, o) => new LayerNorm(a[0] as number[], o),
  RMSNorm: (a, o) => new RMSNorm(a[0] as number[], o),
  GroupNorm: (a, o) => new GroupNorm(a[0] as number, a[1] as number, o),
  InstanceNorm1d: (a, o) => new InstanceNorm1d(a[0] as number, o),
  InstanceNorm2d: (a, o) => new InstanceNorm2d(a[0] as number, o),
  InstanceNorm3d: (a, o) => new InstanceNorm3d(a[0] as number, o),
};

const typed = (dtype: string, data: readonly number[]) => (dtype === 'float32' ? Float32Array.from(data) : Float64Array.from(data));

function build(c: FixtureCase): Layer {
  const layer = MAKERS[c.layer]!(c.args!, { ...c.options, dtype: c.dtype });
  if (c.initial && Object.keys(c.initial).length) {
    const shapes = layer.stateDict();
    const sd: StateDict = {};
    for (const [k, v] of Object.entries(c.initial)) sd[k] = { data: typed(c.dtype, v), shape: shapes[k]!.shape };
    layer.loadStateDict(sd, { strict: false });
  }
  return layer;
}

const cases = loadCases('family.json.gz');

describe('the normalization family matches PyTorch', () => {
  it('covers every layer in both dtypes', () => {
    for (const layer of Object.keys(MAKERS)) for (const dtype of ['float32', 'float64']) {
      expect(cases.some((c) => c.layer === layer && c.dtype === dtype), `${layer} ${dtype}`).toBe(true);
    }
  });

  for (const c of cases) {
    it(`${c.name} (${c.dtype})`, () => {
      const tol = tolerance(c.dtype), layer = build(c);
      c.steps.forEach((step, i) => {
        const at = `step ${i + 1} (${step.mode})`;
        layer.train(step.mode === 'train');
        const y = layer.forward(tensor(typed(c.dtype, step.x.data), step.x.shape));
        expect(y.shape).toEqual(step.x.shape);
        expectClose(y.data, step.y, tol, `${at} y`);
        if (step.dy && step.dx) expectClose(layer.backward(tensor(typed(c.dtype, step.dy.data), step.dy.shape)).data, step.dx, tol, `${at} dx`);
        const s = step.state;
        const check = (got: ArrayLike<number> | null | undefined, want: unknown, name: string) => {
          if (want === undefined || want === null) return;
          expect(got, `${at} ${name} exists`).toBeTruthy();
          expectClose(got!, want as number[], tol, `${at} ${name}`);
        };
        check(layer.weight?.data, s.weight, 'weight');
        check(layer.bias?.data, s.bias, 'bias');
        check(layer.weight?.grad, s.weight_grad, 'weight.grad');
        check(layer.bias?.grad, s.bias_grad, 'bias.grad');
        check(layer.runningMean, s.running_mean, 'running_mean');
        check(layer.runningVar, s.running_var, 'running_var');
      });
    });
  }
});
