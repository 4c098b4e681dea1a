// d2l's LeNet with batch norm (https://d2l.ai/chapter_convolutional-modern/batch-norm.html), or without it:
//
//   conv1 (1 -> 6, 5x5)  [bn1: BatchNorm2d(6)]  sigmoid  avgpool 2x2      28x28 -> 24x24 -> 12x12
//   conv2 (6 -> 16, 5x5) [bn2: BatchNorm2d(16)] sigmoid  avgpool 2x2      12x12 -> 8x8 -> 4x4
//   flatten, fc1 (256 -> 120) [bn3: BatchNorm1d(120)] sigmoid
//            fc2 (120 -> 84)  [bn4: BatchNorm1d(84)]  sigmoid
//            fc3 (84 -> 10)
//
// The names are the attributes of the equivalent torch.nn module in load_in_pytorch.py, so the checkpoint's keys
// are PyTorch's (conv1.weight (6, 1, 5, 5), bn1.running_mean, ..., fc3.bias); the flatten is NCHW's, as
// nn.Flatten's. Without batch norm the same network with the bn layers left out (and the same initial weights).
// The layers run in the order they are added (network.ts); the stateless ones (sigmoid1, pool1, flatten, ...) add
// no keys, as in PyTorch.
import { BatchNorm1d, BatchNorm2d } from 'normkit';
import { AvgPool2x2, Conv2d, Flatten } from './conv.js';
import { Dense, Sigmoid } from './nn.js';
import { Network } from './network.js';
import { Rng } from './rng.js';

export interface LeNetOptions {
  /** Images are side x side pixels, one channel (28 for Fashion-MNIST). */
  side: number;
  classes: number;
  batchNorm: boolean;
  /** Seeds the weight initialization: the variants with and without batch norm start from the same weights. */
  seed: number;
}

export class LeNet extends Network {
  readonly classes: number;

  constructor(readonly options: LeNetOptions) {
    super();
    this.classes = options.classes;
    const rng = new Rng(options.seed);
    const bn = options.batchNorm;
    // Batch norm layers draw no random numbers: both variants get the same conv and dense weights from a seed.
    this.set('conv1', new Conv2d(1, 6, 5, rng, false));  // the first layer: no input gradient
    if (bn) this.set('bn1', new BatchNorm2d(6));
    this.set('sigmoid1', new Sigmoid()).set('pool1', new AvgPool2x2());
    this.set('conv2', new Conv2d(6, 16, 5, rng));
    if (bn) this.set('bn2', new BatchNorm2d(16));
    this.set('sigmoid2', new Sigmoid()).set('pool2', new AvgPool2x2()).set('flatten', new Flatten());
    this.set('fc1', new Dense(16 * LeNet.featureSide(options.side) ** 2, 120, rng, 'xavier'));
    if (bn) this.set('bn3', new BatchNorm1d(120));
    this.set('sigmoid3', new Sigmoid());
    this.set('fc2', new Dense(120, 84, rng, 'xavier'));
    if (bn) this.set('bn4', new BatchNorm1d(84));
    this.set('sigmoid4', new Sigmoid());
    this.set('fc3', new Dense(84, options.classes, rng, 'xavier'));
  }

  /** The side of the feature maps after both conv stages: ((side - 4) / 2 - 4) / 2, 4 for 28. */
  static featureSide(side: number): number {
    const out = Math.floor((Math.floor((side - 4) / 2) - 4) / 2);
    if (!(out >= 1)) throw new RangeError(`LeNet needs images of at least 16 x 16 pixels, got side ${side}`);
    return out;
  }

  protected inputShape(n: number): number[] {
    return [n, 1, this.options.side, this.options.side];
  }
}
