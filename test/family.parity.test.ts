// Parity with PyTorch for LayerNorm, GroupNorm, InstanceNorm1d/2d/3d and RMSNorm: every case of
// test/fixtures/family.json.gz (gen_fixtures.py; RMSNorm computed with torch autograd, torch 1.13 has no nn.RMSNorm).
import { describe, expect, it } from 'vitest';
import { loadCases } from './helpers/fixtures.js';
import { replay } from './helpers/replay.js';
import { FIXTURE_LAYERS } from './helpers/replay-core.js';

const cases = loadCases('family.json.gz');

describe('the normalization family matches PyTorch', () => {
  it('covers every layer in both dtypes', () => {
    for (const layer of FIXTURE_LAYERS.filter((l) => !l.startsWith('BatchNorm'))) for (const dtype of ['float32', 'float64']) {
      expect(cases.some((c) => c.layer === layer && c.dtype === dtype), `${layer} ${dtype}`).toBe(true);
    }
  });

  for (const c of cases) {
    it(`${c.name} (${c.dtype})`, () => {
      replay(c);
    });
  }
});
