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

/**
 * Which elements form a normalization group and which affine parameter each element uses — the one thing that
 * differs between BatchNorm (group = channel), InstanceNorm (group = sample × channel), GroupNorm (group = sample ×
 * group of channels, parameter = channel) and LayerNorm/RMSNorm (group = row, parameter = position in the row).
 * Written from the layers' definitions by index arithmetic, not from normkit's View4.
 */
export interface Grouping { groups: number; groupOf(i: number): number; paramOf(i: number): number; params: number }

export function byChannel(shape: readonly number[], channelsLast: boolean): Grouping {
  const { C, channelOf } = indexer(shape, channelsLast);
  return { groups: C, groupOf: channelOf, paramOf: channelOf, params: C };
}

export function bySampleChannel(shape: readonly number[]): Grouping {
  const C = shape[1]!, S = shape.slice(2).reduce((a, b) => a * b, 1);
  return { groups: shape[0]! * C, groupOf: (i) => Math.floor(i / S), paramOf: (i) => Math.floor(i / S) % C, params: C };
}

export function bySampleGroup(shape: readonly number[], G: number): Grouping {
  const C = shape[1]!, S = shape.slice(2).reduce((a, b) => a * b, 1), per = (C / G) * S;
  return { groups: shape[0]! * G, groupOf: (i) => Math.floor(i / per), paramOf: (i) => Math.floor(i / S) % C, params: C };
}

/** GroupNorm over channels-last (N, *, C): the group of element i is its sample's group of C/G channels. */
export function bySampleGroupLast(shape: readonly number[], G: number): Grouping {
  const C = shape[shape.length - 1]!, per = C / G, sample = shape.slice(1).reduce((a, b) => a * b, 1);
  return { groups: shape[0]! * G, groupOf: (i) => Math.floor(i / sample) * G + Math.floor((i % C) / per), paramOf: (i) => i % C, params: C };
}

export function byRow(total: number, D: number): Grouping {
  return { groups: total / D, groupOf: (i) => Math.floor(i / D), paramOf: (i) => i % D, params: D };
}

export interface RefNormResult { y: Float64Array; mean: Float64Array; invstd: Float64Array; m2: Float64Array; count: Float64Array }

/**
 * y = (x - mean_g) * invstd_g * w[p] + b[p] in float64, two passes (mean, then sum of squared deviations);
 * rms: mean_g = 0 and invstd_g = 1 / sqrt(mean(x^2) + eps).
 */
export function refNorm(x: ArrayLike<number>, gr: Grouping, eps: number, o: { rms?: boolean; weight?: ArrayLike<number> | null;
  bias?: ArrayLike<number> | null } = {}): RefNormResult {
  const count = new Float64Array(gr.groups), mean = new Float64Array(gr.groups), m2 = new Float64Array(gr.groups);
  for (let i = 0; i < x.length; i++) { const g = gr.groupOf(i); count[g]!++; if (!o.rms) mean[g]! += x[i]!; }
  for (let g = 0; g < gr.groups; g++) mean[g]! /= count[g]!;
  for (let i = 0; i < x.length; i++) { const g = gr.groupOf(i); m2[g]! += (x[i]! - mean[g]!) ** 2; }
  const invstd = m2.map((v, g) => 1 / Math.sqrt(v / count[g]! + eps));
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const g = gr.groupOf(i), p = gr.paramOf(i);
    y[i] = (x[i]! - mean[g]!) * invstd[g]! * (o.weight ? o.weight[p]! : 1) + (o.bias ? o.bias[p]! : 0);
  }
  return { y, mean, invstd, m2, count };
}

/**
 * Gradients of sum(y * dy) through the group statistics, for refNorm's y. With d = dy * w[p] and xhat = (x - mean)
 * * invstd: dx = invstd * (d - mean_g(d) - xhat * mean_g(d * xhat)); rms: dx = invstd * (d - xhat * mean_g(d * xhat)).
 * dweight[p] = sum dy * xhat, dbias[p] = sum dy.
 */
export function refNormBackward(x: ArrayLike<number>, dy: ArrayLike<number>, gr: Grouping, eps: number,
  o: { rms?: boolean; weight?: ArrayLike<number> | null; stats?: RefNormResult } = {}): { dx: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  // `stats`: refNorm's result for the same x, grouping, eps and rms, to skip computing it again.
  const { mean, invstd, count } = o.stats ?? refNorm(x, gr, eps, { rms: o.rms });
  const sd = new Float64Array(gr.groups), sdx = new Float64Array(gr.groups);
  const dweight = new Float64Array(gr.params), dbias = new Float64Array(gr.params);
  for (let i = 0; i < x.length; i++) {
    const g = gr.groupOf(i), p = gr.paramOf(i), xhat = (x[i]! - mean[g]!) * invstd[g]!, d = dy[i]! * (o.weight ? o.weight[p]! : 1);
    sd[g]! += d; sdx[g]! += d * xhat; dweight[p]! += dy[i]! * xhat; dbias[p]! += dy[i]!;
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const g = gr.groupOf(i), p = gr.paramOf(i), xhat = (x[i]! - mean[g]!) * invstd[g]!, d = dy[i]! * (o.weight ? o.weight[p]! : 1);
    dx[i] = invstd[g]! * (d - (o.rms ? 0 : sd[g]! / count[g]!) - xhat * sdx[g]! / count[g]!);
  }
  return { dx, dweight, dbias };
}
