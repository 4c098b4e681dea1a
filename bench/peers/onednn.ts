// oneDNN (Debian's libdnnl-dev), the best native peer: bench/peers/onednn.cpp, built on demand with g++ into
// bench/peer-deps/bin/ (ignored by git), timed in the same layout as normkit's case — nchw, nhwc (channels last;
// a 2-D batch as (N, C, 1, 1) nhwc) — and, for NCHW shapes, in oneDNN's own blocked layout nChw16c too.
// float32 only. Optional: reported as unavailable when the library or g++ is missing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface OnednnCase { key: string; shape: number[]; channelsLast: boolean; threads: number; reps: number }
export interface OnednnTimes { fwd: number; eval: number; bwd: number }

const HEADER = '/usr/include/oneapi/dnnl/dnnl.hpp';

export function onednnAvailable(): string | null {
  if (!existsSync(HEADER)) return 'libdnnl-dev is not installed (apt-get install libdnnl-dev)';
  try { execFileSync('g++', ['--version'], { stdio: 'ignore' }); } catch { return 'no g++ to build the harness'; }
  return null;
}

function harness(root: string): string {
  const src = join(root, 'bench', 'peers', 'onednn.cpp'), bin = join(root, 'bench', 'peer-deps', 'bin', 'onednn');
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(bin, '..'), { recursive: true });
    execFileSync('g++', ['-O2', '-std=c++17', '-fopenmp', src, '-ldnnl', '-o', bin], { stdio: 'inherit' });
  }
  return bin;
}

/** (N, C, H, W) and the oneDNN layouts a normkit case is compared in: [same layout, blocked (NCHW only)]. */
function dims(c: OnednnCase): { nchw: number[]; layouts: Array<{ name: 'onednn' | 'onednn-16c'; tag: string }> } {
  const s = c.shape, rank = s.length;
  if (rank === 2) return { nchw: [s[0]!, s[1]!, 1, 1], layouts: [{ name: 'onednn', tag: 'nhwc' }] };
  const spatial = c.channelsLast ? s.slice(1, rank - 1) : s.slice(2);
  const HW = [spatial[0] ?? 1, spatial.slice(1).reduce((a, b) => a * b, 1)];
  const C = c.channelsLast ? s[rank - 1]! : s[1]!;
  return { nchw: [s[0]!, C, HW[0]!, HW[1]!], layouts: c.channelsLast
    ? [{ name: 'onednn', tag: 'nhwc' }]
    : [{ name: 'onednn', tag: 'nchw' }, { name: 'onednn-16c', tag: 'nChw16c' }] };
}

/** Times every case; returns key -> peer name -> times, and the library version. */
export function runOnednn(root: string, cases: OnednnCase[]): { version: string; results: Map<string, Record<string, OnednnTimes>> } {
  // The harness reads whitespace-separated fields, so each line carries an index into `jobs`, not the key.
  const lines: string[] = [], jobs: Array<{ key: string; peer: string }> = [];
  for (const c of cases) {
    const d = dims(c);
    for (const l of d.layouts) {
      lines.push([jobs.length, l.tag, ...d.nchw, c.threads, c.reps].join(' '));
      jobs.push({ key: c.key, peer: l.name });
    }
  }
  const out = execFileSync(harness(root), { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 24 });
  const results = new Map<string, Record<string, OnednnTimes>>();
  let version = '';
  for (const line of out.trim().split('\n')) {
    const r = JSON.parse(line) as OnednnTimes & { key: string; version: string };
    const { key, peer } = jobs[Number(r.key)]!;
    version = r.version;
    results.set(key, { ...results.get(key), [peer]: { fwd: r.fwd, eval: r.eval, bwd: r.bwd } });
  }
  return { version, results };
}
