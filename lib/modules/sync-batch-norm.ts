// SyncBatchNorm (torch.nn.SyncBatchNorm, on CPU): BatchNorm whose training statistics are those of the global batch
// of every rank of a Communicator. Bookkeeping is BatchNorm's (options, state dict, errors); the only difference
// is the communicator handed to the functional steps. The math is functional/sync-batch-norm.ts.
import type { Communicator } from '../distributed/communicator.js';
import { checkCommunicator } from '../distributed/checks.js';
import { invalidType } from '../errors.js';
import { isPlainObject, type OptionSpec } from '../options.js';
import { BATCH_NORM_DEFAULTS, BatchNormBase, type BatchNormModuleOptions } from './batch-norm.js';
import type { NormBaseOptions } from './norm-base.js';

/** BatchNorm's options (eps, momentum, affine, trackRunningStats, channelsLast, dtype) and `comm` (default null). */
export interface SyncBatchNormOptions extends BatchNormModuleOptions {
  /** The ranks to synchronize over (threadGroup / mpiWorld); absent or size 1: BatchNorm, bit for bit. */
  comm?: Communicator | null;
}

// BatchNorm's options plus `comm` (checked here; NormBase keeps the others).
const SPEC = Object.freeze({
  ...BATCH_NORM_DEFAULTS,
  comm: { default: null, check: (v: unknown, name: string) => { if (v !== null) checkCommunicator(v, name); } },
}) as OptionSpec<NormBaseOptions>;

/**
 * Batch norm over (N, C, *) input of any rank >= 2 (channels last: (N, *, C)), with training statistics over all
 * ranks' inputs concatenated along N. All ranks must call forward / backward in the same order; eval never
 * communicates. weight.grad / bias.grad receive this rank's local contribution (all-reduce them as for any
 * data-parallel parameter).
 */
export class SyncBatchNorm extends BatchNormBase {
  protected readonly ranks = 'atLeast2' as const;
  /** The communicator, or null (then this is a plain BatchNorm). */
  readonly comm: Communicator | null;

  constructor(numFeatures: number, options?: SyncBatchNormOptions) {
    super(numFeatures, options, SPEC);
    // NormBase checked every option, `comm` included (a Communicator or null).
    const comm = isPlainObject(options) ? options.comm : undefined;
    this.comm = comm === undefined || comm === null ? null : checkCommunicator(comm, 'SyncBatchNorm option "comm"');
  }

  protected override communicator(): Communicator | null {
    return this.comm;
  }

  /**
   * A SyncBatchNorm with `bn`'s options and a copy of its state (parameters, gradients, running statistics,
   * numBatchesTracked, training mode, requiresGrad) — torch.nn.SyncBatchNorm.convert_sync_batchnorm for one layer.
   */
  static fromBatchNorm(bn: BatchNormBase, comm: Communicator): SyncBatchNorm {
    if (!(bn instanceof BatchNormBase)) throw invalidType('SyncBatchNorm.fromBatchNorm bn', 'a BatchNorm1d, BatchNorm2d or BatchNorm3d', bn);
    checkCommunicator(comm, 'SyncBatchNorm.fromBatchNorm comm');
    const s = new SyncBatchNorm(bn.numFeatures, {
      eps: bn.eps, momentum: bn.momentum, affine: bn.affine, trackRunningStats: bn.trackRunningStats,
      channelsLast: bn.channelsLast, dtype: bn.dtype, nonFinite: bn.nonFinite, activation: bn.activation, comm,
    });
    s.loadStateDict(bn.stateDict());
    if (s.weight && bn.weight?.grad) s.weight.grad = bn.weight.grad.slice();
    if (s.bias && bn.bias?.grad) s.bias.grad = bn.bias.grad.slice();
    if (s.weight && bn.weight) s.weight.requiresGrad = bn.weight.requiresGrad;
    if (s.bias && bn.bias) s.bias.requiresGrad = bn.bias.requiresGrad;
    s.train(bn.training);
    return s;
  }
}
