// Text output: one line per epoch while training, and the side-by-side table at the end.
import type { EpochResult, History } from './train.js';

const fmt = (v: number, digits = 4) => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

export function epochLine(r: EpochResult, epochs: number): string {
  const width = String(epochs).length;
  return `  epoch ${String(r.epoch).padStart(width)}/${epochs}  lr ${r.lr}  train loss ${fmt(r.trainLoss)}  ` +
    `train acc ${fmt(r.trainAccuracy)}  test acc ${fmt(r.testAccuracy)}  ${r.seconds.toFixed(1)} s`;
}

/** Both runs side by side, one row per epoch, then the totals. */
export function comparisonTable(withBN: History, withoutBN: History, withTitle = 'with BatchNorm1d'): string {
  const head = ['epoch', 'lr', 'loss', 'train acc', 'test acc', 'time s', '|', 'loss', 'train acc', 'test acc', 'time s'];
  const rows: string[][] = [];
  const epochs = Math.max(withBN.trainLoss.length, withoutBN.trainLoss.length);
  const cells = (h: History, i: number) => [fmt(h.trainLoss[i] ?? NaN), fmt(h.trainAccuracy[i] ?? NaN),
    fmt(h.testAccuracy[i] ?? NaN), (h.epochSeconds[i] ?? NaN).toFixed(1)];
  for (let i = 0; i < epochs; i++) rows.push([String(i + 1), String(withBN.lr[i] ?? withoutBN.lr[i] ?? ''), ...cells(withBN, i), '|', ...cells(withoutBN, i)]);
  rows.push(['total', '', '', '', '', withBN.seconds.toFixed(1), '|', '', '', '', withoutBN.seconds.toFixed(1)]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]) => r.map((v, c) => v.padStart(widths[c]!)).join('  ');
  const half = widths.slice(2, 6).reduce((a, b) => a + b + 2, -2);
  const title = ' '.repeat(widths[0]! + widths[1]! + 4) + withTitle.padEnd(half) + '  |  ' + 'without batch norm';
  return [title, line(head), line(head.map((h, c) => (h === '|' ? h : '-'.repeat(widths[c]!)))), ...rows.map(line)].join('\n');
}

/** The best test accuracy of a run and its epoch (1-based); NaN and 0 when no epoch has a finite value. */
export function bestTestAccuracy(h: History): { accuracy: number; epoch: number } {
  let accuracy = NaN, epoch = 0;
  h.testAccuracy.forEach((v, i) => {
    if (Number.isFinite(v) && (epoch === 0 || v > accuracy)) { accuracy = v; epoch = i + 1; }
  });
  return { accuracy, epoch };
}
