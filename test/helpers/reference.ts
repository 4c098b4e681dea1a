// A plain float64 JavaScript batch norm, written from the formulas (not from normkit's code), for property tests
// over random shapes that fixtures cannot enumerate. Channels-first or channels-last, forward and backward.
export interface RefResult { y: Float64Array; mean: Float64Array; varBiased: Float64Array; varUnbiased: Float64Array }

function indexer(shape: readonly number[], channelsLast: boolean) {
  const rank = shape.length, C = shape[channelsLast ? rank - 1 : 1]!;
  const S = channelsLast ? 1 : shape.slice(2).reduce((a, b) => a * b, 1);
  return { C, channelOf: (i: number) => (channelsLast ? i % C : Math.floor(i / S) % C) };
}

export function refForward(x: ArrayLike<number>, shape: readonly number[], channelsLast: boolean, eps: number,
  weight?: ArrayLike<number>, bias?: ArrayLike<number>): RefResult {
  const { C, channelOf } = indexer(shape, channelsLast);
  const n = new Float64Array(C), mean = new Float64Array(C), m2 = new Float64Array(C);
  for (let i = 0; i < x.length; i++) { const c = channelOf(i); n[c]!++; mean[c]! += x[i]!; }
  for (let c = 0; c < C; c++) mean[c]! /= n[c]!;
  for (let i = 0; i < x.length; i++) { const c = channelOf(i); m2[c]! += (x[i]! - mean[c]!) ** 2; }
  const varBiased = m2.map((v, c) => v / n[c]!), varUnbiased = m2.map((v, c) => v / (n[c]! - 1));
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = channelOf(i);
    y[i] = ((x[i]! - mean[c]!) / Math.sqrt(varBiased[c]! + eps)) * (weight ? weight[c]! : 1) + (bias ? bias[c]! : 0);
  }
  return { y, mean, varBiased, varUnbiased };
}

/** Training-mode gradients of sum(y * dy). */
export function refBackward(x: ArrayLike<number>, dy: ArrayLike<number>, shape: readonly number[], channelsLast: boolean,
  eps: number, weight?: ArrayLike<number>): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { C, channelOf } = indexer(shape, channelsLast);
  const { mean, varBiased } = refForward(x, shape, channelsLast, eps);
  const n = new Float64Array(C), sdy = new Float64Array(C), sdyxh = new Float64Array(C);
  const xhat = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = channelOf(i);
    xhat[i] = (x[i]! - mean[c]!) / Math.sqrt(varBiased[c]! + eps);
    n[c]!++; sdy[c]! += dy[i]!; sdyxh[c]! += dy[i]! * xhat[i]!;
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = channelOf(i), w = weight ? weight[c]! : 1, inv = 1 / Math.sqrt(varBiased[c]! + eps);
    dx[i] = (w * inv / n[c]!) * (n[c]! * dy[i]! - sdy[c]! - xhat[i]! * sdyxh[c]!);
  }
  return { dx, dweight: sdyxh, dbias: sdy };
}
