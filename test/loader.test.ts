// The loader: one error listing every attempt and what to do, instead of a crash, when no binary loads.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');

function load(env: Record<string, string>): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, ['-e', "console.log(require(process.argv[1]).buildInfo().simd)", join(root, 'dist/cjs/index.js')],
    { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('the native loader', () => {
  it('names the file it tried, why it failed and what to do', () => {
    const r = load({ NORMKIT_ADDON: '/nonexistent/normkit.node' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/normkit: could not load the native addon for linux-x64/);
    expect(r.stderr).toMatch(/\/nonexistent\/normkit\.node: not found/);
    expect(r.stderr).toMatch(/Possible solutions:/);
    expect(r.stderr).toMatch(/npm run build:native/);
  });

  it('reports a file that is not a valid addon without crashing', () => {
    const r = load({ NORMKIT_ADDON: join(root, 'package.json') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/package\.json: loaded, but it is not a normkit addon/);
    expect(r.stderr).not.toMatch(/Segmentation|Aborted/);
  });

  it('loads the development build by default', () => {
    const r = load({});
    expect(r.status).toBe(0);
    expect(['baseline', 'avx2', 'avx512']).toContain(r.stdout.trim());
  });
});
