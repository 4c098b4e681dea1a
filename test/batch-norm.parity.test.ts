// Parity with PyTorch: every case of test/fixtures/batch-norm.json.gz (written by gen_fixtures.py from torch, in
// float64 on the exact float32/float64 inputs) replayed step by step through the layers, state included.
import { describe, expect, it } from 'vitest';
import { functional as F, tensor } from '../lib/index.js';
import { expectClose, tolerance } from './helpers/compare.js';
import { loadCases } from './helpers/fixtures.js';
import { replay, typed } from './helpers/replay.js';

const cases = loadCases('batch-norm.json.gz');

describe('BatchNorm layers match PyTorch', () => {
  it('has the cases the issue asks for', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    for (const dtype of ['float32', 'float64']) expect(cases.some((c) => c.dtype === dtype)).toBe(true);
    expect(cases.some((c) => c.options.channelsLast === true)).toBe(true);
    expect(cases.some((c) => c.options.momentum === null)).toBe(true);
  });

  for (const c of cases) {
    it(`${c.name} (${c.dtype})`, () => {
      replay(c);
    });
  }
});

describe('the functional API matches PyTorch on the same cases', () => {
  for (const c of cases.filter((k) => k.steps[0]!.mode === 'train' && k.options.trackRunningStats !== false)) {
    it(`${c.name} (${c.dtype}), first step`, () => {
      const step = c.steps[0]!, tol = tolerance(c.dtype), C = c.numFeatures!;
      const ones = typed(c.dtype, new Array<number>(C).fill(1)), zeros = typed(c.dtype, new Array<number>(C).fill(0));
      const init = c.initial ?? {};
      const affine = c.options.affine !== false;
      const weight = affine ? (init.weight ? typed(c.dtype, init.weight) : ones) : null;
      const bias = affine ? (init.bias ? typed(c.dtype, init.bias) : zeros) : null;
      const runningMean = init.running_mean ? typed(c.dtype, init.running_mean) : zeros.slice();
      const runningVar = init.running_var ? typed(c.dtype, init.running_var) : ones.slice();
      const momentum = c.options.momentum === null ? 1 : (c.options.momentum as number | undefined);  // cumulative, first batch: factor 1/1
      const x = tensor(typed(c.dtype, step.x.data), step.x.shape);
      const r = F.batchNorm(x, { training: true, runningMean, runningVar, weight, bias, momentum,
        eps: c.options.eps as number | undefined, channelsLast: c.options.channelsLast as boolean | undefined });
      expectClose(r.y.data, step.y, tol, 'y');
      expectClose(runningMean, step.state.running_mean as number[], tol, 'running_mean');
      expectClose(runningVar, step.state.running_var as number[], tol, 'running_var');
      if (step.dy && step.dx) {
        const g = F.batchNormBackward(tensor(typed(c.dtype, step.dy.data), step.dy.shape), x,
          { weight, saveMean: r.saveMean, saveInvstd: r.saveInvstd, channelsLast: c.options.channelsLast as boolean | undefined });
        expectClose(g.dx.data, step.dx, tol, 'dx');
        if (affine) expectClose(g.dweight, step.state.weight_grad as number[], tol, 'dweight');
      }
    });
  }
});
