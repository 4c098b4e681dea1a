// The fixture replay (helpers/replay-core.ts) as a vitest assertion, against lib/. Shared by the BatchNorm and
// family parity tests.
import { expect } from 'vitest';
import * as nk from '../../lib/index.js';
import type { FixtureCase } from './fixtures.js';
import { buildLayer, replayMismatches, type ReplayLayer } from './replay-core.js';

export { typed, type ReplayLayer } from './replay-core.js';

export function replay(c: FixtureCase, layer: ReplayLayer = buildLayer(nk, c)): void {
  const mismatches = replayMismatches(nk, c, layer);
  if (mismatches.length) expect.fail(mismatches.join('\n'));
}
