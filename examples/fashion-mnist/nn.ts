// The parts of the networks that are not normalization or convolution (conv.ts), in plain TypeScript: matrix
// products, a dense (fully connected) layer with He or Xavier initialization, ReLU, sigmoid, softmax cross-entropy
// and SGD. Everything is float32, row-major, one sample per row, like the (N, C) tensors normkit's BatchNorm1d takes.
import { Module, Parameter, type Tensor } from 'normkit';
import type { Rng } from './rng.js';

// ---------------------------------------------------------------------------------------------------------------
// Matrix products. They are where the time goes (normalization is a small part of the work), so they are written
// for V8: i-k-j order (the inner loop runs along contiguous rows of both operands, which V8 compiles to tight
// code), offsets of the rows computed outside the inner loop, and four rows of the left operand at a time, so each
// row of the right operand is loaded once per four rows instead of once per row (about twice as fast). Rows of
// zeros on the left are skipped: half of every Fashion-MNIST image is black background, and after a ReLU about
// half of the activations are 0 too.

/** out (n x m) = a (n x k) . b (k x m) */
export function matmul(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  out.fill(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
    const o0 = i * m, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m;
    for (let p = 0; p < k; p++) {
      const x0 = a[a0 + p]!, x1 = a[a1 + p]!, x2 = a[a2 + p]!, x3 = a[a3 + p]!;
      if (x0 === 0 && x1 === 0 && x2 === 0 && x3 === 0) continue;
      const bRow = p * m;
      for (let j = 0; j < m; j++) {
        const v = b[bRow + j]!;
        out[o0 + j]! += x0 * v;
        out[o1 + j]! += x1 * v;
        out[o2 + j]! += x2 * v;
        out[o3 + j]! += x3 * v;
      }
    }
  }
  for (; i < n; i++) {  // the last n % 4 rows
    const aRow = i * k, oRow = i * m;
    for (let p = 0; p < k; p++) {
      const x = a[aRow + p]!;
      if (x === 0) continue;
      const bRow = p * m;
      for (let j = 0; j < m; j++) out[oRow + j]! += x * b[bRow + j]!;
    }
  }
}

/** out (k x m) += a^T . b, for a (n x k) and b (n x m): the weight gradient x^T . dy, summed over the batch. */
export function matmulTransposedAAdd(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a0 = i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
    const b0 = i * m, b1 = b0 + m, b2 = b1 + m, b3 = b2 + m;
    for (let p = 0; p < k; p++) {
      const x0 = a[a0 + p]!, x1 = a[a1 + p]!, x2 = a[a2 + p]!, x3 = a[a3 + p]!;
      if (x0 === 0 && x1 === 0 && x2 === 0 && x3 === 0) continue;
      const oRow = p * m;
      for (let j = 0; j < m; j++) {
        out[oRow + j]! += x0 * b[b0 + j]! + x1 * b[b1 + j]! + x2 * b[b2 + j]! + x3 * b[b3 + j]!;
      }
    }
  }
  for (; i < n; i++) {
    const aRow = i * k, bRow = i * m;
    for (let p = 0; p < k; p++) {
      const x = a[aRow + p]!;
      if (x === 0) continue;
      const oRow = p * m;
      for (let j = 0; j < m; j++) out[oRow + j]! += x * b[bRow + j]!;
    }
  }
}

/** The transpose of a (rows x cols). */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const aRow = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = a[aRow + c]!;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Layers: normkit Module subclasses with their own forward and backward (normkit has no autograd), so a network is a
// container of them and normkit's Module gives it parameters(), train()/eval(), zeroGrad() and the state dict.

/**
 * A learnable array and its gradient: what sgdStep updates. normkit's Parameter has this shape (float32 or float64),
 * so one SGD loop updates the dense, convolution and batch norm layers alike.
 */
export interface Param {
  data: Float32Array | Float64Array;
  grad: Float32Array | Float64Array | null;
}

/** A parameter's data as the Float32Array the matrix products need: the demo's own layers are float32 only. */
export function f32(p: Parameter): Float32Array {
  if (!(p.data instanceof Float32Array)) throw new TypeError(`expected a float32 parameter but received ${p.data.constructor.name}`);
  return p.data;
}

