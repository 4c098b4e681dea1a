// Prints the newest bench/results/*.json as the Markdown tables the README shows:
//   node dist/tools/bench/summary.js [file]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Row { shape: string; dtype: string; threads: number; op: string; normkitMs: number; ratio: number; copyMs: number; peers: Record<string, number | string> }
const dir = join(__dirname, '..', '..', '..', 'bench', 'results');
const file = process.argv[2] ?? join(dir, readdirSync(dir).filter((f) => f.endsWith('.json')).sort().at(-1)!);
const r = JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[]; cpu: string; cores: number; normkit: { simd: string }; torch: string | null };

const ms = (v: number, tiny: boolean) => (tiny ? `${(v * 1000).toFixed(1)} µs` : `${v.toFixed(1)} ms`);
const peer = (row: Row, name: string) => {
  const v = row.peers[name];
  return typeof v === 'number' ? `${(v / row.normkitMs).toFixed(1)}×` : v === undefined ? '–' : 'n/a';
};

console.log(`${r.cpu}, ${r.cores} cores, ${r.normkit.simd} kernels${r.torch ? `, PyTorch ${r.torch}` : ''}. float32 unless noted.\n`);
console.log('| shape | threads | forward train | eval | backward |');
console.log('|---|---|---|---|---|');
const key = (row: Row) => `${row.shape}|${row.dtype}|${row.threads}`;
const groups = new Map<string, Row[]>();
for (const row of r.rows) groups.set(key(row), [...(groups.get(key(row)) ?? []), row]);
for (const rows of groups.values()) {
  const [first] = rows, tiny = first!.shape.includes('tiny');
  const cell = (op: string) => {
    const row = rows.find((x) => x.op === op);
    if (!row) return '–';  // the family rows have no eval
    return tiny ? ms(row.normkitMs, true) : `${ms(row.normkitMs, false)} (${row.ratio.toFixed(2)}× copy)`;
  };
  const dtype = first!.dtype === 'float32' ? '' : ` ${first!.dtype}`;
  console.log(`| ${first!.shape}${dtype} | ${first!.threads} | ${cell('fwd')} | ${cell('eval')} | ${cell('bwd')} |`);
}
console.log('\nHow much slower the peers are than normkit (same shape, same op; 2 threads where they take a thread count):\n');
console.log('| shape | op | plain JS | tfjs-wasm | tfjs-cpu | onnxruntime-node | PyTorch |');
console.log('|---|---|---|---|---|---|---|');
const maxThreads = Math.max(...r.rows.map((x) => x.threads).filter((t) => t <= 2));
for (const row of r.rows.filter((x) => x.dtype === 'float32' && x.threads === maxThreads)) {
  console.log(`| ${row.shape} | ${row.op} | ${peer(row, 'js')} | ${peer(row, 'tfjs-wasm')} | ${peer(row, 'tfjs-cpu')} | ${peer(row, 'ort')} | ${peer(row, 'torch')} |`);
}
