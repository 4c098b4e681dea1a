// The network: a multilayer perceptron 784 -> hidden... -> 10 with ReLU, with or without a BatchNorm1d between
// each hidden dense layer and its ReLU (where d2l and the batch norm paper put it). normkit does all the
// normalization: batch statistics in training mode, running statistics in eval mode.
//
// Checkpoints use the keys and layouts PyTorch gives the equivalent module, fc1, bn1, fc2, bn2, ..., fcN as
// attributes (load_in_pytorch.py defines it and loads a checkpoint with strict=True):
//
//   x = fcN(relu(bn2(fc2(relu(bn1(fc1(x)))))))      # without batch norm: the same without the bn layers
import { BatchNorm1d, type StateDict, type Tensor } from 'normkit';
import { Dense, ReLU, transpose, type Param } from './nn.js';
import { Rng } from './rng.js';

export interface MlpOptions {
  inputs: number;
  hidden: readonly number[];
  classes: number;
  batchNorm: boolean;
  /** Seeds the weight initialization: two models with the same seed and sizes start from the same weights. */
  seed: number;
}

/** normkit returns float32 for float32 input; the dense layers need to know it statically. */
function float32(t: Tensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new TypeError('expected a float32 tensor from BatchNorm1d');
  return t.data;
}

export class Mlp {
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

  /** Logits (n x classes) for n images (n x inputs). */
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

  /** Backpropagates d(loss)/d(logits) of the last forward, adding into every parameter's gradient. */
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

  /** Training mode: batch norm normalizes with batch statistics and updates its running statistics. */
  train(): this {
    this.training = true;
    for (const bn of this.norms) bn.train();
    return this;
  }

  /** Eval mode: batch norm normalizes with the running statistics, so a prediction does not depend on the batch. */
  eval(): this {
    this.training = false;
    for (const bn of this.norms) bn.eval();
    return this;
  }

  /** The batch norm layers' state only: bn1.weight, bn1.bias, bn1.running_mean, ... (PyTorch's keys). */
  batchNormStateDict(): StateDict {
    return Object.assign({}, ...this.norms.map((bn, i) => bn.stateDict(`bn${i + 1}.`))) as StateDict;
  }

  /** The whole model's state with PyTorch's keys, in its module order, and layouts (nn.Linear's weight is out x in). */
  stateDict(): StateDict {
    const sd: StateDict = {};
    this.dense.forEach((d, i) => {
      sd[`fc${i + 1}.weight`] = { data: transpose(d.weight.data, d.inFeatures, d.outFeatures), shape: [d.outFeatures, d.inFeatures] };
      sd[`fc${i + 1}.bias`] = { data: d.bias.data.slice(), shape: [d.outFeatures] };
      Object.assign(sd, this.norms[i]?.stateDict(`bn${i + 1}.`));
    });
    return sd;
  }

  /**
   * Loads a state dict written by `stateDict` (or by PyTorch for the module above). Strict: every key must match.
   * Layer by layer, so a dict that fails part way leaves the model partly loaded: load into a fresh model.
   */
  loadStateDict(sd: StateDict): void {
    const known = new Set<string>();
    this.dense.forEach((d, i) => {
      const w = sd[`fc${i + 1}.weight`], b = sd[`fc${i + 1}.bias`];
      if (!w || !b || !(w.data instanceof Float32Array || w.data instanceof Float64Array) ||
        !(b.data instanceof Float32Array || b.data instanceof Float64Array) ||
        w.data.length !== d.weight.data.length || b.data.length !== d.bias.data.length ||
        w.shape[0] !== d.outFeatures || w.shape[1] !== d.inFeatures) {
        throw new RangeError(`fc${i + 1}: expected weight [${d.outFeatures}, ${d.inFeatures}] and bias [${d.outFeatures}]`);
      }
      d.weight.data.set(transpose(Float32Array.from(w.data), d.outFeatures, d.inFeatures));
      d.bias.data.set(b.data);
      known.add(`fc${i + 1}.weight`).add(`fc${i + 1}.bias`);
    });
    this.norms.forEach((bn, i) => {
      const prefix = `bn${i + 1}.`;
      // Only this layer's keys, so that its strict load reports missing and unexpected keys of its own.
      const own = Object.fromEntries(Object.entries(sd).filter(([key]) => key.startsWith(prefix)));
      bn.loadStateDict(own, { prefix });
      for (const key of Object.keys(own)) known.add(key);
    });
    const unexpected = Object.keys(sd).filter((k) => !known.has(k));
    if (unexpected.length) throw new RangeError(`unexpected key(s) in state dict: ${unexpected.join(', ')}`);
  }
}