/** p.grad as a Float32Array of p's length, allocated as zeros after zeroGrad() set it to null (PyTorch 2's default). */
export function f32Grad(p: Parameter): Float32Array {
  p.grad ??= new Float32Array(p.data.length);
  if (!(p.grad instanceof Float32Array)) throw new TypeError(`expected a float32 gradient but received ${p.grad.constructor.name}`);
  return p.grad;
}

/** The row count of a 2-d (n x features) float32 input, or a RangeError naming the expected shape. */
export function rowsOf(x: Tensor<Float32Array>, features: number, who: string): number {
  const n = x.shape[0] ?? 0;
  if (x.shape.length !== 2 || x.shape[1] !== features || x.data.length !== n * features) {
    throw new RangeError(`${who}: expected input of shape [n, ${features}] but received [${x.shape.join(', ')}] holding ${x.data.length} values`);
  }
  return n;
}

/** What a first layer's backward returns when nobody wants d(loss)/d(pixels): an empty tensor. */
export const noInputGrad = (n: number): Tensor<Float32Array> => ({ data: new Float32Array(0), shape: [n, 0] });

/**
 * nn.Linear: y = x . W^T + b, with W stored (out x in) as nn.Linear stores it, so the state dict needs no
 * conversion. The products run on its transpose (in x out, made per call: in*out values against the product's
 * n*in*out multiply-adds), the shape nn.ts's fast i-k-j kernel wants.
 */
export class Dense extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  private input: { x: Float32Array; n: number } | null = null;

  /**
   * `init` 'he': He (Kaiming) normal, std = sqrt(2 / fan_in), which keeps the variance of the activations about
   * constant through ReLU layers, so the MLP without batch norm starts from a fair place too. 'xavier': Xavier
   * (Glorot) uniform on +-sqrt(6 / (fan_in + fan_out)), made for sigmoid layers and what d2l's LeNet uses.
   * `inputGrad` false (a network's first layer): backward skips dx, as PyTorch skips the gradient of an input
   * that does not require one, and returns an empty tensor.
   */
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng,
    init: 'he' | 'xavier' = 'he', readonly inputGrad = true) {
    super();
    // Drawn in (in x out) order, the order of the demo's first checkpoints, so a seed keeps its weights.
    const w = new Float32Array(inFeatures * outFeatures);
    if (init === 'he') {
      const std = Math.sqrt(2 / inFeatures);
      for (let i = 0; i < w.length; i++) w[i] = std * rng.normal();
    } else {
      const bound = Math.sqrt(6 / (inFeatures + outFeatures));
      for (let i = 0; i < w.length; i++) w[i] = (2 * rng.next() - 1) * bound;
    }
    this.weight = new Parameter(transpose(w, inFeatures, outFeatures), [outFeatures, inFeatures]);
    this.bias = new Parameter(new Float32Array(outFeatures), [outFeatures]);
  }

  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    const n = rowsOf(x, this.inFeatures, 'Dense.forward');
    const k = this.inFeatures, m = this.outFeatures;
    const y = new Float32Array(n * m);
    matmul(x.data, transpose(f32(this.weight), m, k), y, n, k, m);
    const b = f32(this.bias);
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) y[row + j]! += b[j]!;
    }
    this.input = { x: x.data, n };
    return { data: y, shape: [n, m] };
  }

  /**
   * Adds dW = dy^T . x and db = sum(dy) into the gradients (as PyTorch's .grad accumulates) and returns
   * dx = dy . W (empty for a layer made with inputGrad false).
   */
  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    if (!this.input) throw new Error('Dense.backward called before forward');
    const { x, n } = this.input;
    const k = this.inFeatures, m = this.outFeatures;
    if (rowsOf(dy, m, 'Dense.backward') !== n) throw new RangeError(`Dense.backward: expected ${n} rows of gradient, as the last forward had, but received ${dy.shape[0]}`);
    // x^T . dy (in x out) by the fast kernel, then added transposed into nn.Linear's (out x in) gradient.
    const dWt = new Float32Array(k * m);
    matmulTransposedAAdd(x, dy.data, dWt, n, k, m);
    const dW = f32Grad(this.weight);
    for (let i = 0; i < k; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) dW[j * k + i]! += dWt[row + j]!;
    }
    const db = f32Grad(this.bias);
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) db[j]! += dy.data[row + j]!;
    }
    if (!this.inputGrad) return noInputGrad(n);
    const dx = new Float32Array(n * k);
    matmul(dy.data, f32(this.weight), dx, n, m, k);  // W (out x in) is dy's right operand as it stands
    return { data: dx, shape: [n, k] };
  }
}

