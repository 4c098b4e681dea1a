// The convolutional layers of the LeNet in cnn.ts, in plain TypeScript on float32 NCHW arrays (PyTorch's layout,
// so the weights go into a checkpoint as they are): a 2-d convolution (stride 1, no padding) and 2 x 2 average
// pooling.
//
// The convolution is im2col + matrix product, one image at a time: the image's k x k patches are copied into the
// columns of a (C*k*k) x (OH*OW) matrix, and the output (O x OH*OW, which is the image's NCHW output as it stands)
// is weight (O x C*k*k) times that matrix (matmulBt below). Per image, not per batch, so that the patch matrix
// stays small (57 KB for the first layer) instead of growing with the batch (the evaluation runs 1000 images at a
// time); backward rebuilds it rather than keeping one per image.
import { Module, Parameter, type Tensor } from 'normkit';
import { f32, f32Grad, transpose } from './nn.js';
import type { Rng } from './rng.js';

/** A float32 NCHW activation: shape [n, channels, height, width]. */
export interface Act4 {
  data: Float32Array;
  shape: readonly [number, number, number, number];
}

/** x as an Act4, or a RangeError: the layers here take 4-d NCHW input only. */
export function act4(x: Tensor<Float32Array>, who: string): Act4 {
  const [n = 0, c = 0, h = 0, w = 0] = x.shape;
  if (x.shape.length !== 4 || x.data.length !== n * c * h * w) {
    throw new RangeError(`${who}: expected NCHW input [n, c, h, w] but received [${x.shape.join(', ')}] holding ${x.data.length} values`);
  }
  return { data: x.data, shape: [n, c, h, w] };
}

/**
 * The k x k patches of one image (C x H x W, starting at x[offset]) as a (C*k*k) x (OH*OW) matrix: entry
 * (row, pos) goes to cols[row * rowStride + pos * posStride], so one function writes both layouts the products
 * need: the patch matrix (rowStride OH*OW, posStride 1) and its transpose (rowStride 1, posStride C*k*k).
 */
export function im2col(x: Float32Array, offset: number, c: number, h: number, w: number, k: number,
  cols: Float32Array, rowStride: number, posStride: number): void {
  const oh = h - k + 1, ow = w - k + 1;
  let row = 0;
  for (let ch = 0; ch < c; ch++) {
    for (let ki = 0; ki < k; ki++) {
      for (let kj = 0; kj < k; kj++, row++) {
        for (let i = 0; i < oh; i++) {
          const src = offset + (ch * h + i + ki) * w + kj;
          let d = row * rowStride + i * ow * posStride;
          for (let j = 0; j < ow; j++, d += posStride) cols[d] = x[src + j]!;
        }
      }
    }
  }
}

/** The adjoint of im2col (same layout arguments): adds each entry back to the pixel it was copied from. */
export function col2imAdd(cols: Float32Array, rowStride: number, posStride: number, c: number, h: number, w: number,
  k: number, dx: Float32Array, offset: number): void {
  const oh = h - k + 1, ow = w - k + 1;
  let row = 0;
  for (let ch = 0; ch < c; ch++) {
    for (let ki = 0; ki < k; ki++) {
      for (let kj = 0; kj < k; kj++, row++) {
        for (let i = 0; i < oh; i++) {
          const d = offset + (ch * h + i + ki) * w + kj;
          let s = row * rowStride + i * ow * posStride;
          for (let j = 0; j < ow; j++, s += posStride) dx[d + j]! += cols[s]!;
        }
      }
    }
  }
}

/**
 * out (n x m) = a (n x k) . b^T for b (m x k), or += with `accumulate`: every entry is a dot product of two
 * contiguous rows. Computed in tiles of 2 rows of a by 4 rows of b, whose 8 sums stay in registers: 6 loads per
 * 8 multiply-adds and no stores in the inner loop (nn.ts's i-k-j matmul loads and stores the output row at every
 * step, which is the better shape for its long, sparse rows but 2-3 times slower on the convolutions' short,
 * dense ones).
 */
