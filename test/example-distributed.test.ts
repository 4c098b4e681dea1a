// The README's Distributed example (examples/distributed.ts, compiled to dist/tools by npm run build) runs: four
// worker ranks with uneven shards, one empty, train a SyncBatchNorm that ends where BatchNorm2d on the whole
// batches ends.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('examples/distributed.ts', () => {
  it('runs, and its ranks agree with BatchNorm2d on the whole batch', () => {
    const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'tools', 'examples', 'distributed.js')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/bit-identical: true/);
    const diff = Number(/max \|difference\| (\S+)/.exec(r.stdout)?.[1]);
    expect(diff).toBeLessThan(1e-4);
  });
});
