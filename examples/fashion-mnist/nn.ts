// The parts of the network that are not normalization, in plain TypeScript: matrix products, a dense (fully
// connected) layer with He initialization, ReLU, softmax cross-entropy and SGD. Everything is float32, row-major,
// one sample per row, like the (N, C) tensors normkit's BatchNorm1d takes.
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
// Layers

/**
 * A learnable array and its gradient. normkit's Parameter has this shape too (float32 or float64), so one SGD
 * loop updates the dense layers and the batch norm layers alike.
 */
export interface Param {
  data: Float32Array | Float64Array;
  grad: Float32Array | Float64Array | null;
}

/** A dense layer's parameter: always float32, which the matrix products need. */
export interface DenseParam extends Param {
  data: Float32Array;
  grad: Float32Array | null;
}

/**
 * y = x . W + b. W is stored (in x out) so the forward is a plain i-k-j product; PyTorch's nn.Linear stores it
 * (out x in), which is what `model.ts` writes to checkpoints.
 */
export class Dense {
  readonly weight: DenseParam;
  readonly bias: DenseParam;
  private input: { x: Float32Array; n: number } | null = null;

  /**
   * `init` 'he': He (Kaiming) normal, std = sqrt(2 / fan_in), which keeps the variance of the activations about
   * constant through ReLU layers, so the MLP without batch norm starts from a fair place too. 'xavier': Xavier
   * (Glorot) uniform on +-sqrt(6 / (fan_in + fan_out)), made for sigmoid layers and what d2l's LeNet uses.
   */
  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, init: 'he' | 'xavier' = 'he') {
    const w = new Float32Array(inFeatures * outFeatures);
    if (init === 'he') {
      const std = Math.sqrt(2 / inFeatures);
      for (let i = 0; i < w.length; i++) w[i] = std * rng.normal();
    } else {
      const bound = Math.sqrt(6 / (inFeatures + outFeatures));
      for (let i = 0; i < w.length; i++) w[i] = (2 * rng.next() - 1) * bound;
    }
    this.weight = { data: w, grad: null };
    this.bias = { data: new Float32Array(outFeatures), grad: null };
  }

  forward(x: Float32Array, n: number): Float32Array {
    const y = new Float32Array(n * this.outFeatures);
    matmul(x, this.weight.data, y, n, this.inFeatures, this.outFeatures);
    const b = this.bias.data, m = this.outFeatures;
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) y[row + j]! += b[j]!;
    }
    this.input = { x, n };
    return y;
  }

  /**
   * Adds dW = x^T . dy and db = sum(dy) into the gradients (as PyTorch's .grad accumulates) and returns
   * dx = dy . W^T, or null when `needInputGrad` is false (the first layer: nobody wants d(loss)/d(pixels)).
   */
  backward(dy: Float32Array, needInputGrad = true): Float32Array | null {
    if (!this.input) throw new Error('Dense.backward called before forward');
    const { x, n } = this.input;
    const k = this.inFeatures, m = this.outFeatures;
    this.weight.grad ??= new Float32Array(k * m);
    this.bias.grad ??= new Float32Array(m);
    matmulTransposedAAdd(x, dy, this.weight.grad, n, k, m);
    const db = this.bias.grad;
    for (let i = 0; i < n; i++) {
      const row = i * m;
      for (let j = 0; j < m; j++) db[j]! += dy[row + j]!;
    }
    if (!needInputGrad) return null;
    // W^T is small (k x m) next to the product (n x k x m multiply-adds), and transposing it lets dx use the
    // same fast kernel.
    const dx = new Float32Array(n * k);
    matmul(dy, transpose(this.weight.data, k, m), dx, n, m, k);
    return dx;
  }

  parameters(): DenseParam[] {
    return [this.weight, this.bias];
  }
}

/** max(0, x), elementwise. Keeps its output: ReLU's gradient is 1 exactly where the output is positive. */
export class ReLU {
  private output: Float32Array | null = null;

  forward(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = x[i]! > 0 ? x[i]! : 0;
    this.output = y;
    return y;
  }

  backward(dy: Float32Array): Float32Array {
    if (!this.output) throw new Error('ReLU.backward called before forward');
    const y = this.output;
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) dx[i] = y[i]! > 0 ? dy[i]! : 0;
    return dx;
  }
}

/** 1 / (1 + e^-x), elementwise (d2l's LeNet activation). Keeps its output: the gradient is y (1 - y). */
export class Sigmoid {
  private output: Float32Array | null = null;

  forward(x: Float32Array): Float32Array {
    const y = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]!));
    this.output = y;
    return y;
  }

  backward(dy: Float32Array): Float32Array {
    if (!this.output) throw new Error('Sigmoid.backward called before forward');
    const y = this.output;
    const dx = new Float32Array(dy.length);
    for (let i = 0; i < dy.length; i++) dx[i] = dy[i]! * y[i]! * (1 - y[i]!);
    return dx;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loss and optimizer

export interface LossResult {
  /** Mean cross-entropy over the batch. */
  loss: number;
  /** d(mean loss)/d(logits) = (softmax - one_hot) / n */
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

/** Softmax and cross-entropy in one step, computed from log-softmax with the row maximum subtracted (stable). */
export function softmaxCrossEntropy(logits: Float32Array, labels: Uint8Array, n: number, classes: number): LossResult {
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
      dLogits[row + c] = (p - (c === label ? 1 : 0)) / n;
    }
    if (argmaxRow(logits, i, classes) === label) correct++;
  }
  return { loss: loss / n, dLogits, correct };
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
