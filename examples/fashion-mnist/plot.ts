// The curves as a standalone SVG file, written by hand (a plotting dependency would be far bigger than this):
// left, the training loss per epoch; right, training accuracy (dashed) and test accuracy (solid); one color
// per network. Values that are not finite (a diverged run) are left out, breaking the line.
import type { History } from './train.js';

export interface Series {
  label: string;
  color: string;
  history: History;
}

const WIDTH = 960, HEIGHT = 450;
const PANEL = { width: 400, height: 300, top: 60, left: [70, 550] as const };

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A tick step of 1, 2 or 5 times a power of ten, at least x. */
function niceStep(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 5, 10].find((m) => m * p >= x * (1 - 1e-9)) ?? 10) * p;
}

interface Axis { min: number; max: number; ticks: number[] }

type Scale = (v: number) => number;

/** Frame, grid, ticks and title of one panel; `draw` gets the panel's scales and returns the curves. */
function panel(left: number, title: string, x: Axis, y: Axis, yFormat: (v: number) => string,
  draw: (sx: Scale, sy: Scale) => string[]): string {
  const { top, width, height } = PANEL;
  const sx = (v: number) => left + ((v - x.min) / (x.max - x.min)) * width;
  const sy = (v: number) => top + height - ((v - y.min) / (y.max - y.min)) * height;
  const parts: string[] = [`<text x="${left + width / 2}" y="${top - 14}" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`];
  for (const t of y.ticks) {
    parts.push(`<line x1="${left}" x2="${left + width}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e4e4e4"/>`,
      `<text x="${left - 8}" y="${sy(t) + 4}" text-anchor="end" font-size="12">${yFormat(t)}</text>`);
  }
  for (const t of x.ticks) {
    parts.push(`<text x="${sx(t)}" y="${top + height + 18}" text-anchor="middle" font-size="12">${t}</text>`);
  }
  parts.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`,
    `<text x="${left + width / 2}" y="${top + height + 38}" text-anchor="middle" font-size="13">epoch</text>`);
  return [...parts, ...draw(sx, sy)].join('\n');
}

/** A polyline with dots through the finite (epoch, value) points; values above `clampTop` are drawn at the top. */
function curve(values: readonly number[], color: string, dashed: boolean, clampTop: number, sx: Scale, sy: Scale): string[] {
  const out: string[] = [];
  let run: string[] = [];
  const flush = () => {
    if (run.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2.5"${dashed ? ' stroke-dasharray="7 5"' : ''} points="${run.join(' ')}"/>`);
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (!Number.isFinite(v)) { flush(); return; }
    const px = sx(i + 1).toFixed(1), py = sy(Math.min(v, clampTop)).toFixed(1);
    run.push(`${px},${py}`);
    out.push(`<circle cx="${px}" cy="${py}" r="3.5" fill="${dashed ? 'white' : color}" stroke="${color}" stroke-width="2"/>`);
  });
  flush();
  return out;
}

/** The SVG document for the given runs. */
export function renderPlot(series: readonly Series[], subtitle: string): string {
  const epochs = Math.max(1, ...series.map((s) => s.history.trainLoss.length));
  const x: Axis = { min: epochs > 1 ? 1 : 0, max: epochs > 1 ? epochs : 2, ticks: [] };
  const step = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 1; e <= epochs; e += step) x.ticks.push(e);

  // Loss axis from 0 to the largest finite loss, but at most 5: a diverging run should not flatten the others.
  const finiteLosses = series.flatMap((s) => s.history.trainLoss).filter(Number.isFinite);
  const lossMax = Math.min(5, Math.max(0.1, ...finiteLosses));
  const lossStep = niceStep(lossMax / 5);
  const lossTop = Math.ceil(lossMax / lossStep - 1e-9) * lossStep;
  const lossTicks = Array.from({ length: Math.round(lossTop / lossStep) + 1 }, (_, i) => i * lossStep);
  const lossAxis: Axis = { min: 0, max: lossTop, ticks: lossTicks };
  const lossDigits = Math.max(1, -Math.floor(Math.log10(lossStep)));
  // Accuracy axis from the lowest accuracy seen (rounded down to 0.1) to 1, so the differences are visible.
  const accs = series.flatMap((s) => [...s.history.trainAccuracy, ...s.history.testAccuracy]).filter(Number.isFinite);
  const accMin = Math.max(0, Math.floor(Math.min(0.9, ...accs) * 10) / 10);
  const accTicks: number[] = [];
  for (let t = accMin; t <= 1 + 1e-9; t += accMin >= 0.6 ? 0.05 : 0.1) accTicks.push(Number(t.toFixed(2)));
  const accAxis: Axis = { min: accMin, max: 1, ticks: accTicks };


  const legend: string[] = [];
  let lx = 70;
  for (const s of series) {
    legend.push(`<line x1="${lx}" x2="${lx + 28}" y1="${HEIGHT - 22}" y2="${HEIGHT - 22}" stroke="${s.color}" stroke-width="3"/>`,
      `<text x="${lx + 34}" y="${HEIGHT - 18}" font-size="13">${escapeXml(s.label)}</text>`);
    lx += 40 + 8 * s.label.length;
  }
  legend.push(`<text x="${lx + 10}" y="${HEIGHT - 18}" font-size="13" fill="#555">right: dashed = train accuracy, solid = test accuracy</text>`);

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="13" fill="#333">${escapeXml(subtitle)}</text>`,
    panel(PANEL.left[0], 'training loss', x, lossAxis, (v) => v.toFixed(lossDigits),
      (sx, sy) => series.flatMap((s) => curve(s.history.trainLoss, s.color, false, lossTop, sx, sy))),
    panel(PANEL.left[1], 'accuracy', x, accAxis, (v) => v.toFixed(2),
      (sx, sy) => series.flatMap((s) => [
        ...curve(s.history.trainAccuracy, s.color, true, 1, sx, sy),
        ...curve(s.history.testAccuracy, s.color, false, 1, sx, sy),
      ])),
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}
