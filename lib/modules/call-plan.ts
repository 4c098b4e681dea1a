// The layers' fast path for repeated calls at one shape. A [8,16,8,8] BatchNorm2d call spent most of its time (issue
// 13: 20-30 µs against a 2-8 µs kernel) re-deriving what the previous call had already checked, and allocating
// per-channel Float64Arrays, which V8 keeps off its heap above 64 bytes (about 1 µs each here); a [16,512] LayerNorm
// call 17 µs forward and 40 µs backward against a 3-4 µs kernel (option parsing, generators, per-row arrays).
//
// A CallPlan is what the full path accepted last: the shape (frozen), dtype and view. A call whose arguments match
// it exactly in a few comparisons skips re-deriving them; any difference, even one that would be fine, sends the
// call down the full path, which checks everything and throws the usual errors. So the fast path never throws an
// error of its own and never accepts what the full path would refuse.
import { batchNormView, rowView, type View4 } from '../geometry.js';
import { isLike, type DType, type FloatArray, type Tensor } from '../tensor.js';

export interface CallPlan {
  /** The accepted shape: frozen, shared by the outputs (and saved inputs) of the calls that match it. */
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Elements (never 0: an empty batch takes the full path). */
  readonly n: number;
  readonly view: View4;
}

/** The plan of a checked, non-empty batch-norm input (null for an empty one). */
export function batchNormPlan(x: Tensor, dtype: DType, channelsLast: boolean): CallPlan | null {
  if (x.data.length === 0) return null;
  return { shape: x.shape, dtype, n: x.data.length, view: batchNormView(x.shape, channelsLast) };
}

/** The plan of a checked, non-empty LayerNorm/RMSNorm input: rows of D (the normalized size) elements. */
export function trailingNormPlan(x: Tensor, dtype: DType, D: number): CallPlan | null {
  if (x.data.length === 0) return null;
  return { shape: x.shape, dtype, n: x.data.length, view: rowView(x.data.length, D) };
}

/** a, typed as `like`'s array type: the fast path writes arrays of its input's dtype; anything else is a bug here. */
export function ofDtype<A extends FloatArray>(like: A, a: FloatArray): A {
  if (!isLike(like, a)) throw new Error('normkit internal: an output does not have its input\'s dtype');
  return a;
}

/** Whether `a` is a typed array of the plan's dtype. */
export function isOfDtype(plan: CallPlan, a: unknown): a is FloatArray {
  return plan.dtype === 'float32' ? a instanceof Float32Array : a instanceof Float64Array;
}

/** Whether `shape` is an array holding the plan's shape. */
export function isPlanShape(plan: CallPlan, shape: unknown): boolean {
  if (!Array.isArray(shape)) return false;
  const want = plan.shape;
  if (shape.length !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (shape[i] !== want[i]) return false;
  return true;
}

/** Whether `t` is a tensor of the plan's dtype and shape, holding n elements (so its buffer is attached). */
export function matchesPlan(plan: CallPlan | null, t: unknown): t is Tensor {
  if (plan === null || typeof t !== 'object' || t === null) return false;
  const { data, shape } = t as { data?: unknown; shape?: unknown };
  return isOfDtype(plan, data) && data.length === plan.n && isPlanShape(plan, shape);
}

/**
 * The `out` of options that hold nothing but `out` (or undefined options): an array of the plan's dtype and size
 * not sharing `input`'s buffer, or undefined for none. false: anything else, for the full path to check.
 */
export function plainOut(plan: CallPlan, options: unknown, input: FloatArray): FloatArray | undefined | false {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null || Object.getPrototypeOf(options) !== Object.prototype) return false;
  for (const key in options) if (key !== 'out') return false;
  const out = (options as { out?: unknown }).out;
  if (out === undefined) return undefined;
  return isOfDtype(plan, out) && out.length === plan.n && out.buffer !== input.buffer ? out : false;
}

