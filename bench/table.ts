// A plain-text table: a header, a rule and the rows, each column padded to its widest cell.
export function printTable(header: string[], lines: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const show = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  show(header);
  show(widths.map((w) => '-'.repeat(w)));
  lines.forEach(show);
}
