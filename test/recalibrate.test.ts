// recalibrate against torch.optim.swa_utils.update_bn on the same batches (test/fixtures/beyond.json.gz, written by
// gen_fixtures.py), and its restore-on-throw and bad-input behaviour.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, BatchNorm2d, BatchNormBase, InstanceNorm2d, recalibrate, Sequential, tensor } from '../lib/index.js';
import { expectClose } from './helpers/compare.js';

interface FixtureLayer { layer: 'BatchNorm1d' | 'BatchNorm2d'; numFeatures: number; momentum: number | null; initial: Record<string, number[]> }
interface Case {
  name: string; training: boolean; layers: FixtureLayer[]; batches: Array<{ shape: number[]; data: number[] }>;
  after: Array<Record<string, number | number[] | null>>; momentumAfter: Array<number | null>; trainingAfter: boolean;
}
const cases = (JSON.parse(gunzipSync(readFileSync(join(__dirname, 'fixtures', 'beyond.json.gz'))).toString('utf8')) as { recalibrate: Case[] }).recalibrate;
const tol = { rtol: 1e-12, atol: 1e-12 };

function build(c: Case): { model: Sequential; layers: BatchNormBase[] } {
  const layers = c.layers.map((l) => {
    const Layer = l.layer === 'BatchNorm1d' ? BatchNorm1d : BatchNorm2d;
    const bn = new Layer(l.numFeatures, { momentum: l.momentum, dtype: 'float64' });
    bn.weight!.data.set(l.initial.weight!); bn.bias!.data.set(l.initial.bias!);
    bn.runningMean!.set(l.initial.running_mean!); bn.runningVar!.set(l.initial.running_var!);
    bn.numBatchesTracked = 7;
    return bn;
  });
  const model = new Sequential(...layers);
  model.train(c.training);
  return { model, layers };
}

describe('recalibrate equals update_bn', () => {
  expect(cases.length).toBeGreaterThan(0);
  for (const c of cases) {
    it(c.name, async () => {
      const { model, layers } = build(c);
      await recalibrate(layers, () => { for (const b of c.batches) model.forward(tensor(Float64Array.from(b.data), b.shape)); });
      layers.forEach((bn, i) => {
        const want = c.after[i]!;
        expectClose(bn.runningMean!, want.running_mean as number[], tol, `layer ${i} running_mean`);
        expectClose(bn.runningVar!, want.running_var as number[], tol, `layer ${i} running_var`);
        expect(bn.numBatchesTracked).toBe(want.num_batches_tracked);
        expect(bn.momentum).toBe(c.momentumAfter[i]);
        expect(bn.training).toBe(c.trainingAfter);
      });
    });
  }
});

describe('recalibrate', () => {
  it('restores momentum and mode when run throws, and rethrows (an async run too)', async () => {
    const bn = new BatchNorm1d(2, { momentum: 0.25 }).eval();
    await expect(recalibrate([bn], () => { throw new Error('data loader failed'); })).rejects.toThrow('data loader failed');
    expect(bn.momentum).toBe(0.25); expect(bn.training).toBe(false);
    await expect(recalibrate([bn], async () => { await Promise.resolve(); throw new Error('late'); })).rejects.toThrow('late');
    expect(bn.momentum).toBe(0.25); expect(bn.training).toBe(false);
  });

  it('is a cumulative average while run() feeds data (momentum null inside)', async () => {
    const bn = new BatchNorm1d(1, { dtype: 'float64' });
    let inside: number | null | undefined;
    await recalibrate([bn], () => {
      inside = bn.momentum;
      bn.forward(tensor(new Float64Array([0, 2]), [2, 1]));
      bn.forward(tensor(new Float64Array([4, 6]), [2, 1]));
    });
    expect(inside).toBeNull();
    expect(Array.from(bn.runningMean!)).toEqual([3]);   // (1 + 5) / 2
    expect(Array.from(bn.runningVar!)).toEqual([2]);    // (2 + 2) / 2, unbiased
    expect(bn.momentum).toBe(0.1);
  });

  it('bad input: TypeError / RangeError before any state changes', async () => {
    const bn = new BatchNorm2d(2);
    bn.runningMean!.set([5, 6]);
    const run = () => {};
    await expect(recalibrate('bn' as never, run)).rejects.toThrow(TypeError);
    await expect(recalibrate([bn, new InstanceNorm2d(2, { trackRunningStats: true })] as never, run)).rejects.toThrow(/layers\[1\]/);
    await expect(recalibrate([bn, new BatchNorm2d(2, { trackRunningStats: false })], run)).rejects.toThrow(/layers\[1\].*no running statistics/);
    await expect(recalibrate([bn], 'run' as never)).rejects.toThrow(/recalibrate run/);
    expect(Array.from(bn.runningMean!)).toEqual([5, 6]);
  });
});
