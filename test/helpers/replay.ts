// Replays a fixture case's steps through a layer and compares every output and every piece of state after each
// step with what PyTorch recorded. Shared by the BatchNorm and family parity tests.
import { expect } from 'vitest';
import { tensor, type Module, type Parameter } from '../../lib/index.js';
import { expectClose, tolerance } from './compare.js';
import type { FixtureCase } from './fixtures.js';

export type ReplayLayer = Module & {
  weight: Parameter | null; bias: Parameter | null;
  runningMean?: ArrayLike<number> | null; runningVar?: ArrayLike<number> | null; numBatchesTracked?: number;
};

export const typed = (dtype: string, data: readonly number[]) =>
  (dtype === 'float32' ? Float32Array.from(data) : Float64Array.from(data));

export function replay(c: FixtureCase, layer: ReplayLayer): void {
  const tol = tolerance(c.dtype);
  c.steps.forEach((step, i) => {
    const at = `step ${i + 1} (${step.mode})`;
    layer.train(step.mode === 'train');
    const y = layer.forward(tensor(typed(c.dtype, step.x.data), step.x.shape));
    expect(y.shape).toEqual(step.x.shape);
    expectClose(y.data, step.y, tol, `${at} y`);
    if (step.dy && step.dx) expectClose(layer.backward(tensor(typed(c.dtype, step.dy.data), step.dy.shape)).data, step.dx, tol, `${at} dx`);
    const s = step.state;
    const check = (got: ArrayLike<number> | null | undefined, want: unknown, name: string) => {
      if (want === undefined) return;  // the fixture's layer has no such tensor
      if (want === null) { expect(got ?? null, `${at} ${name} is still unset`).toBeNull(); return; }
      expect(got, `${at} ${name} exists`).toBeTruthy();
      expectClose(got!, want as number[], tol, `${at} ${name}`);
    };
    check(layer.weight?.data, s.weight, 'weight');
    check(layer.bias?.data, s.bias, 'bias');
    check(layer.weight?.grad, s.weight_grad, 'weight.grad');
    check(layer.bias?.grad, s.bias_grad, 'bias.grad');
    check(layer.runningMean, s.running_mean, 'running_mean');
    check(layer.runningVar, s.running_var, 'running_var');
    if (typeof s.num_batches_tracked === 'number') expect(layer.numBatchesTracked, `${at} num_batches_tracked`).toBe(s.num_batches_tracked);
  });
}
