// foldBatchNorm: an eval-mode norm layer folded into the weight and bias of the Linear or Conv before it, so that
// inference runs one layer instead of two: s = gamma / sqrt(runningVar + eps), W' = W · s[o],
// b' = (b − runningMean) · s + beta.
import { describe, formatShape, invalidType } from '../errors.js';
import { parseOptions, checks, type OptionSpec } from '../options.js';
import { allocate, dtypeOf, isFloatArray, type FloatArray, type Tensor } from '../tensor.js';
import { NormBase } from './norm-base.js';

/** What foldBatchNorm folds: the preceding layer's weight (output channel on axis 0) and optional bias. */
export interface FoldOptions {
  /**
   * The Linear (out, in) or Conv (out, in, …) weight, out = the norm layer's numFeatures: a Tensor, or a flat
   * row-major array whose length is a multiple of numFeatures. Of the layer's dtype. Required.
   */
  weight: FloatArray | Tensor;
  /** The preceding layer's bias (numFeatures), of the layer's dtype. Default null: none (zeros). */
  bias?: FloatArray | null;
}

/** The folded weight (the given weight's length and layout) and bias (numFeatures), new arrays of the layer's dtype. */
export interface FoldedWeights<A extends FloatArray = FloatArray> {
  /** W' = W · s[o]. */
  weight: A;
  /** b' = (b − runningMean) · s + beta. */
  bias: A;
}

const SPEC: OptionSpec<FoldOptions> = {
  weight: { default: undefined as unknown as FloatArray, check: () => {} },
  bias: { default: null, check: checks.floatArrayOrNull },
};

/** The flat weight array, checked against C and the dtype. */
function weightArray(w: unknown, C: number, dtype: string): FloatArray {
  const isTensor = typeof w === 'object' && w !== null && !isFloatArray(w) && 'data' in w && 'shape' in w;
  const data: unknown = isTensor ? (w as Tensor).data : w;
  if (!isFloatArray(data)) throw invalidType('foldBatchNorm option "weight"', 'a Float32Array, Float64Array or Tensor', w);
  if (dtypeOf(data) !== dtype) throw new TypeError(`foldBatchNorm: expected a ${dtype} weight (the layer's dtype) but received ${describe(data)}`);
  if (isTensor) {
    const shape = (w as Tensor).shape;
    if (!Array.isArray(shape) || shape.length < 2 || shape[0] !== C || shape.reduce((a: number, b: number) => a * b, 1) !== data.length) {
      throw new RangeError(`foldBatchNorm: expected a weight of shape (${C}, in, …) with ${C} output channels on axis 0 ` +
        `(the layer's numFeatures) but got shape ${Array.isArray(shape) ? formatShape(shape) : String(shape)} holding ${data.length} values`);
    }
  } else if (data.length === 0 || data.length % C !== 0) {
    throw new RangeError(`foldBatchNorm: expected a weight whose length is a positive multiple of ${C} (the layer's numFeatures, ` +
      `output channel on axis 0) but got length ${data.length}`);
  }
  return data;
}

/**
 * Folds an eval-mode BatchNorm (or InstanceNorm with trackRunningStats) into the preceding Linear or Conv:
 * `bn(conv(x))` in eval mode equals a conv with the returned weight and bias. Reads the layer's running statistics,
 * eps, weight and bias; changes nothing.
 * @throws TypeError if bn is not such a layer or a dtype differs; RangeError if it has no running statistics or the
 *   weight / bias shapes disagree with numFeatures
 */
export function foldBatchNorm<A extends FloatArray>(bn: NormBase, options: { weight: A | Tensor<A>; bias?: A | null }): FoldedWeights<A>;
export function foldBatchNorm(bn: NormBase, options: FoldOptions): FoldedWeights {
  if (!(bn instanceof NormBase)) throw invalidType('foldBatchNorm bn', 'a BatchNorm1d/2d/3d, SyncBatchNorm or InstanceNorm layer', bn);
  const o = parseOptions<FoldOptions>('foldBatchNorm', options, SPEC);
  const rm = bn.runningMean, rv = bn.runningVar;
  if (!rm || !rv) throw new RangeError(`foldBatchNorm: ${bn.constructor.name} has no running statistics (trackRunningStats is false), so there is nothing to fold`);
  const C = bn.numFeatures;
  const w = weightArray(o.weight, C, bn.dtype);
  if (o.bias && o.bias.length !== C) throw new RangeError(`foldBatchNorm: expected a bias of length ${C} (the layer's numFeatures) but got length ${o.bias.length}`);
  if (o.bias && dtypeOf(o.bias) !== bn.dtype) throw new TypeError(`foldBatchNorm: expected a ${bn.dtype} bias (the layer's dtype) but received ${describe(o.bias)}`);
  const per = w.length / C, weight = allocate(bn.dtype, w.length), bias = allocate(bn.dtype, C);
  for (let c = 0; c < C; c++) {
    const s = (bn.weight ? bn.weight.data[c]! : 1) / Math.sqrt(rv[c]! + bn.eps);
    for (let i = c * per; i < (c + 1) * per; i++) weight[i] = w[i]! * s;
    bias[c] = ((o.bias ? o.bias[c]! : 0) - rm[c]!) * s + (bn.bias ? bn.bias.data[c]! : 0);
  }
  return { weight, bias };
}
