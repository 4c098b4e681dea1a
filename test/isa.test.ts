// Every SIMD path this CPU supports (NORMKIT_ISA forces one; a child process each, since the choice is made once
// at load) agrees with the others and reports itself in buildInfo().
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildInfo } from '../lib/index.js';
import { expectClose } from './helpers/compare.js';

const root = join(__dirname, '..');

// A child that loads the built addon through the source tree's loader is awkward without a TS runner, so it
// drives the addon directly with the same kernel calls lib/ makes.
const CHILD = `
const nb = require(${JSON.stringify(join(root, 'build/Release/normkit.node'))});
const out = { isa: nb.info().isa, results: {} };
for (const [name, [P, A, B, K]] of Object.entries({ nchw: [1, 6, 5, 1237], rows: [1, 3001, 11, 1] })) {
  for (const Ctor of [Float32Array, Float64Array]) {
    const n = P * A * B * K, G = P * B;
    const x = new Ctor(n).map((_, i) => Math.sin(i * 0.37) * 3 + 100), dy = new Ctor(n).map((_, i) => Math.cos(i * 0.11));
    const mean = new Float64Array(G), m2 = new Float64Array(G);
    nb.moments(P, A, B, K, 2, x, mean, m2);
    const invstd = m2.map((v) => 1 / Math.sqrt(v / (A * K) + 1e-5)), y = new Ctor(n), dx = new Ctor(n);
    nb.normalize(P, A, B, K, 2, x, y, mean, invstd, new Float64Array(G).fill(0.5));
    const sdy = new Float64Array(G), sdx = new Float64Array(G);
    nb.backwardReduce(P, A, B, K, 2, dy, x, mean, sdy, sdx);
    nb.backwardApply(P, A, B, K, 2, dy, x, dx, mean, invstd, invstd.map((v, i) => -v * v * v * sdx[i] / (A * K)), invstd.map((v, i) => -v * sdy[i] / (A * K)));
    out.results[name + Ctor.name] = { mean: [...mean], m2: [...m2], y: [...y], dx: [...dx], sdy: [...sdy], sdx: [...sdx] };
  }
}
process.stdout.write(JSON.stringify(out));
`;

interface ChildOut { isa: string; results: Record<string, Record<string, number[]>> }

describe('SIMD dispatch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'normkit-isa-'));
  const script = join(dir, 'child.cjs');
  writeFileSync(script, CHILD);
  const runWith = (isa: string): ChildOut =>
    JSON.parse(execFileSync(process.execPath, [script], { env: { ...process.env, NORMKIT_ISA: isa }, encoding: 'utf8', maxBuffer: 1 << 28 })) as ChildOut;
  const supported = buildInfo().supportedSimd;

  it('picks the best supported path by default', () => {
    expect(supported[0]).toBe('baseline');
    expect(buildInfo().simd).toBe(process.env.NORMKIT_ISA && supported.includes(process.env.NORMKIT_ISA) ? process.env.NORMKIT_ISA : supported.at(-1));
  });

  it(`every supported path (${supported.join(', ')}) agrees with baseline`, () => {
    const base = runWith('baseline');
    expect(base.isa).toBe('baseline');
    for (const isa of supported.slice(1)) {
      const got = runWith(isa);
      expect(got.isa).toBe(isa);
      for (const [k, r] of Object.entries(base.results)) {
        const tol = k.endsWith('Float32Array') ? { rtol: 2e-6, atol: 2e-5 } : { rtol: 1e-12, atol: 1e-11 };
        for (const field of Object.keys(r)) expectClose(got.results[k]![field]!, r[field]!, tol, `${isa} ${k} ${field}`);
      }
    }
  });

  it('an unsupported NORMKIT_ISA value falls back to a path that runs', () => {
    expect(supported).toContain(runWith('sse9000').isa);
  });
});
