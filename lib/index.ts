// normkit's public surface. Re-exports only.
export { tensor, type Tensor, type FloatArray, type DType } from './tensor.js';
export * as functional from './functional/index.js';
export { Module, Parameter, type LoadStateDictOptions, type CallOptions } from './modules/module.js';
export { NormBase, type NormBaseOptions } from './modules/norm-base.js';
export { BatchNormBase, BatchNorm1d, BatchNorm2d, BatchNorm3d, type BatchNormModuleOptions } from './modules/batch-norm.js';
export { InstanceNormBase, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, type InstanceNormModuleOptions } from './modules/instance-norm.js';
export { GroupNorm, type GroupNormModuleOptions } from './modules/group-norm.js';
export { LayerNorm, RMSNorm, type LayerNormModuleOptions, type RMSNormModuleOptions } from './modules/layer-norm.js';
export { saveSafetensors, loadSafetensors, type StateDict, type Int64Tensor } from './io/safetensors.js';
export { setNumThreads, getNumThreads, buildInfo, type BuildInfo } from './runtime.js';
export { reduceInRankOrder, type Communicator, type ReduceOp } from './distributed/communicator.js';
export { mpiWorld, type MpiCommunicator } from './distributed/mpi.js';
