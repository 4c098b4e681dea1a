// The fast path of repeated calls (call-plan.ts) for the per-sample norms, GroupNorm and InstanceNorm: each sample's
// groups (of C/G channels, or one channel) normalized with their own statistics, a per-channel affine. Their full
// path re-derived the checks and allocated per-(sample, channel) arrays on every call: InstanceNorm2d on [8,64,8,8]
// spent 19 of 69 µs forward and 39 of 99 µs backward outside the kernel. A call that matches what the last full
// forward accepted makes the full path's kernel call with the same arguments (so the same bits) and its
// bookkeeping; anything else returns null, for the full path to check and run.
import { native } from '../binding.js';
import { perChannelParamGrads, perSampleChannel } from '../functional/core.js';
import type { View4 } from '../geometry.js';
import { getNumThreads } from '../runtime.js';
import { allocate, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { channelArray, ChannelScratch, copyInto, matchesPlan, plainOut, type CallPlan } from './call-plan.js';
import { accumulateGrad, type Parameter } from './module.js';

/** What a per-sample norm's forward saves for its backward. */
export interface SampleSaved { x: Tensor; mean: Float64Array; invstd: Float64Array }

interface SamplePlan extends CallPlan {
  /** Channels per group (the kernels' segments): C / G, 1 for InstanceNorm. */
  readonly per: number;
}

/** The fast path of one GroupNorm or InstanceNorm layer. */
export class PerSampleFastPath {
  private plan: SamplePlan | null = null;
  private scratch: ChannelScratch | null = null;
  /** The weight and bias gradients' float64 sums (C). */
  private grads: { dweight: Float64Array; dbias: Float64Array } | null = null;

  /**
   * Records an input a full forward accepted (at its end, once nothing can throw): its statistics view (one group
   * per sample and group of `per` channels) and dtype; an empty input records none.
   */
  accept(x: Tensor, dtype: DType, view: View4, per: number): void {
    this.plan = x.data.length === 0 ? null : { shape: x.shape, dtype, n: x.data.length, view, per };
  }

  /** Forgets the plan: the next call takes the full path (a forward the fast path does not serve). */
  forget(): void {
    this.plan = null;
  }

  /**
   * The training forward with the batch statistics into the set `saved` (the saved state's mean) does not hold, or
   * null for the full path. Returns y, the input as saved, and the statistics written.
   */
  forward(x: unknown, options: unknown, dtype: DType, weight: FloatArray | null, bias: FloatArray | null, eps: number,
    saved: Float64Array | undefined): { y: Tensor } & SampleSaved | null {
    const plan = this.plan;
    if (plan === null || plan.dtype !== dtype || !matchesPlan(plan, x)) return null;
    const out = plainOut(plan, options, x.data), C = channelsOf(plan);
    const w = channelArray(plan, weight, C), b = channelArray(plan, bias, C);
    if (out === false || w === undefined || b === undefined) return null;
    const { P, A, B, K } = plan.view, s = this.scratchFor(plan), stats = s.freeStats(saved);
    const y = out ?? allocate(plan.dtype, plan.n);
    native().forwardTrain(P, A, B, K, getNumThreads(), x.data, y, eps, perSampleChannel(w, P, C, s.gamma),
      perSampleChannel(b, P, C, s.beta), stats.mean, s.m2, stats.invstd, plan.per);
    const shape = plan.shape;
    return { y: { data: y, shape }, x: { data: x.data, shape }, mean: stats.mean, invstd: stats.invstd };
  }

  /**
   * The training backward of the forward that saved `saved`: dx, and with both weight and bias, their gradients
   * (float64 sums rounded to the dtype, as the full path's result arrays) added into their grads; null for the full
   * path.
   */
  backward(dy: unknown, options: unknown, dtype: DType, saved: SampleSaved | null, weight: Parameter | null,
    bias: Parameter | null): Tensor | null {
    const plan = this.plan;
    if (plan === null || saved === null || saved.x.shape !== plan.shape || saved.x.data.length !== plan.n) return null;
    if (plan.dtype !== dtype || !matchesPlan(plan, dy)) return null;
    const out = plainOut(plan, options, saved.x.data), C = channelsOf(plan), w = channelArray(plan, weight?.data, C);
    if (out === false || w === undefined) return null;
    const { P, A, B, K } = plan.view, s = this.scratchFor(plan);
    const dx = out ?? allocate(plan.dtype, plan.n);
    native().backwardTrain(P, A, B, K, getNumThreads(), dy.data, saved.x.data, dx, saved.mean, saved.invstd,
      perSampleChannel(w, P, C, s.gamma), s.sumDy, s.sumDyXmu, plan.per);
    if (weight && bias) {
      let sums = this.grads;
      if (sums === null || sums.dweight.length !== C) sums = this.grads = { dweight: new Float64Array(C), dbias: new Float64Array(C) };
      sums.dweight.fill(0); sums.dbias.fill(0);
      perChannelParamGrads(s.sumDy, s.sumDyXmu, saved.invstd, P, C, plan.per, sums.dweight, sums.dbias);
      const g = s.paramGrads(plan.dtype);
      accumulateGrad(weight, copyInto(g.dweight, sums.dweight));
      accumulateGrad(bias, copyInto(g.dbias, sums.dbias));
    }
    return { data: dx, shape: plan.shape };
  }

  /** Scratch for the plan's groups (N * G) and per-(sample, channel) entries (N * C), kept while the shape holds. */
  private scratchFor(plan: SamplePlan): ChannelScratch {
    const groups = plan.view.P * plan.view.B, segments = groups * plan.per;
    let s = this.scratch;
    if (s === null || s.channels !== groups || s.sumDy.length !== segments || s.paramCount !== channelsOf(plan)) {
      s = this.scratch = new ChannelScratch(groups, channelsOf(plan), segments);
    }
    return s;
  }
}

/** C: the groups per sample times their channels (an InstanceNorm without affine takes any C, not numFeatures). */
function channelsOf(plan: SamplePlan): number {
  return plan.view.B * plan.per;
}