export function matmulBt(a: Float32Array, b: Float32Array, out: Float32Array, n: number, k: number, m: number, accumulate = false): void {
  const put = (index: number, value: number) => { out[index] = accumulate ? out[index]! + value : value; };
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const a0 = i * k, a1 = a0 + k, o0 = i * m, o1 = o0 + m;
    let j = 0;
    for (; j + 4 <= m; j += 4) {
      const b0 = j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let p = 0; p < k; p++) {
        const x0 = a[a0 + p]!, x1 = a[a1 + p]!;
        const y0 = b[b0 + p]!, y1 = b[b1 + p]!, y2 = b[b2 + p]!, y3 = b[b3 + p]!;
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      put(o0 + j, s00); put(o0 + j + 1, s01); put(o0 + j + 2, s02); put(o0 + j + 3, s03);
      put(o1 + j, s10); put(o1 + j + 1, s11); put(o1 + j + 2, s12); put(o1 + j + 3, s13);
    }
    for (; j < m; j++) {  // the last m % 4 rows of b
      const bRow = j * k;
      let s0 = 0, s1 = 0;
      for (let p = 0; p < k; p++) { s0 += a[a0 + p]! * b[bRow + p]!; s1 += a[a1 + p]! * b[bRow + p]!; }
      put(o0 + j, s0); put(o1 + j, s1);
    }
  }
  for (; i < n; i++) {  // an odd last row of a
    const aRow = i * k, oRow = i * m;
    for (let j = 0; j < m; j++) {
      const bRow = j * k;
      let s = 0;
      for (let p = 0; p < k; p++) s += a[aRow + p]! * b[bRow + p]!;
      put(oRow + j, s);
    }
  }
}

/**
 * nn.Conv2d(inChannels, outChannels, kernel) with stride 1 and no padding, as d2l's LeNet uses it. The weight is
 * stored as PyTorch stores it, (O, C, k, k), which read as a matrix is the O x (C*k*k) left operand of im2col.
 * Xavier (Glorot) uniform initialization, as d2l initializes LeNet's weights; bias 0.
 */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  private input: Act4 | null = null;

  /**
   * `inputGrad` false (a network's first layer): backward skips dx, as PyTorch skips the gradient of an input
   * that does not require one, and returns an empty tensor.
   */
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernel: number, rng: Rng,
    readonly inputGrad = true) {
    super();
    const fanIn = inChannels * kernel * kernel, fanOut = outChannels * kernel * kernel;
    const bound = Math.sqrt(6 / (fanIn + fanOut));
    this.weight = new Parameter(Float32Array.from({ length: outChannels * fanIn }, () => (2 * rng.next() - 1) * bound),
      [outChannels, inChannels, kernel, kernel]);
    this.bias = new Parameter(new Float32Array(outChannels), [outChannels]);
  }

  /** The output's shape for an input of shape [n, C, h, w]. */
  outputShape([n, c, h, w]: Act4['shape']): Act4['shape'] {
    if (c !== this.inChannels || h < this.kernel || w < this.kernel) {
      throw new RangeError(`Conv2d(${this.inChannels}, ${this.outChannels}, ${this.kernel}): expected [n, ${this.inChannels}, ` +
        `h >= ${this.kernel}, w >= ${this.kernel}], got [${[n, c, h, w].join(', ')}]`);
    }
    return [n, this.outChannels, h - this.kernel + 1, w - this.kernel + 1];
  }

  override forward(input: Tensor<Float32Array>): Tensor<Float32Array> {
    if (input.shape.length === 4) this.outputShape(input.shape as Act4['shape']);  // the layer's own message first
    const x = act4(input, 'Conv2d.forward');
    const shape = this.outputShape(x.shape);
    const [n, c, h, w] = x.shape, [, o, oh, ow] = shape;
    const rows = c * this.kernel * this.kernel, p = oh * ow;
    const patches = new Float32Array(p * rows), image = new Float32Array(o * p);
    const y = new Float32Array(n * o * p), b = f32(this.bias), weight = f32(this.weight);
    for (let s = 0; s < n; s++) {
      // y_image (O x P) = W (O x rows) . patches^T, the patches one per row (P x rows)
      im2col(x.data, s * c * h * w, c, h, w, this.kernel, patches, 1, rows);
      matmulBt(weight, patches, image, o, rows, p);
      for (let ch = 0; ch < o; ch++) {
        const src = ch * p, dst = s * o * p + ch * p, bias = b[ch]!;
        for (let j = 0; j < p; j++) y[dst + j] = image[src + j]! + bias;
      }
    }
    this.input = x;
    return { data: y, shape };
  }

  /**
   * Adds dW = sum over images of dy . cols^T and db = sum(dy) into the gradients, and returns dx = col2im of
   * W^T . dy (empty for a layer made with inputGrad false).
   */
  override backward(dyTensor: Tensor<Float32Array>): Tensor<Float32Array> {
    if (!this.input) throw new Error('Conv2d.backward called before forward');
    const x = this.input;
    const [n, c, h, w] = x.shape, [, o, oh, ow] = this.outputShape(x.shape);
    const rows = c * this.kernel * this.kernel, p = oh * ow;
    const dy = dyTensor.data;
    if (dy.length !== n * o * p) throw new RangeError(`Conv2d.backward: expected ${n * o * p} values, the last output's, but received ${dy.length}`);
    const dW = f32Grad(this.weight), db = f32Grad(this.bias);
    const cols = new Float32Array(rows * p), dPatches = new Float32Array(p * rows);
    const wT = this.inputGrad ? transpose(f32(this.weight), o, rows) : null;
    const dx = this.inputGrad ? new Float32Array(x.data.length) : null;
    for (let s = 0; s < n; s++) {
      const dyImage = dy.subarray(s * o * p, (s + 1) * o * p);
      // dW (O x rows) += dy_image (O x P) . cols^T, cols being the patch matrix (rows x P)
      im2col(x.data, s * c * h * w, c, h, w, this.kernel, cols, p, 1);
      matmulBt(dyImage, cols, dW, o, p, rows, true);
      for (let ch = 0; ch < o; ch++) {
        let sum = 0;
        for (let j = 0; j < p; j++) sum += dyImage[ch * p + j]!;
        db[ch]! += sum;
      }
      if (wT && dx) {
        // d(patches) (P x rows) = dy_image^T (P x O) . W (O x rows), then each entry back to its pixel
        matmulBt(transpose(dyImage, o, p), wT, dPatches, p, o, rows);
        col2imAdd(dPatches, 1, rows, c, h, w, this.kernel, dx, s * c * h * w);
      }
    }
    return dx ? { data: dx, shape: x.shape } : { data: new Float32Array(0), shape: [n, 0] };
  }
}

