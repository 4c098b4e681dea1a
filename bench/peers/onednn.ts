// oneDNN (Debian's libdnnl-dev), the best native peer: bench/peers/onednn.cpp, built on demand with g++ into
// bench/peer-deps/bin/ (ignored by git), timed in the same layout as normkit's case — nchw, nhwc (channels last;
// a 2-D batch as (N, C, 1, 1) nhwc) — and, for NCHW shapes, in oneDNN's own blocked layout too (nChw16c where it
// has a JIT kernel for it, nChw8c on AVX2: the harness says which). float32 only. Optional: reported as
// unavailable when the library or g++ is missing. runOnednnAB: the same-process A/B of bench/peers/onednn-ab.cpp.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';

export interface OnednnCase { key: string; shape: number[]; channelsLast: boolean; threads: number; reps: number }
export interface OnednnTimes { fwd: number; eval: number; bwd: number }

const HEADER = '/usr/include/oneapi/dnnl/dnnl.hpp';

export function onednnAvailable(): string | null {
  if (!existsSync(HEADER)) return 'libdnnl-dev is not installed (apt-get install libdnnl-dev)';
  try { execFileSync('g++', ['--version'], { stdio: 'ignore' }); } catch { return 'no g++ to build the harness'; }
  return null;
}

/** Builds `bin` from `sources` (the first is the harness) unless it is newer than every file in `deps`. */
function build(bin: string, sources: string[], deps: string[], flags: string[]): string {
  const newest = Math.max(...[...sources, ...deps].map((f) => statSync(f).mtimeMs));
  if (!existsSync(bin) || statSync(bin).mtimeMs < newest) {
    mkdirSync(join(bin, '..'), { recursive: true });
    execFileSync('g++', [...flags, '-std=c++17', '-fopenmp', ...sources, '-ldnnl', '-o', bin], { stdio: 'inherit' });
  }
  return bin;
}

function harness(root: string): string {
  return build(join(root, 'bench', 'peer-deps', 'bin', 'onednn'), [join(root, 'bench', 'peers', 'onednn.cpp')],
    [join(root, 'bench', 'peers', 'onednn-blocked.h')], ['-O2']);
}

/** (N, C, H, W) and the oneDNN layouts a normkit case is compared in: [same layout, blocked (NCHW only)]. */
function dims(c: OnednnCase): { nchw: number[]; layouts: Array<{ name: 'onednn' | 'onednn-blocked'; tag: string }> } {
  const s = c.shape, rank = s.length;
  if (rank === 2) return { nchw: [s[0]!, s[1]!, 1, 1], layouts: [{ name: 'onednn', tag: 'nhwc' }] };
  const spatial = c.channelsLast ? s.slice(1, rank - 1) : s.slice(2);
  const HW = [spatial[0] ?? 1, spatial.slice(1).reduce((a, b) => a * b, 1)];
  const C = c.channelsLast ? s[rank - 1]! : s[1]!;
  return { nchw: [s[0]!, C, HW[0]!, HW[1]!], layouts: c.channelsLast
    ? [{ name: 'onednn', tag: 'nhwc' }]
    : [{ name: 'onednn', tag: 'nchw' }, { name: 'onednn-blocked', tag: 'blocked' }] };
}

/** Times every case; returns key -> peer name -> times, the library version and the blocked layout it ran. */
export function runOnednn(root: string, cases: OnednnCase[]): { version: string; blocked: string; results: Map<string, Record<string, OnednnTimes>> } {
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
  let version = '', blocked = '';
  for (const line of out.trim().split('\n')) {
    const r = JSON.parse(line) as OnednnTimes & { key: string; version: string; layout: string };
    const { key, peer } = jobs[Number(r.key)]!;
    version = r.version;
    if (peer === 'onednn-blocked') blocked = r.layout;
    results.set(key, { ...results.get(key), [peer]: { fwd: r.fwd, eval: r.eval, bwd: r.bwd } });
  }
  return { version, blocked, results };
}

/** One case of the same-process A/B: medians in ms of normkit's kernel and oneDNN, called alternately. */
export interface OnednnABRow {
  key: string; isa: string; impl: string; blocked: string; nt_copy: number;
  normkit_fwd: number; onednn_fwd: number; normkit_eval: number; onednn_eval: number; normkit_bwd: number; onednn_bwd: number;
  blocked_fwd?: number; blocked_eval?: number; blocked_bwd?: number;
}

const MARCH: Record<string, string> = { baseline: 'x86-64', avx2: 'x86-64-v3', avx512: 'x86-64-v4' };

/** Why the same-process A/B cannot run here, or null. */
export function onednnABAvailable(isa: string): string | null {
  if (arch() !== 'x64') return 'x86-64 only (bench/peers/onednn-ab.cpp)';
  if (!MARCH[isa]) return `no build of the kernels for ISA ${isa}`;
  return onednnAvailable();
}

/**
 * bench/peers/onednn-ab.cpp, built with native/isa/kernels.cpp for `isa` (the addon's pick, with the addon's flags),
 * run over the cases (same layouts as runOnednn).
 */
export function runOnednnAB(root: string, cases: OnednnCase[], isa: string): OnednnABRow[] {
  const core = join(root, 'native', 'core');
  const bin = build(join(root, 'bench', 'peer-deps', 'bin', `onednn-ab-${isa}`),
    [join(root, 'bench', 'peers', 'onednn-ab.cpp'), join(root, 'native', 'isa', 'kernels.cpp')],
    [join(root, 'bench', 'peers', 'onednn-blocked.h'), join(root, 'native', 'kernels.h'), ...readdirSync(core).map((f) => join(core, f))],
    ['-O3', '-fno-math-errno', '-ffp-contract=off', `-march=${MARCH[isa]}`, '-mtune=generic', `-DNK_ISA=${isa}`]);
  const lines = cases.map((c, i) => {
    const d = dims(c);
    return [i, d.layouts[0]!.tag, ...d.nchw, c.threads, c.reps].join(' ');
  });
  const out = execFileSync(bin, { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 24 });
  return out.trim().split('\n').map((line) => {
    const r = JSON.parse(line) as OnednnABRow;
    return { ...r, key: cases[Number(r.key)]!.key };
  });
}
