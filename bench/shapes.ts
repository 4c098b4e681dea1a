// The benchmark shapes: the headline ResNet layer, its channels-last twin, few large channels, two 2-D batches,
// two tiny layers where call overhead is a large part, then the rest of the family (bench/family.ts; no peers).
export interface BenchShape {
  name: string; shape: number[]; channelsLast: boolean; tiny?: boolean;
  family?: 'layerNorm' | 'rmsNorm' | 'groupNorm'; groups?: number;
}

export const SHAPES: BenchShape[] = [
  { name: '[64,128,56,56] NCHW', shape: [64, 128, 56, 56], channelsLast: false },
  { name: '[64,56,56,128] channels-last', shape: [64, 56, 56, 128], channelsLast: true },
  { name: '[256,3,112,112] NCHW', shape: [256, 3, 112, 112], channelsLast: false },
  { name: '[65536,512] 2-D', shape: [65536, 512], channelsLast: false },
  { name: '[8192,1024] 2-D', shape: [8192, 1024], channelsLast: false },
  { name: '[8,16,8,8] tiny', shape: [8, 16, 8, 8], channelsLast: false, tiny: true },
  // A small layer on 7x7 maps: runs of 49, most of each run a tail.
  { name: '[4,128,7,7] tiny', shape: [4, 128, 7, 7], channelsLast: false, tiny: true },
  { name: 'LayerNorm [65536,512]', shape: [65536, 512], channelsLast: false, family: 'layerNorm' },
  { name: 'RMSNorm [65536,512]', shape: [65536, 512], channelsLast: false, family: 'rmsNorm' },
  { name: 'GroupNorm(32) [16,256,56,56]', shape: [16, 256, 56, 56], channelsLast: false, family: 'groupNorm', groups: 32 },
];

export const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
export const channels = (s: BenchShape) => s.shape[s.channelsLast || s.shape.length === 2 ? s.shape.length - 1 : 1]!;
