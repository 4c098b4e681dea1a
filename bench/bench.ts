// npm run bench: normkit against the peers a Node user would pick (a plain-JS loop, tfjs cpu and wasm,
// onnxruntime-node) and against the memory roofline (a memcpy of the same bytes over the same number of threads),
// all in one run. Prints medians and ratios; writes bench/results/bench-<time>.json.
//   node dist/tools/bench/bench.js [--quick] [--shapes 0,2] [--threads 1,2] [--no-peers] [--sync-only] [--no-sync]
//     [--no-fused] [--fused-only] [--onednn-ab]
// The SyncBatchNorm rows (2 worker ranks) come last: bench/sync.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, buildInfo, functional as F, setNumThreads, type FloatArray } from 'normkit';
import { familyOps } from './family.js';
import { jsBackward, jsEval, jsForwardTrain, layoutOf } from './peers/js-loop.js';
import { onednnABAvailable, onednnAvailable, runOnednn, type OnednnABRow, type OnednnCase, type OnednnTimes } from './peers/onednn.js';
import { benchOnednnAB, printOnednnAB } from './onednn-ab.js';
import { onnxEval } from './peers/onnx.js';
import { loadTfjs, tfjsOps } from './peers/tfjs.js';
import { runTorch, torchAvailable, type TorchCase } from './peers/torch.js';
import { channels, numel, SHAPES, type BenchShape } from './shapes.js';
import { batched, median, paired, repeat, timeOnce } from './timing.js';
import { benchSync, printSync, type SyncBench } from './sync.js';
import { benchFused, printFused, type FusedRow } from './fused.js';
import { printTable as printColumns } from './table.js';

