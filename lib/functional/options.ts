// The options the functional ops share, documented once (an editor shows these docs on hover for every op).
import type { FloatArray } from '../tensor.js';

/** Running statistics, updated in place when training (batch and instance norm). */
export interface RunningStatsArgs {
  /** Running mean per channel (C), of the input's dtype; updated in place when training. Default null: none. */
  runningMean?: FloatArray | null;
  /** Running UNBIASED variance per channel (C), of the input's dtype; updated in place when training. Default null. */
  runningVar?: FloatArray | null;
}

/** The affine parameters: per channel (C) for batch, instance and group norm; per position for layer norm. */
export interface AffineArgs {
  /** The scale (gamma), of the input's dtype. Default null: no scale. */
  weight?: FloatArray | null;
  /** The shift (beta), of the input's dtype. Default null: no shift. */
  bias?: FloatArray | null;
}

/** eps of the variance. */
export interface EpsArg {
  /** Added to the variance for numerical stability. Default 1e-5. */
  eps?: number;
}

/** Where the channel axis is. */
export interface ChannelsLastArg {
  /** The channel is the LAST axis, e.g. (N, H, W, C). Default false: axis 1. */
  channelsLast?: boolean;
}

/** An output array to fill. */
export interface OutArg {
  /** Fill this array (the input's dtype and length) and return it as the result's data. Default: a new array. */
  out?: FloatArray;
}

/** What a backward needs from its forward. */
export interface SavedStatsArgs {
  /** The forward result's saveMean. */
  saveMean: FloatArray;
  /** The forward result's saveInvstd. */
  saveInvstd: FloatArray;
}