/**
 * An elementwise activation that keeps its output, from which its gradient follows (ReLU and sigmoid both do).
 * Subclasses write the two loops themselves: a per-element virtual call would cost the hot loops their speed.
 */
abstract class Activation extends Module {
  protected output: Float32Array | null = null;

  /** The saved output, checked against dy's length. */
  protected saved(dy: Tensor<Float32Array>): Float32Array {
    const y = this.output;
    if (!y) throw new Error(`${this.constructor.name}.backward called before forward`);
    if (dy.data.length !== y.length) throw new RangeError(`${this.constructor.name}.backward: expected ${y.length} values but received ${dy.data.length}`);
    return y;
  }
}

/** nn.ReLU: max(0, x). Its gradient is 1 exactly where the output is positive. */
export class ReLU extends Activation {
  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    const y = new Float32Array(x.data.length);
    for (let i = 0; i < y.length; i++) y[i] = x.data[i]! > 0 ? x.data[i]! : 0;
    this.output = y;
    return { data: y, shape: [...x.shape] };
  }

  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    const y = this.saved(dy);
    const dx = new Float32Array(y.length);
    for (let i = 0; i < y.length; i++) dx[i] = y[i]! > 0 ? dy.data[i]! : 0;
    return { data: dx, shape: [...dy.shape] };
  }
}

/** nn.Sigmoid: 1 / (1 + e^-x) (d2l's LeNet activation). Its gradient is y (1 - y). */
export class Sigmoid extends Activation {
  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    const y = new Float32Array(x.data.length);
    for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-x.data[i]!));
    this.output = y;
    return { data: y, shape: [...x.shape] };
  }

  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    const y = this.saved(dy);
    const dx = new Float32Array(y.length);
    for (let i = 0; i < y.length; i++) dx[i] = dy.data[i]! * y[i]! * (1 - y[i]!);
    return { data: dx, shape: [...dy.shape] };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loss and optimizer

export interface LossResult {
  /** Mean cross-entropy over the batch (0 for no rows). */
  loss: number;
  /** The cross-entropy summed over the rows (what data-parallel ranks add up). */
  lossSum: number;
  /** d(mean loss)/d(logits) = (softmax - one_hot) / divisor (n unless told otherwise) */
  dLogits: Float32Array;
  /** How many rows have their largest logit at the label. */
  correct: number;
}

/** Index of the largest of row i's `classes` logits (the first one on ties; NaN logits never win). */
export function argmaxRow(logits: Float32Array, i: number, classes: number): number {
  let best = 0, bestValue = -Infinity;
  for (let c = 0; c < classes; c++) {
    const v = logits[i * classes + c]!;
    if (v > bestValue) { bestValue = v; best = c; }
  }
  return best;
}

/**
 * Softmax and cross-entropy in one step, computed from log-softmax with the row maximum subtracted (stable).
 * `divisor` (default n) divides the gradient: a data-parallel rank holding n rows of a global batch of B passes
 * B / ranks, so that the mean over the ranks of their gradients is the global batch's (see distributed.ts).
 */
export function softmaxCrossEntropy(logits: Float32Array, labels: Uint8Array, n: number, classes: number, divisor = n): LossResult {
  const dLogits = new Float32Array(n * classes);
  let loss = 0, correct = 0;
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[row + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[row + c]! - max);
    const label = labels[i]!;
    loss += Math.log(sum) - (logits[row + label]! - max);
    for (let c = 0; c < classes; c++) {
      const p = Math.exp(logits[row + c]! - max) / sum;
      dLogits[row + c] = (p - (c === label ? 1 : 0)) / divisor;
    }
    if (argmaxRow(logits, i, classes) === label) correct++;
  }
  return { loss: n > 0 ? loss / n : 0, lossSum: loss, dLogits, correct };
}

/** Plain SGD: p -= lr * grad. No momentum or weight decay, as in d2l's batch norm chapter. */
export function sgdStep(params: readonly Param[], lr: number): void {
  for (const p of params) {
    if (!p.grad) continue;
    const d = p.data, g = p.grad;
    for (let i = 0; i < d.length; i++) d[i]! -= lr * g[i]!;
  }
}

export function zeroGrad(params: readonly Param[]): void {
  for (const p of params) p.grad?.fill(0);
}