/** nn.AvgPool2d(2, stride=2): the mean of each 2 x 2 block (an odd last row or column is dropped, as PyTorch does). */
export class AvgPool2x2 extends Module {
  private inputShape: Act4['shape'] | null = null;

  override forward(input: Tensor<Float32Array>): Tensor<Float32Array> {
    const x = act4(input, 'AvgPool2x2.forward');
    const [n, c, h, w] = x.shape, oh = h >> 1, ow = w >> 1;
    const y = new Float32Array(n * c * oh * ow);
    for (let plane = 0; plane < n * c; plane++) {
      const src = plane * h * w, dst = plane * oh * ow;
      for (let i = 0; i < oh; i++) {
        const r0 = src + 2 * i * w, r1 = r0 + w;
        for (let j = 0; j < ow; j++) {
          y[dst + i * ow + j] = (x.data[r0 + 2 * j]! + x.data[r0 + 2 * j + 1]! + x.data[r1 + 2 * j]! + x.data[r1 + 2 * j + 1]!) * 0.25;
        }
      }
    }
    this.inputShape = x.shape;
    return { data: y, shape: [n, c, oh, ow] };
  }

  /** Each input pixel of a block gets a quarter of the block's output gradient. */
  override backward(dyTensor: Tensor<Float32Array>): Tensor<Float32Array> {
    if (!this.inputShape) throw new Error('AvgPool2x2.backward called before forward');
    const [n, c, h, w] = this.inputShape, oh = h >> 1, ow = w >> 1;
    const dy = dyTensor.data;
    if (dy.length !== n * c * oh * ow) throw new RangeError(`AvgPool2x2.backward: expected ${n * c * oh * ow} values, the last output's, but received ${dy.length}`);
    const dx = new Float32Array(n * c * h * w);
    for (let plane = 0; plane < n * c; plane++) {
      const dst = plane * h * w, src = plane * oh * ow;
      for (let i = 0; i < oh; i++) {
        const r0 = dst + 2 * i * w, r1 = r0 + w;
        for (let j = 0; j < ow; j++) {
          const g = dy[src + i * ow + j]! * 0.25;
          dx[r0 + 2 * j] = g; dx[r0 + 2 * j + 1] = g; dx[r1 + 2 * j] = g; dx[r1 + 2 * j + 1] = g;
        }
      }
    }
    return { data: dx, shape: this.inputShape };
  }
}

/** nn.Flatten: (n, c, h, w) read as (n, c*h*w), NCHW's order; backward gives the gradient its 4-d shape back. */
export class Flatten extends Module {
  private inputShape: readonly number[] | null = null;

  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    const n = x.shape[0] ?? 0;
    this.inputShape = [...x.shape];
    return { data: x.data, shape: [n, n > 0 ? x.data.length / n : x.shape.slice(1).reduce((a, b) => a * b, 1)] };
  }

  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    if (!this.inputShape) throw new Error('Flatten.backward called before forward');
    return { data: dy.data, shape: this.inputShape };
  }
}
