// The parity and bad-input check that runs outside vitest: under every supported Node (18.17 up; vitest itself
// needs 20) and under the arm64 Node in qemu. Plain CommonJS after `npm run build` (dist/tools/test/platform/run.js):
//   <node> dist/tools/test/platform/run.js <installed normkit directory> <fixtures directory> [--digests]
// Replays every PyTorch fixture case (BatchNorm and the family) through the installed package, runs the bad-input
// checks, and prints one JSON line: { node, arch, simd, cases, checks, failures[], digests? }. With --digests it
// adds a SHA-256 per case over every output and state array's bytes, so two builds can be compared bit for bit.
import { createHash } from 'node:crypto';
import type * as Normkit from '../../lib/index.js';
import { loadCases } from '../helpers/fixtures.js';
import { buildLayer, replayMismatches } from '../helpers/replay-core.js';
import { BAD_INPUTS } from './bad-inputs.js';

const [pkgDir, fixtures] = process.argv.slice(2);
if (!pkgDir || !fixtures) {
  console.error('usage: run.js <installed normkit directory> <fixtures directory> [--digests]');
  process.exit(2);
}
const nk = require(pkgDir) as typeof Normkit;
const failures: string[] = [];
const digests: Record<string, string> = {};
const cases = [...loadCases('batch-norm.json.gz', fixtures), ...loadCases('family.json.gz', fixtures)];
for (const c of cases) {
  const id = `${c.name} (${c.dtype})`;
  const hash = createHash('sha256');
  const bytes = (a: ArrayLike<number>) => (ArrayBuffer.isView(a) ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength) : Float64Array.from(a));
  try {
    for (const m of replayMismatches(nk, c, buildLayer(nk, c), (_, got) => hash.update(bytes(got)))) failures.push(`${id}: ${m}`);
  } catch (e) {
    failures.push(`${id}: threw ${(e as Error).stack ?? String(e)}`);
  }
  digests[id] = hash.digest('hex');
}
for (const check of BAD_INPUTS) {
  const problem = check.run(nk);
  if (problem) failures.push(`bad input, ${check.name}: ${problem}`);
}
console.log(JSON.stringify({
  node: process.version, arch: process.arch, simd: nk.buildInfo().simd, cases: cases.length, checks: BAD_INPUTS.length,
  failures, ...(process.argv.includes('--digests') ? { digests } : {}),
}));