const root = join(__dirname, '..', '..', '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const list = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1]!.split(',').map(Number) : null; };
const quick = flag('--quick');
const REPS = quick ? 5 : 11, PEER_REPS = quick ? 1 : 3, TINY_REPS = quick ? 500 : 3000;
const threadCounts = list('--threads') ?? [...new Set([1, Math.min(2, cpus().length), cpus().length])];
const shapes = (list('--shapes') ?? SHAPES.map((_, i) => i)).map((i) => SHAPES[i]!);
const OPS = ['fwd', 'eval', 'bwd'] as const;
type Op = typeof OPS[number];

// The internal binding's memcpy over OpenMP threads: the roofline.
const nativeBinding = (require(join(root, 'dist/cjs/binding.js')) as { native(): { copy(s: FloatArray, d: FloatArray, t: number, streaming?: boolean): void } }).native();
const peersRequire = createRequire(join(root, 'bench', 'peer-deps', 'package.json'));

interface Row {
  shape: string; dtype: string; threads: number; op: Op;
  normkitMs: number; copyMs: number; ratio: number; ntCopyMs: number; ntRatio: number; copy1Ms: number;
  peers: Record<string, number | string>;
}
const rows: Row[] = [];
const peerStatus: Record<string, string> = {};

function random(Ctor: Float32ArrayConstructor | Float64ArrayConstructor, n: number, seed: number): FloatArray {
  const a = new Ctor(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = (s / 4294967296) * 4 - 2 + (i % 7); }
  return a;
}

async function tryPeer<T>(name: string, f: () => Promise<T>): Promise<T | string> {
  try { return await f(); } catch (e) {
    const msg = (e as Error).message.split('\n')[0]!.slice(0, 120);
    peerStatus[name] ??= `failed: ${msg}`;
    return `failed: ${msg}`;
  }
}

// Phase 'normkit' measures normkit on an otherwise idle process and adds the rows; phase 'peers' (run after every
// shape's normkit phase, so no peer runtime's threads are around while normkit is timed) fills in the peers.
type NativePeers = Map<string, Record<string, Record<Op, number>>>;

async function benchShape(s: BenchShape, dtype: 'float32' | 'float64', native: NativePeers, phase: 'normkit' | 'peers') {
  const Ctor = dtype === 'float32' ? Float32Array : Float64Array, n = numel(s.shape), C = channels(s);
  const x = random(Ctor, n, 1), dy = random(Ctor, n, 2), y = new Ctor(n), dx = new Ctor(n), dst = new Ctor(n);
  const tensor = { data: x, shape: s.shape }, dyT = { data: dy, shape: s.shape };
  const rm = new Ctor(C), rv = new Ctor(C).fill(1), weight = new Ctor(C).fill(1), bias = new Ctor(C);
  const batchNormOps = (): Record<Op, () => unknown> => {
    const saved = F.batchNorm(tensor, { training: true, weight, bias, channelsLast: s.channelsLast });
    return {
      fwd: () => F.batchNorm(tensor, { training: true, runningMean: rm, runningVar: rv, weight, bias, channelsLast: s.channelsLast, out: y }),
      eval: () => F.batchNorm(tensor, { training: false, runningMean: rm, runningVar: rv, weight, bias, channelsLast: s.channelsLast, out: y }),
      bwd: () => F.batchNormBackward(dyT, tensor, { weight, saveMean: saved.saveMean, saveInvstd: saved.saveInvstd, channelsLast: s.channelsLast, out: dx }),
    };
  };
  // The tiny rows time the layer API (what a network calls: BatchNorm2d.forward/backward with `out`), where call
  // overhead is everything; the others the functional ops.
  const layerOps = (): Record<Op, () => unknown> => {
    const Layer = s.shape.length === 5 ? BatchNorm3d : s.shape.length === 4 ? BatchNorm2d : BatchNorm1d;
    const train = new Layer(C, { dtype, channelsLast: s.channelsLast }), evalLayer = new Layer(C, { dtype, channelsLast: s.channelsLast });
    evalLayer.eval();
    train.forward(tensor, { out: y });
    return {
      fwd: () => train.forward(tensor, { out: y }),
      eval: () => evalLayer.forward(tensor, { out: y }),
      bwd: () => train.backward(dyT, { out: dx }),
    };
  };
  // The family rows have no eval op and no peers (the peers below run batch norm).
  if (s.family && phase === 'peers') return;
  const ops: Partial<Record<Op, () => unknown>> = s.family ? familyOps(s, x, dy, y, dx) : s.tiny ? layerOps() : batchNormOps();

  if (phase === 'normkit') {
    for (const threads of threadCounts) {
      setNumThreads(threads);
      const copy = () => nativeBinding.copy(x, dst, threads);
      const ntCopy = () => nativeBinding.copy(x, dst, threads, true);
      const copy1 = () => nativeBinding.copy(x, dst, 1);
      const copy1Ms = median(Array.from({ length: s.tiny ? 200 : 5 }, () => timeOnce(copy1)));
      for (const op of OPS) {
        const f = ops[op];
        if (!f) continue;
        const p = paired(f, copy, ntCopy, s.tiny ? TINY_REPS : REPS);
        if (s.tiny) p.ms = batched(f, TINY_REPS / 10, 100);  // no ratio is shown for the tiny rows
        const t = native.get(`${s.name}|${dtype}|${threads}`) ?? {};
        rows.push({ shape: s.name, dtype, threads, op, normkitMs: p.ms, copyMs: p.copyMs, ratio: p.ratio, ntCopyMs: p.ntCopyMs, ntRatio: p.ntRatio, copy1Ms,
          peers: Object.fromEntries(Object.entries(t).map(([peer, times]) => [peer, times[op]])) });
      }
    }
    return;
  }
  // Then the peers. Those without a thread count are measured once per shape and dtype.
  const peers: Record<Op, Record<string, number | string>> = { fwd: {}, eval: {}, bwd: {} };
  {
    const l = layoutOf(s.shape, s.channelsLast);
    const st = jsForwardTrain(x, y, l, 1e-5);
    const reps = s.tiny ? 200 : PEER_REPS;
    peers.fwd.js = await repeat(() => jsForwardTrain(x, y, l, 1e-5), reps);
    peers.eval.js = await repeat(() => jsEval(x, y, l, st.mean, st.invstd), reps);
    peers.bwd.js = await repeat(() => jsBackward(dy, x, dx, l, st.mean, st.invstd), reps);
    for (const backend of ['wasm', 'cpu']) {
      const name = `tfjs-${backend}`;
      if (dtype !== 'float32' || s.shape.length > 4) { for (const op of OPS) peers[op][name] = dtype !== 'float32' ? 'no float64' : 'rank > 4'; continue; }
      const nhwc = s.channelsLast || s.shape.length === 2 ? s.shape : [s.shape[0]!, ...s.shape.slice(2), s.shape[1]!];
      const t = await tryPeer(name, async () => {
        const tf = await loadTfjs(peersRequire);
        return tfjsOps(tf, backend, nhwc, x as Float32Array, dy as Float32Array);
      });
      if (typeof t === 'string') { for (const op of OPS) peers[op][name] = t; continue; }
      const budget = backend === 'cpu' ? 15_000 : 20_000;
      for (const op of OPS) peers[op][name] = await repeat(() => t[op](), s.tiny ? 100 : backend === 'cpu' ? 1 : PEER_REPS, budget);
      t.dispose();
      peerStatus[name] ??= 'ok';
    }
  }
  {
    for (const threads of threadCounts) {
      if (s.channelsLast) { peers.eval[`ort@${threads}`] = 'NCHW only'; continue; }
      const run = await tryPeer('onnxruntime-node', () => onnxEval(peersRequire, s.shape, x, threads));
      peers.eval[`ort@${threads}`] = typeof run === 'string' ? run : await repeat(run, s.tiny ? 500 : PEER_REPS * 2);
      if (typeof run !== 'string') peerStatus['onnxruntime-node'] ??= 'ok';
    }
  }
  for (const row of rows.filter((r) => r.shape === s.name && r.dtype === dtype)) {
    const own = Object.entries(peers[row.op]).filter(([k]) => !k.startsWith('ort@'));
    const ort = peers[row.op][`ort@${row.threads}`];
    row.peers = { ...Object.fromEntries(own), ...(ort !== undefined ? { ort } : {}), ...row.peers };
  }
}

function fmt(ms: number, tiny: boolean): string {
  return tiny ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`;
}

function printTable() {
  const peerNames = ['js', 'tfjs-wasm', 'tfjs-cpu', 'ort', 'torch', 'torch-module', 'onednn', 'onednn-blocked'];
  const header = ['shape', 'dtype', 'thr', 'op', 'normkit', '× copy', '× nt-copy', 'copy(thr)', 'nt-copy(thr)', 'copy(1)', ...peerNames.map((p) => `${p} (×slower)`)];
  const lines = rows.map((r) => {
    const tiny = r.shape.includes('tiny');
    const peer = (name: string) => {
      const v = r.peers[name];
      if (v === undefined) return '-';
      if (typeof v === 'string') return v.length > 14 ? `${v.slice(0, 13)}…` : v;
      return `${fmt(v, tiny)} (${(v / r.normkitMs).toFixed(1)}×)`;
    };
    return [r.shape, r.dtype, String(r.threads), r.op, fmt(r.normkitMs, tiny), tiny ? '-' : `${r.ratio.toFixed(2)}×`,
      tiny ? '-' : `${r.ntRatio.toFixed(2)}×`, fmt(r.copyMs, tiny), fmt(r.ntCopyMs, tiny), fmt(r.copy1Ms, tiny), ...peerNames.map(peer)];
  });
  printColumns(header, lines);
}

async function main() {
  const info = buildInfo();
  if (flag('--sync-only')) { printSync(await benchSync(root, quick)); return; }
  // The fused activation's rows, on the headline ResNet layer (or [16,64,56,56] with --quick).
  const fusedRows = (): FusedRow[] => benchFused(quick ? [16, 64, 56, 56] : [64, 128, 56, 56], threadCounts, nativeBinding.copy, REPS);
  if (flag('--fused-only')) { printFused(fusedRows()); return; }
  // The same-process A/B against oneDNN (bench/onednn-ab.ts); alone with --onednn-ab, after the main table otherwise.
  const onednnAB = (): OnednnABRow[] | null => {
    const missing = flag('--no-peers') ? 'skipped (--no-peers)' : onednnABAvailable(info.simd);
    if (missing) { peerStatus['onednn-ab'] = `not run: ${missing}`; return null; }
    try { return benchOnednnAB(root, shapes, threadCounts, quick, info.simd); } catch (e) {
      peerStatus['onednn-ab'] = `failed: ${(e as Error).message.split('\n')[0]}`;
      return null;
    }
  };
  if (flag('--onednn-ab')) { const rows = onednnAB(); if (rows) printOnednnAB(rows); else console.log(`onednn-ab: ${peerStatus['onednn-ab']}`); return; }
  console.log(`normkit ${info.version}, ${info.simd} kernels, threads ${threadCounts.join('/')} of ${cpus().length} cores${quick ? ', --quick' : ''}`);
  // The native peers (PyTorch, oneDNN) run first, in their own processes, before anything of normkit's is timed.
  const native: NativePeers = new Map();
  const addNative = (key: string, peer: string, times: Record<Op, number>) => native.set(key, { ...native.get(key), [peer]: times });
  const torchMissing = flag('--no-peers') ? 'skipped (--no-peers)' : torchAvailable();
  let torchVersion: string | null = null;
  if (!torchMissing) {
    const cases: TorchCase[] = [];
    for (const s of shapes.filter((x) => !x.family)) for (const dtype of ['float32', 'float64']) for (const threads of threadCounts) {
      cases.push({ key: `${s.name}|${dtype}|${threads}`, shape: s.shape, channelsLast: s.channelsLast, dtype, threads, reps: s.tiny ? 2000 : quick ? 3 : 5,
        module: s.tiny === true });
    }
    try {
      const r = runTorch(cases);
      torchVersion = r.version;
      for (const t of r.results) {
        addNative(t.key, 'torch', { fwd: t.fwd, eval: t.eval, bwd: t.bwd });
        if (t.module) addNative(t.key, 'torch-module', t.module);
      }
      peerStatus.torch = `ok (PyTorch ${r.version}, run by /usr/bin/python3 before the rest)`;
    } catch (e) { peerStatus.torch = `failed: ${(e as Error).message.split('\n')[0]}`; }
  } else peerStatus.torch = `not run: ${torchMissing}`;
  const dnnlMissing = flag('--no-peers') ? 'skipped (--no-peers)' : onednnAvailable();
  if (!dnnlMissing) {
    const cases: OnednnCase[] = [];
    for (const s of shapes.filter((x) => !x.family)) for (const threads of threadCounts) {
      cases.push({ key: `${s.name}|float32|${threads}`, shape: s.shape, channelsLast: s.channelsLast, threads, reps: s.tiny ? 2000 : quick ? 3 : 7 });
    }
    try {
      const r = runOnednn(root, cases);
      for (const [key, peers] of r.results) for (const [peer, t] of Object.entries(peers)) addNative(key, peer, t as OnednnTimes);
      peerStatus.onednn = `ok (oneDNN ${r.version}; onednn = the same layout, onednn-blocked = its blocked layout ${r.blocked || '(no NCHW shape run)'})`;
    } catch (e) { peerStatus.onednn = `failed: ${(e as Error).message.split('\n')[0]}`; }
  } else peerStatus.onednn = `not run: ${dnnlMissing}`;
  for (const phase of ['normkit', 'peers'] as const) {
    if (phase === 'peers' && flag('--no-peers')) break;
    for (const s of shapes) for (const dtype of ['float32', 'float64'] as const) {
      process.stderr.write(`  ${phase}: ${s.name} ${dtype}…\n`);
      await benchShape(s, dtype, native, phase);
    }
  }
  printTable();
  const ab = onednnAB();
  if (ab) printOnednnAB(ab);
  const fused = flag('--no-fused') ? null : fusedRows();
  if (fused) printFused(fused);
  const sync: SyncBench | null = flag('--no-sync') ? null : await benchSync(root, quick);
  if (sync) printSync(sync);
  console.log('\nPeers:', Object.entries(peerStatus).map(([k, v]) => `${k}: ${v}`).join('; ') || 'none run');
  console.log('Ratios: median over back-to-back (copy, nt-copy, kernel) triples; copy = memcpy of the input bytes over the same threads,');
  console.log('nt-copy = the same copy with non-temporal stores (what a kernel that streams its output moves: no read-for-ownership).');
  console.log('tfjs runs every shape in its channels-last form (its batchNorm normalizes the last axis); ort is eval-only (inference).');
  console.log('The tiny rows time normkit\'s layer API (BatchNorm2d.forward / backward with out); torch = F.batch_norm (the ATen call),');
  console.log('torch-module = nn.BatchNorm2d called as a module (its backward is autograd\'s, as torch).');
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ normkit: info, torch: torchVersion, cores: cpus().length, cpu: cpus()[0]?.model, peers: peerStatus, rows, onednnAB: ab, fused, sync }, null, 2));
  console.log(`JSON: ${file}`);
  console.log('');
  spawnSync(process.execPath, [join(__dirname, 'mpi-allreduce.js')], { stdio: 'inherit' });
}

main().catch((e: unknown) => { console.error(e); process.exit(1); });
