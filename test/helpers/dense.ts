// A user-defined layer, written as a user would: y = x W^T + b (torch.nn.Linear), with its hand-written backward.
// It extends normkit's Module with plain forward/backward overrides; its Parameters register by field name.
import { Module, Parameter, type DType, type FloatArray, type Tensor } from '../../lib/index.js';

function like(a: FloatArray, n: number): FloatArray {
  return a instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
}

export class Dense extends Module {
  weight: Parameter;
  bias: Parameter;
  private input: Tensor | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, dtype: DType = 'float32') {
    super();
    const make = (n: number) => (dtype === 'float32' ? new Float32Array(n) : new Float64Array(n));
    this.weight = new Parameter(make(outFeatures * inFeatures), [outFeatures, inFeatures]);
    this.bias = new Parameter(make(outFeatures), [outFeatures]);
  }

  override forward(x: Tensor): Tensor {
    const [N = 0] = x.shape, I = this.inFeatures, O = this.outFeatures, w = this.weight.data, b = this.bias.data;
    const y = like(x.data, N * O);
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < O; o++) {
        let s = b[o]!;
        for (let i = 0; i < I; i++) s += x.data[n * I + i]! * w[o * I + i]!;
        y[n * O + o] = s;
      }
    }
    this.input = x;
    return { data: y, shape: [N, O] };
  }

  override backward(dy: Tensor): Tensor {
    const x = this.input;
    if (!x) throw new Error('Dense: backward before forward');
    const [N = 0] = x.shape, I = this.inFeatures, O = this.outFeatures, w = this.weight.data;
    const dx = like(x.data, N * I);
    const gw = (this.weight.grad ??= like(w, w.length)), gb = (this.bias.grad ??= like(w, O));
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < O; o++) {
        const g = dy.data[n * O + o]!;
        gb[o]! += g;
        for (let i = 0; i < I; i++) {
          dx[n * I + i]! += g * w[o * I + i]!;
          gw[o * I + i]! += g * x.data[n * I + i]!;
        }
      }
    }
    return { data: dx, shape: [N, I] };
  }
}
