// The same-process A/B against oneDNN (bench/peers/onednn-ab.cpp): normkit's kernel table and oneDNN's primitives
// called alternately on the same buffers, with a non-temporal copy of the same bytes in each round. The main table's
// oneDNN columns come from a separate process timed before normkit's rows; on a shared host those can be minutes
// and 1.5x of memory bandwidth apart. This table is the one to read for "no slower than oneDNN in the same layout".
import { runOnednnAB, type OnednnABRow, type OnednnCase } from './peers/onednn.js';
import type { BenchShape } from './shapes.js';
import { printTable } from './table.js';

export function benchOnednnAB(root: string, shapes: BenchShape[], threadCounts: number[], quick: boolean, isa: string): OnednnABRow[] {
  const cases: OnednnCase[] = [];
  for (const s of shapes.filter((x) => !x.family && !x.tiny)) for (const threads of threadCounts) {
    cases.push({ key: `${s.name}|${threads}`, shape: s.shape, channelsLast: s.channelsLast, threads, reps: quick ? 5 : 11 });
  }
  return runOnednnAB(root, cases, isa);
}

export function printOnednnAB(rows: OnednnABRow[]): void {
  if (rows.length === 0) return;
  const r0 = rows[0]!;
  const blocked = rows.find((r) => r.blocked)?.blocked ?? 'blocked';
  console.log(`\noneDNN in the same process, called alternately with normkit's ${r0.isa} kernels on the same buffers (medians; ` +
    `÷ normkit: oneDNN's time over normkit's, above 1 = normkit faster):`);
  const header = ['shape', 'thr', 'op', 'normkit', '× nt-copy', 'oneDNN same layout', `oneDNN ${blocked}`, 'nt-copy'];
  const lines: string[][] = [];
  for (const r of rows) {
    const [shape, thr] = r.key.split('|');
    for (const op of ['fwd', 'eval', 'bwd'] as const) {
      const nk = r[`normkit_${op}`], same = r[`onednn_${op}`], blk = r[`blocked_${op}`];
      lines.push([shape!, thr!, op, `${nk.toFixed(2)} ms`, `${(nk / r.nt_copy).toFixed(2)}×`,
        `${same.toFixed(2)} ms (${(same / nk).toFixed(2)})`, blk === undefined ? '-' : `${blk.toFixed(2)} ms (${(blk / nk).toFixed(2)})`,
        `${r.nt_copy.toFixed(2)} ms`]);
    }
  }
  printTable(header, lines);
  console.log(`oneDNN implementations: ${[...new Set(rows.map((r) => r.impl))].join(', ')}; buffers allocated as V8 allocates a ` +
    'large ArrayBuffer (calloc); each timed call follows an untimed call of the same case.');
}
