// normkit's public surface. Re-exports only.
export { tensor, type Tensor, type TensorOptions, type FloatArray, type DType, type ArrayOf } from './tensor.js';
export * as functional from './functional/index.js';
export { Module, type LoadStateDictOptions, type ZeroGradOptions, type CallOptions, type ForwardOptions, type BackwardOptions } from './modules/module.js';
export { type Activation } from './modules/activation.js';
export { Parameter } from './modules/parameter.js';
export { type StateSlot } from './modules/state-dict.js';
export { Sequential, ModuleDict } from './modules/container.js';
export { NormBase, type NormBaseOptions, type NonFiniteMode } from './modules/norm-base.js';
export { BatchNormBase, BatchNorm1d, BatchNorm2d, BatchNorm3d, type BatchNormModuleOptions } from './modules/batch-norm.js';
export { InstanceNormBase, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, type InstanceNormModuleOptions } from './modules/instance-norm.js';
export { GroupNorm, type GroupNormModuleOptions } from './modules/group-norm.js';
export { LayerNorm, RMSNorm, type LayerNormModuleOptions, type RMSNormModuleOptions } from './modules/layer-norm.js';
export {
  saveSafetensors, loadSafetensors, loadSafetensorsWithMetadata,
  type StateDict, type Int64Tensor, type SafetensorsContents,
} from './io/safetensors.js';
export { setNumThreads, getNumThreads, buildInfo, type BuildInfo } from './runtime.js';
export { SyncBatchNorm, type SyncBatchNormOptions } from './modules/sync-batch-norm.js';
export { threadGroup, joinThreadGroup, type ThreadGroup, type ThreadGroupOptions } from './distributed/thread-group.js';
export { reduceInRankOrder, type Communicator, type ReduceOp } from './distributed/communicator.js';
export { mpiWorld, type MpiCommunicator } from './distributed/mpi.js';
export { foldBatchNorm, type FoldOptions, type FoldedWeights } from './modules/fold.js';
export { recalibrate } from './modules/recalibrate.js';
