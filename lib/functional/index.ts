// The functional API: the math with no bookkeeping (torch.nn.functional).
export {
  batchNorm, batchNormAsync, batchNormBackward, batchNormBackwardAsync,
  type BatchNormOptions, type BatchNormResult, type BatchNormBackwardOptions, type BatchNormBackwardResult,
} from './batch-norm.js';
export {
  layerNorm, layerNormAsync, layerNormBackward, layerNormBackwardAsync, rmsNorm, rmsNormAsync, rmsNormBackward, rmsNormBackwardAsync,
  type LayerNormOptions, type LayerNormResult, type LayerNormBackwardOptions, type LayerNormBackwardResult,
  type RmsNormOptions, type RmsNormResult, type RmsNormBackwardOptions, type RmsNormBackwardResult,
} from './layer-norm.js';
export {
  groupNorm, groupNormAsync, groupNormBackward, groupNormBackwardAsync,
  type GroupNormOptions, type GroupNormResult, type GroupNormBackwardOptions, type GroupNormBackwardResult,
} from './group-norm.js';
export {
  instanceNorm, instanceNormAsync, instanceNormBackward, instanceNormBackwardAsync,
  type InstanceNormOptions, type InstanceNormResult, type InstanceNormBackwardOptions, type InstanceNormBackwardResult,
} from './instance-norm.js';
