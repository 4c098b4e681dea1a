// Containers against PyTorch (test/fixtures/gen_container_fixtures.py): a model with a Sequential of BatchNorm1d, a
// user-defined Dense and LayerNorm, plus a BatchNorm1d head. State-dict keys and parameter names in PyTorch's
// order, loading its checkpoint, outputs and gradients through the chain over training steps with SGD and
// zeroGrad, and eval mode reaching every layer.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, LayerNorm, Module, Sequential, tensor, type StateDict, type Tensor } from '../lib/index.js';
import { expectClose, tolerance } from './helpers/compare.js';
import { Dense } from './helpers/dense.js';

interface Step {
  mode: 'train' | 'eval'; x: { shape: number[]; data: number[] }; dy: { shape: number[]; data: number[] };
  y: number[]; dx: number[]; grads: Record<string, number[] | null>; state: Record<string, number[] | number>;
  sgd: number | null; zeroGrad: boolean;
}
interface Case { name: string; dtype: 'float32' | 'float64'; keys: string[]; paramNames: string[]; initial: Record<string, number[]>; steps: Step[] }

const cases = (JSON.parse(gunzipSync(readFileSync(join(__dirname, 'fixtures', 'container.json.gz'))).toString('utf8')) as { cases: Case[] }).cases;

/** The fixture's Net: head(body(x)), written as a user would. */
class Net extends Module {
  body = new Sequential(new BatchNorm1d(4), new Dense(4, 3), new LayerNorm(3));
  head = new BatchNorm1d(3, { momentum: null });
  override forward(x: Tensor): Tensor { return this.head.forward(this.body.forward(x)); }
  override backward(dy: Tensor): Tensor { return this.body.backward(this.head.backward(dy)); }
}

/** The fixture's flat lists as a state dict with the model's own shapes. */
function fromFixture(values: Record<string, number[]>, like: StateDict, dtype: 'float32' | 'float64'): StateDict {
  const sd: StateDict = {};
  for (const [k, v] of Object.entries(values)) {
    sd[k] = tensor(v, like[k]!.shape, { dtype });
  }
  return sd;
}

describe('containers against PyTorch', () => {
  for (const c of cases) {
    it(c.name, () => {
      const net = new Net();
      if (c.dtype === 'float64') expect(net.to('float64')).toBe(net);
      // float32: every layer's output is rounded to float32 before the next (torch ran the chain in float64), and
      // a few dx entries are small differences of larger terms, so the chain gets 1e-4; float64 keeps 1e-10.
      const tol = c.dtype === 'float32' ? { rtol: 1e-4, atol: 1e-4 } : tolerance(c.dtype);
      expect(Object.keys(net.stateDict())).toEqual(c.keys);
      expect(Array.from(net.namedParameters(), ([n]) => n)).toEqual(c.paramNames);
      // The checkpoint has no num_batches_tracked (an old one): strict load, counters 0.
      net.loadStateDict(fromFixture(c.initial, net.stateDict(), c.dtype));
      for (const [i, s] of c.steps.entries()) {
        const what = `${c.name} step ${i}`;
        if (s.zeroGrad) net.zeroGrad();
        if (s.mode === 'train') net.train(); else net.eval();
        expect(net.modules().map((m) => m.training)).toEqual(Array(6).fill(s.mode === 'train'));
        const y = net.forward(tensor(s.x.data, s.x.shape, { dtype: c.dtype }));
        expect(y.shape).toEqual([6, 3]);
        expectClose(y.data, s.y, tol, `${what} y`);
        const dx = net.backward(tensor(s.dy.data, s.dy.shape, { dtype: c.dtype }));
        expectClose(dx.data, s.dx, tol, `${what} dx`);
        for (const [name, p] of net.namedParameters()) {
          const want = s.grads[name];
          if (want === null || want === undefined) expect(p.grad, `${what} ${name}.grad`).toBeNull();
          else expectClose(p.grad!, want, tol, `${what} ${name}.grad`);
        }
        const lr = s.sgd;
        if (lr !== null) for (const p of net.parameters()) p.data.forEach((v, j) => { p.data[j] = v - lr * p.grad![j]!; });
        const sd = net.stateDict();
        expect(Object.keys(sd)).toEqual(c.keys);
        for (const [k, want] of Object.entries(s.state)) {
          const got = sd[k]!;
          if (typeof want === 'number') expect(got.data, `${what} ${k}`).toEqual(BigInt64Array.of(BigInt(want)));
          else expectClose(got.data as ArrayLike<number>, want, tol, `${what} ${k}`);
        }
      }
    });
  }

  it('a PyTorch nn.Sequential checkpoint\'s BatchNorm entries load by key into a normkit Sequential', () => {
    const c = cases[1]!;
    const body = new Sequential(new BatchNorm1d(4), new Dense(4, 3), new LayerNorm(3)).to('float64');
    const full = new Net().to('float64').stateDict();
    const bodyOnly = Object.fromEntries(Object.entries(fromFixture(c.initial, full, 'float64')).filter(([k]) => k.startsWith('body.')));
    body.loadStateDict(bodyOnly, { prefix: 'body.' });
    expectClose(body.at(0).runningMean!, c.initial['body.0.running_mean']!, { rtol: 0, atol: 0 });
    expectClose(body.at(1).weight.data, c.initial['body.1.weight']!, { rtol: 0, atol: 0 });
  });
});
