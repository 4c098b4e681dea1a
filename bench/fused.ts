// The fused activation's rows: BatchNorm2d alone, + ReLU, + Add + ReLU (activation 'relu', forward(x, { residual })),
// training forward and backward through the layer, each as a ratio to a copy of the input (paired, as the main
// table). Targets (issue 15): ReLU adds ≤ 5 % to BatchNorm's time, the add one more read.
import { BatchNorm2d, setNumThreads, type FloatArray, type Tensor } from 'normkit';
import { paired, type Paired } from './timing.js';

type Copy = (s: FloatArray, d: FloatArray, t: number, streaming?: boolean) => void;

export interface FusedRow { shape: string; threads: number; form: string; fwd: Paired; bwd: Paired }

const FORMS = ['BN', 'BN+ReLU', 'BN+Add+ReLU'] as const;

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1664525 + 1013904223) >>> 0; a[i] = (s / 4294967296) * 4 - 2; }
  return a;
}

/** Rows for one NCHW float32 shape at each thread count. */
export function benchFused(shape: number[], threadCounts: number[], copy: Copy, reps: number): FusedRow[] {
  const n = shape.reduce((a, b) => a * b, 1), C = shape[1]!;
  const x: Tensor<Float32Array> = { data: fill(n, 1), shape }, dy = { data: fill(n, 2), shape }, r = { data: fill(n, 3), shape };
  const y = new Float32Array(n), dx = new Float32Array(n), dr = new Float32Array(n), dst = new Float32Array(n);
  const rows: FusedRow[] = [];
  for (const threads of threadCounts) {
    setNumThreads(threads);
    const c = () => copy(x.data, dst, threads), nt = () => copy(x.data, dst, threads, true);
    for (const form of FORMS) {
      const bn = new BatchNorm2d(C, form === 'BN' ? {} : { activation: 'relu' });
      const residual = form === 'BN+Add+ReLU' ? r : undefined;
      const fwd = paired(() => bn.forward(x, { out: y, residual }), c, nt, reps);
      bn.forward(x, { out: y, residual });
      const bwd = paired(() => bn.backward(dy, residual ? { out: dx, residualOut: dr } : { out: dx }), c, nt, reps);
      rows.push({ shape: `[${shape.join(',')}] NCHW float32`, threads, form, fwd, bwd });
    }
  }
  return rows;
}

export function printFused(rows: FusedRow[]): void {
  console.log('\nFused activation (BatchNorm2d training forward / backward through the layer, × copy of the input):');
  console.log('shape                          thr  form          fwd ms   fwd ×copy  vs BN    bwd ms   bwd ×copy  vs BN');
  for (const r of rows) {
    const base = rows.find((b) => b.shape === r.shape && b.threads === r.threads && b.form === 'BN')!;
    const rel = (a: Paired, b: Paired) => `${((a.ratio / b.ratio - 1) * 100).toFixed(1).padStart(5)}%`;
    console.log(`${r.shape.padEnd(30)} ${String(r.threads).padStart(3)}  ${r.form.padEnd(12)} ${r.fwd.ms.toFixed(2).padStart(7)} ` +
      `${r.fwd.ratio.toFixed(2).padStart(8)}×  ${rel(r.fwd, base.fwd)} ${r.bwd.ms.toFixed(2).padStart(7)} ${r.bwd.ratio.toFixed(2).padStart(8)}×  ${rel(r.bwd, base.bwd)}`);
  }
}
