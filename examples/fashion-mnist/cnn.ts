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
import { BatchNorm1d, BatchNorm2d, type StateDict } from 'normkit';
import { AvgPool2x2, Conv2d, type Act4 } from './conv.js';
import { Dense, Sigmoid, type Param } from './nn.js';
import { convState, denseState, float32, loadConv, loadDense, loadStrict, type LayerLoader, type Network } from './network.js';
import { Rng } from './rng.js';

export interface LeNetOptions {
  /** Images are side x side pixels, one channel (28 for Fashion-MNIST). */
  side: number;
  classes: number;
  batchNorm: boolean;
  /** Seeds the weight initialization: the variants with and without batch norm start from the same weights. */
  seed: number;
}

/** One convolution stage: conv, optional BatchNorm2d, sigmoid, 2x2 average pooling. */
class ConvStage {
  readonly sigmoid = new Sigmoid();
  readonly pool = new AvgPool2x2();
  private normalizedShape: Act4['shape'] | null = null;

  constructor(readonly conv: Conv2d, readonly norm: BatchNorm2d | null) {}

  forward(x: Act4): Act4 {
    let a = this.conv.forward(x);
    if (this.norm) a = { data: float32(this.norm.forward(a)), shape: a.shape };
    this.normalizedShape = a.shape;
    return this.pool.forward({ data: this.sigmoid.forward(a.data), shape: a.shape });
  }

  backward(dy: Float32Array, needInputGrad: boolean): Act4 | null {
    if (!this.normalizedShape) throw new Error('backward called before forward');
    let g = this.sigmoid.backward(this.pool.backward(dy).data);
    if (this.norm) g = float32(this.norm.backward({ data: g, shape: this.normalizedShape }));
    return this.conv.backward(g, needInputGrad);
  }
}

/** One hidden dense stage: dense, optional BatchNorm1d, sigmoid. */
class DenseStage {
  readonly sigmoid = new Sigmoid();
  private n = 0;

  constructor(readonly dense: Dense, readonly norm: BatchNorm1d | null) {}

  forward(x: Float32Array, n: number): Float32Array {
    let h = this.dense.forward(x, n);
    if (this.norm) h = float32(this.norm.forward({ data: h, shape: [n, this.dense.outFeatures] }));
    this.n = n;
    return this.sigmoid.forward(h);
  }

  backward(dy: Float32Array): Float32Array {
    let g = this.sigmoid.backward(dy);
    if (this.norm) g = float32(this.norm.backward({ data: g, shape: [this.n, this.dense.outFeatures] }));
    const dx = this.dense.backward(g);
    if (!dx) throw new Error('unreachable: a hidden dense layer passes its input gradient down');
    return dx;
  }
}

export class LeNet implements Network {
  readonly convs: ConvStage[];
  readonly hidden: DenseStage[];
  readonly output: Dense;
  /** The batch norm layers in checkpoint order, bn1..bn4 (empty without batch norm). */
  readonly norms: Array<BatchNorm1d | BatchNorm2d>;
  training = true;

  constructor(readonly options: LeNetOptions) {
    const rng = new Rng(options.seed);
    const bn = options.batchNorm;
    // Batch norm layers draw no random numbers: both variants get the same conv and dense weights from a seed.
    this.convs = [
      new ConvStage(new Conv2d(1, 6, 5, rng), bn ? new BatchNorm2d(6) : null),
      new ConvStage(new Conv2d(6, 16, 5, rng), bn ? new BatchNorm2d(16) : null),
    ];
    const flat = 16 * LeNet.featureSide(options.side) ** 2;
    this.hidden = [
      new DenseStage(new Dense(flat, 120, rng, 'xavier'), bn ? new BatchNorm1d(120) : null),
      new DenseStage(new Dense(120, 84, rng, 'xavier'), bn ? new BatchNorm1d(84) : null),
    ];
    this.output = new Dense(84, options.classes, rng, 'xavier');
    this.norms = [...this.convs, ...this.hidden].flatMap((s) => (s.norm ? [s.norm] : []));
  }

  /** The side of the feature maps after both conv stages: ((side - 4) / 2 - 4) / 2, 4 for 28. */
  static featureSide(side: number): number {
    const out = Math.floor((Math.floor((side - 4) / 2) - 4) / 2);
    if (!(out >= 1)) throw new RangeError(`LeNet needs images of at least 16 x 16 pixels, got side ${side}`);
    return out;
  }

  forward(x: Float32Array, n: number): Float32Array {
    let a: Act4 = { data: x, shape: [n, 1, this.options.side, this.options.side] };
    for (const stage of this.convs) a = stage.forward(a);
    let h = a.data;  // (n, 16, 4, 4) read as (n, 256): nn.Flatten's order
    for (const stage of this.hidden) h = stage.forward(h, n);
    return this.output.forward(h, n);
  }

  backward(dLogits: Float32Array): void {
    const g = this.output.backward(dLogits);
    if (!g) throw new Error('unreachable: the output layer passes its input gradient down');
    let h = g;
    for (let i = this.hidden.length - 1; i >= 0; i--) h = this.hidden[i]!.backward(h);
    let d: Float32Array | null = h;
    for (let i = this.convs.length - 1; i >= 0 && d; i--) d = this.convs[i]!.backward(d, i > 0)?.data ?? null;
  }

  parameters(): Param[] {
    return [
      ...this.convs.flatMap((s) => s.conv.parameters()),
      ...this.hidden.flatMap((s) => s.dense.parameters()),
      ...this.output.parameters(),
      ...this.norms.flatMap((bn) => bn.parameters()),
    ];
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  train(): this {
    this.training = true;
    for (const bn of this.norms) bn.train();
    return this;
  }

  eval(): this {
    this.training = false;
    for (const bn of this.norms) bn.eval();
    return this;
  }

  /** The named layers in PyTorch's module order: conv1, bn1, conv2, bn2, fc1, bn3, fc2, bn4, fc3. */
  private layerNames() {
    const stages = [...this.convs.map((s, i) => ({ s, name: `conv${i + 1}` })), ...this.hidden.map((s, i) => ({ s, name: `fc${i + 1}` }))];
    return stages.map(({ s, name }, i) => ({ stage: s, name, bn: s.norm ? `bn${i + 1}` : null }));
  }

  stateDict(): StateDict {
    const sd: StateDict = {};
    for (const { stage, name, bn } of this.layerNames()) {
      Object.assign(sd, stage instanceof ConvStage ? convState(stage.conv, name) : denseState(stage.dense, name));
      if (bn && stage.norm) Object.assign(sd, stage.norm.stateDict(`${bn}.`));
    }
    return Object.assign(sd, denseState(this.output, 'fc3'));
  }

  loadStateDict(sd: StateDict): void {
    const loaders: LayerLoader[] = [];
    for (const { stage, name, bn } of this.layerNames()) {
      loaders.push([name, (own) => (stage instanceof ConvStage ? loadConv(stage.conv, name, own) : loadDense(stage.dense, name, own))]);
      const norm = stage.norm;
      if (bn && norm) loaders.push([bn, (own) => norm.loadStateDict(own, { prefix: `${bn}.` })]);
    }
    loaders.push(['fc3', (own) => loadDense(this.output, 'fc3', own)]);
    loadStrict(sd, loaders);
  }
}
