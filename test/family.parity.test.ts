// Parity with PyTorch for LayerNorm, GroupNorm, InstanceNorm1d/2d/3d and RMSNorm: every case of
// test/fixtures/family.json.gz (gen_fixtures.py; RMSNorm computed with torch autograd, torch 1.13 has no nn.RMSNorm).
import { describe, expect, it } from 'vitest';
import { GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, LayerNorm, RMSNorm, type StateDict } from '../lib/index.js';
import { loadCases, type FixtureCase } from './helpers/fixtures.js';
import { replay, typed, type ReplayLayer } from './helpers/replay.js';

const MAKERS: Record<string, (args: unknown[], options: object) => ReplayLayer> = {
  LayerNorm: (a, o) => new LayerNorm(a[0] as number[], o),
  RMSNorm: (a, o) => new RMSNorm(a[0] as number[], o),
  GroupNorm: (a, o) => new GroupNorm(a[0] as number, a[1] as number, o),
  InstanceNorm1d: (a, o) => new InstanceNorm1d(a[0] as number, o),
  InstanceNorm2d: (a, o) => new InstanceNorm2d(a[0] as number, o),
  InstanceNorm3d: (a, o) => new InstanceNorm3d(a[0] as number, o),
};

function build(c: FixtureCase): ReplayLayer {
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
      replay(c, build(c));
    });
  }
});
