// Every layer's backward (dx, dweight, dbias) against central finite differences of its own forward, float64.
import { describe, expect, it } from 'vitest';
import { BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm, Module, Parameter, RMSNorm, tensor } from '../lib/index.js';
import { randn } from './helpers/compare.js';

interface Case { name: string; make: () => Module & { weight: Parameter | null; bias: Parameter | null }; shape: number[]; eval?: boolean }

const CASES: Case[] = [
  { name: 'LayerNorm([6])', make: () => new LayerNorm(6, { dtype: 'float64' }), shape: [3, 6] },
  { name: 'LayerNorm([2, 3]) on 3-D', make: () => new LayerNorm([2, 3], { dtype: 'float64' }), shape: [2, 2, 3] },
  { name: 'LayerNorm without bias', make: () => new LayerNorm(5, { dtype: 'float64', bias: false }), shape: [4, 5] },
  { name: 'RMSNorm([5])', make: () => new RMSNorm(5, { dtype: 'float64' }), shape: [3, 5] },
  { name: 'RMSNorm eps 1e-3', make: () => new RMSNorm([2, 2], { dtype: 'float64', eps: 1e-3 }), shape: [3, 2, 2] },
  { name: 'GroupNorm(2, 4)', make: () => new GroupNorm(2, 4, { dtype: 'float64' }), shape: [2, 4, 3] },
  { name: 'GroupNorm(3, 6) channels-last', make: () => new GroupNorm(3, 6, { dtype: 'float64', channelsLast: true }), shape: [2, 2, 2, 6] },
  { name: 'InstanceNorm1d affine', make: () => new InstanceNorm1d(3, { dtype: 'float64', affine: true }), shape: [2, 3, 5] },
  { name: 'InstanceNorm2d tracked, eval', make: () => new InstanceNorm2d(2, { dtype: 'float64', affine: true, trackRunningStats: true }), shape: [2, 2, 2, 3], eval: true },
  { name: 'BatchNorm2d', make: () => new BatchNorm2d(3, { dtype: 'float64' }), shape: [2, 3, 2, 2] },
];

describe('backward equals finite differences', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const n = c.shape.reduce((a, b) => a * b, 1);
      const x = randn(n, 11, Float64Array).map((v, i) => v * (1 + (i % 3)) + (i % 4)) as Float64Array;
      const r = randn(n, 12, Float64Array) as Float64Array;
      const make = () => {
        const m = c.make();
        m.weight?.data.set(randn(m.weight.data.length, 13, Float64Array).map((v) => 1 + 0.5 * v));
        m.bias?.data.set(randn(m.bias.data.length, 14, Float64Array));
        if (c.eval) {
          const stats = m as unknown as { runningMean: Float64Array; runningVar: Float64Array };
          stats.runningMean.set(randn(stats.runningMean.length, 15, Float64Array));
          stats.runningVar.set(randn(stats.runningVar.length, 16, Float64Array).map((v) => 1 + v * v));
          m.eval();
        }
        return m;
      };
      const loss = (m: ReturnType<typeof make>, xx: Float64Array) => Array.from(m.forward(tensor(xx, c.shape)).data).reduce((s, v, j) => s + v * r[j]!, 0);
      const m = make();
      m.forward(tensor(x, c.shape));
      const dx = m.backward(tensor(r, c.shape));
      const h = 1e-6;
      for (let i = 0; i < n; i++) {
        const xp = x.slice(), xm = x.slice();
        xp[i]! += h; xm[i]! -= h;
        expect(dx.data[i], `dx[${i}]`).toBeCloseTo((loss(make(), xp) - loss(make(), xm)) / (2 * h), 6);
      }
      for (const which of ['weight', 'bias'] as const) {
        const p = m[which];
        if (!p) continue;
        expect(p.grad, `${which}.grad`).not.toBeNull();
        for (let k = 0; k < p.data.length; k++) {
          const up = make(), down = make();
          up[which]!.data[k]! += h; down[which]!.data[k]! -= h;
          expect(p.grad![k], `${which}.grad[${k}]`).toBeCloseTo((loss(up, x) - loss(down, x)) / (2 * h), 6);
        }
      }
    });
  }
});
