// The MLP: 784 -> hidden... -> 10 with ReLU, with or without a BatchNorm1d between each hidden dense layer and
// its ReLU (where d2l and the batch norm paper put it). normkit does all the normalization: batch statistics in
// training mode, running statistics in eval mode.
//
// Checkpoints use the keys and layouts PyTorch gives the equivalent module, fc1, bn1, fc2, bn2, ..., fcN as
// attributes (load_in_pytorch.py defines it and loads a checkpoint with strict=True):
//
//   x = fcN(relu(bn2(fc2(relu(bn1(fc1(x)))))))      # without batch norm: the same without the bn layers
import { BatchNorm1d, type StateDict } from 'normkit';
import { Dense, ReLU, type Param } from './nn.js';
import { denseState, float32, loadDense, loadStrict, type LayerLoader, type Network } from './network.js';
import { Rng } from './rng.js';

export interface MlpOptions {
  inputs: number;
  hidden: readonly number[];
  classes: number;
  batchNorm: boolean;
  /** Seeds the weight initialization: two models with the same seed and sizes start from the same weights. */
  seed: number;
}

export class Mlp implements Network {
  readonly dense: Dense[] = [];
  /** One BatchNorm1d per hidden layer, or none. */
  readonly norms: BatchNorm1d[] = [];
  private readonly relus: ReLU[] = [];
  training = true;

  constructor(readonly options: MlpOptions) {
    const rng = new Rng(options.seed);
    const sizes = [options.inputs, ...options.hidden];
    for (let i = 1; i < sizes.length; i++) {
      this.dense.push(new Dense(sizes[i - 1]!, sizes[i]!, rng));
      // BatchNorm1d draws no random numbers, so both variants get identical dense weights from the same seed.
      if (options.batchNorm) this.norms.push(new BatchNorm1d(sizes[i]!));  // PyTorch's defaults: eps 1e-5, momentum 0.1
      this.relus.push(new ReLU());
    }
    this.dense.push(new Dense(sizes[sizes.length - 1]!, options.classes, rng));
  }

  forward(x: Float32Array, n: number): Float32Array {
    let h = x;
    this.relus.forEach((relu, i) => {
      h = this.dense[i]!.forward(h, n);
      const bn = this.norms[i];
      if (bn) h = float32(bn.forward({ data: h, shape: [n, bn.numFeatures] }));
      h = relu.forward(h);
    });
    return this.dense[this.dense.length - 1]!.forward(h, n);
  }

  backward(dLogits: Float32Array): void {
    const n = dLogits.length / this.options.classes;
    let g = this.dense[this.dense.length - 1]!.backward(dLogits);
    for (let i = this.relus.length - 1; i >= 0; i--) {
      if (!g) throw new Error('unreachable: a hidden layer always passes its input gradient down');
      g = this.relus[i]!.backward(g);
      const bn = this.norms[i];
      if (bn) g = float32(bn.backward({ data: g, shape: [n, bn.numFeatures] }));
      g = this.dense[i]!.backward(g, i > 0);
    }
  }

  parameters(): Param[] {
    return [...this.dense.flatMap((d) => d.parameters()), ...this.norms.flatMap((bn) => bn.parameters())];
  }

  zeroGrad(): void {
    for (const d of this.dense) for (const p of d.parameters()) p.grad?.fill(0);
    for (const bn of this.norms) bn.zeroGrad();
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

  /** The batch norm layers' state only: bn1.weight, bn1.bias, bn1.running_mean, ... (PyTorch's keys). */
  batchNormStateDict(): StateDict {
    return Object.assign({}, ...this.norms.map((bn, i) => bn.stateDict(`bn${i + 1}.`))) as StateDict;
  }

  /** nn.Linear's layout for the dense layers (out x in). */
  stateDict(): StateDict {
    const sd: StateDict = {};
    this.dense.forEach((d, i) => Object.assign(sd, denseState(d, `fc${i + 1}`), this.norms[i]?.stateDict(`bn${i + 1}.`)));
    return sd;
  }

  loadStateDict(sd: StateDict): void {
    loadStrict(sd, [
      ...this.dense.map((d, i): LayerLoader => [`fc${i + 1}`, (own) => loadDense(d, `fc${i + 1}`, own)]),
      ...this.norms.map((bn, i): LayerLoader => [`bn${i + 1}`, (own) => bn.loadStateDict(own, { prefix: `bn${i + 1}.` })]),
    ]);
  }
}