/** A per-channel array of the plan's dtype with `channels` elements, or null; undefined: anything else. */
export function channelArray(plan: CallPlan, a: FloatArray | null | undefined, channels: number): FloatArray | null | undefined {
  if (a === null || a === undefined) return null;
  return isOfDtype(plan, a) && a.length === channels ? a : undefined;
}

/**
 * Per-channel scratch that a layer reuses across calls instead of allocating. The statistics a forward saves for
 * its backward come in two sets: a forward writes the set the saved state does not hold, so a forward whose kernel
 * call throws (out of memory for the kernel's scratch) leaves the previous forward's saved statistics intact.
 */
export class ChannelScratch {
  private readonly sets: Array<{ mean: Float64Array; invstd: Float64Array }>;
  readonly m2: Float64Array;
  readonly scale: Float64Array;
  readonly shift: Float64Array;
  readonly gamma: Float64Array;
  readonly beta: Float64Array;
  readonly sumDy: Float64Array;
  readonly sumDyXmu: Float64Array;
  private grads: { dweight: FloatArray; dbias: FloatArray } | null = null;

  /**
   * channels: the groups (a batch norm's channels, a LayerNorm's rows); paramCount: the parameters' length;
   * segments: the entries of the kernels' gamma, beta and sums (GroupNorm, InstanceNorm: one per sample and channel).
   */
  constructor(readonly channels: number, readonly paramCount = channels, segments = channels) {
    const f = (n = channels) => new Float64Array(n);
    this.sets = [{ mean: f(), invstd: f() }, { mean: f(), invstd: f() }];
    this.m2 = f(); this.scale = f(); this.shift = f();
    this.gamma = f(segments); this.beta = f(segments); this.sumDy = f(segments); this.sumDyXmu = f(segments);
  }

  /** The set of statistics not held by `saved` (the mean, or invstd, the layer's saved state refers to, if any). */
  freeStats(saved: Float64Array | undefined): { mean: Float64Array; invstd: Float64Array } {
    const first = this.sets[0]!;
    return saved === first.mean || saved === first.invstd ? this.sets[1]! : first;
  }

  /** Float64 copies of weight and bias (null for none): the kernels take per-channel parameters in float64. */
  params(weight: FloatArray | null, bias: FloatArray | null): { gamma: Float64Array | null; beta: Float64Array | null } {
    return { gamma: weight && copyInto(this.gamma, weight), beta: bias && copyInto(this.beta, bias) };
  }

  /** dweight / dbias arrays of `dtype` (their values are added into the grads, never kept). */
  paramGrads(dtype: DType): { dweight: FloatArray; dbias: FloatArray } {
    if (this.grads === null || (this.grads.dweight instanceof Float32Array) !== (dtype === 'float32')) {
      const make = () => (dtype === 'float32' ? new Float32Array(this.paramCount) : new Float64Array(this.paramCount));
      this.grads = { dweight: make(), dbias: make() };
    }
    return this.grads;
  }
}

/**
 * ChannelScratch of a LayerNorm/RMSNorm plan: per-row statistics and sums, the per-position weight and bias gradients
 * in float64 as the kernel writes them, and a row of zeros (RMSNorm's centre).
 */
export class RowScratch extends ChannelScratch {
  readonly dw: Float64Array;
  readonly db: Float64Array;
  readonly zeros: Float64Array;

  constructor(rows: number, positions: number) {
    super(rows, positions);
    this.dw = new Float64Array(positions); this.db = new Float64Array(positions); this.zeros = new Float64Array(rows);
  }
}

/**
 * dst[i] = src[i] (rounded to dst's type), a plain loop: TypedArray#set between element types takes a slow generic
 * path in V8 (a third of a small call's JavaScript time, for 16 elements).
 */
export function copyInto<A extends FloatArray>(dst: A, src: ArrayLike<number>): A {
  for (let i = 0; i < dst.length; i++) dst[i] = src[i]!;
  return dst;
}
