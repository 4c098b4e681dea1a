// Layer: what the built-in layers share on top of Module. Each writes its forward and backward once, as a
// generator of native steps (native-steps.ts), and gets sync and async calls, the `out` option, the busy guard and
// a dtype that Module.to() can change. Users subclass Module and override plain forward/backward instead.
import { describe, formatShape } from '../errors.js';
import { parseOptions, checks, type OptionSpec } from '../options.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { allocate, checkTensor, convert, dtypeOf, isLike, type DType, type FloatArray, type Tensor } from '../tensor.js';
import type { ReluBackward, ReluForward } from '../functional/core.js';
import { checkResidual, type Activation } from './activation.js';
import { Module, type BackwardOptions, type ForwardOptions } from './module.js';

const FORWARD_SPEC: OptionSpec<ForwardOptions> = {
  out: { default: undefined, check: checks.floatArray },
  residual: { default: undefined, check: () => {} },  // checked against the input by checkResidual
};
const BACKWARD_SPEC: OptionSpec<BackwardOptions> = {
  out: { default: undefined, check: checks.floatArray },
  residualOut: { default: undefined, check: checks.floatArray },
};

/** What the last forward of a layer with an activation leaves for its backward (besides the layer's own state). */
interface ActivationSaved { residual: Tensor | null; shape: readonly number[] }

/** y as a Tensor<A>: the kernels write outputs of the input's dtype; anything else is a bug here. */
function sameKind<T extends Tensor>(x: T, y: Tensor): Tensor<T['data']> {
  const data = y.data;
  if (!isLike(x.data, data)) throw new Error('normkit internal: an output does not have its input\'s dtype');
  return { data, shape: y.shape };
}

/**
 * The base of normkit's built-in layers: forward/backward and their async forms over the layer's native steps
 * (protected forwardSteps/backwardSteps), the `out` option, the busy guard, and `dtype`. Your own layers extend
 * Module instead and override forward/backward.
 */
export abstract class Layer extends Module {
  private layerDtype: DType = 'float32';
  private fused: Activation = null;
  private activationSaved: ActivationSaved | null = null;
  private lastResidualGrad: Tensor | null = null;

  /** The activation applied after normalizing, in the same call ('relu'), or null (PyTorch's layers). */
  get activation(): Activation {
    return this.fused;
  }

  /**
   * The residual's gradient from the last backward after a forward with `residual` (dy masked by the ReLU; the
   * `residualOut` array when one was given); null otherwise.
   */
  get residualGrad(): Tensor | null {
    return this.lastResidualGrad;
  }

  protected setActivation(activation: Activation): void {
    this.fused = activation;
  }

  /**
   * For a layer's fast path of repeated calls (call-plan.ts), which serves the activation without a residual only:
   * the output shape of the last forward when it had the activation and no residual (null otherwise), ...
   */
  protected plainActivationShape(): readonly number[] | null {
    const saved = this.activationSaved;
    return this.fused === 'relu' && saved !== null && saved.residual === null ? saved.shape : null;
  }

  /** ... what activatedForward records after such a forward (nothing without the activation), ... */
  protected recordPlainActivation(shape: readonly number[]): void {
    if (this.fused === 'relu') this.activationSaved = { residual: null, shape };
  }

  /** ... and what activatedBackward records after a backward of one: no residual gradient. */
  protected recordPlainBackward(): void {
    if (this.fused === 'relu') this.lastResidualGrad = null;
  }

  /** The dtype of the parameters and statistics, and of the inputs accepted. Changed by `to(dtype)`. */
  get dtype(): DType {
    return this.layerDtype;
  }

  protected setDtype(dtype: DType): void {
    this.layerDtype = dtype;
  }

  /**
   * The forward as native steps; commits its state (running stats, saved input) only at the end. relu: the fused
   * activation (y = relu(norm(x) + r) in the normalize pass), or null.
   */
  protected abstract forwardSteps(x: Tensor, out: FloatArray | undefined, relu: ReluForward | null): Steps<Tensor>;
  /**
   * The backward of the last forward as native steps; adds into the parameters' grads at the end. relu: the fused
   * activation's backward (dy masked by the ReLU inside the kernels, the residual's gradient into relu.dr), or null.
   */
  protected abstract backwardSteps(dy: Tensor, out: FloatArray | undefined, relu: ReluBackward | null): Steps<Tensor>;

  /** The layer's forward, with the activation (and the residual) fused into its normalize pass. */
  private *activatedForward(x: Tensor, what: string, options: unknown): Steps<Tensor> {
    const o = parseOptions<ForwardOptions>(`${this.layerName}.${what}`, options, FORWARD_SPEC);
    const residual = checkResidual(`${this.layerName}.${what}`, this.fused, x, o.residual, o.out);  // before any state changes
    const y = yield* this.forwardSteps(x, o.out, this.fused === 'relu' ? { r: residual?.data ?? null } : null);
    if (this.fused === 'relu') this.activationSaved = { residual, shape: y.shape };
    return y;
  }

  /**
   * With an activation, the layer's backward of dz = dy masked by the ReLU: the kernels recompute the mask from the
   * saved input wherever they read dy. dz is the residual's gradient, written into residualOut when given.
   */
  private *activatedBackward(dyIn: Tensor, what: string, options: unknown): Steps<Tensor> {
    const owner = `${this.layerName}.${what}`;
    const o = parseOptions<BackwardOptions>(owner, options, BACKWARD_SPEC);
    if (this.fused === null) {
      if (o.residualOut) throw new TypeError(`${owner}: residualOut needs a layer built with activation 'relu' (this one has none)`);
      return yield* this.backwardSteps(dyIn, o.out, null);
    }
    const saved = this.activationSaved;
    if (!saved) throw this.noForward();
    const dy = checkTensor(dyIn, 'dy');
    if (dy.shape.length !== saved.shape.length || dy.shape.some((d, i) => d !== saved.shape[i])) {
      throw new RangeError(`${owner}: expected dy of the output's shape ${formatShape(saved.shape)} but got ${formatShape(dy.shape)}`);
    }
    if (dtypeOf(dy.data) !== this.dtype) throw new TypeError(`${owner}: expected ${this.dtype} dy (the layer's dtype) but received ${describe(dy.data)}`);
    const n = dy.data.length;
    for (const [name, a] of [['out', o.out], ['residualOut', o.residualOut]] as const) {
      if (a && dtypeOf(a) !== this.dtype) throw new TypeError(`${owner}: expected ${name} to be a ${this.dtype} array (the layer's dtype) but got ${describe(a)}`);
      if (a && a.length !== n) throw new RangeError(`${owner}: expected ${name} to be a ${this.dtype} array of length ${n} but got ${describe(a)}`);
    }
    if (o.residualOut && !saved.residual) throw new TypeError(`${owner}: residualOut needs a forward with a residual (the last one had none)`);
    for (const t of [dy.data, o.out, saved.residual?.data]) {
      if (t && o.residualOut && t.buffer === o.residualOut.buffer) throw new RangeError(`${owner}: residualOut must not share memory with dy, out or the residual`);
    }
    if (o.out && o.out.buffer === dy.data.buffer) throw new RangeError(`${owner}: out must not share memory with dy (with an activation, dy is read after out is written)`);
    // dz is written out only as the residual's gradient (the kernels keep it in a chunk-sized buffer otherwise).
    const dz = saved.residual ? o.residualOut ?? allocate(this.dtype, n) : null;
    const dx = yield* this.backwardSteps(dy, o.out, { r: saved.residual?.data ?? null, dr: dz });
    this.lastResidualGrad = dz ? { data: dz, shape: dy.shape } : null;
    return dx;
  }

  /**
   * Normalizes x (training: batch statistics, and running statistics updated where the layer keeps them; eval:
   * running statistics). Returns a new tensor of x's dtype and shape, or `out` filled. x is kept by reference for
   * backward: do not mutate it before then. Throws TypeError/RangeError on bad input, changing no state.
   */
  override forward<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    return sameKind(x, runSync(this.activatedForward(x, 'forward', options)));
  }

  /**
   * The gradient of the last forward: returns dx for dy (of the output's shape and dtype) and ADDS into
   * weight.grad / bias.grad. With activation 'relu' the ReLU's gradient is included, and after a residual forward
   * the residual's gradient goes to `residualOut` / `residualGrad`. Throws if there was no forward.
   */
  override backward<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    return sameKind(dy, runSync(this.activatedBackward(dy, 'backward', options)));
  }

  /** forward with the kernels on the libuv pool; the layer refuses other calls until it settles. Same bits as forward. */
  override forwardAsync<T extends Tensor>(x: T, options?: ForwardOptions<T['data']>): Promise<Tensor<T['data']>> {
    return this.exclusive('forwardAsync', async () => sameKind(x, await runAsync(this.activatedForward(x, 'forwardAsync', options))));
  }

  /** backward with the kernels on the libuv pool (see forwardAsync). */
  override backwardAsync<T extends Tensor>(dy: T, options?: BackwardOptions<T['data']>): Promise<Tensor<T['data']>> {
    return this.exclusive('backwardAsync', async () => sameKind(dy, await runAsync(this.activatedBackward(dy, 'backwardAsync', options))));
  }

  /** Records the new dtype; subclasses convert their buffers too. */
  protected override convertState(dtype: DType): () => void {
    return () => this.setDtype(dtype);
  }

  /** The error for backward before any forward. */
  protected noForward(): Error {
    return new Error(`${this.layerName}: backward called before forward (there is nothing to differentiate)`);
  }

  /** `out` must not share memory with the input that backward reads (in forward, and again in every backward). */
  protected checkOutAlias(out: FloatArray | undefined, x: Tensor, what: 'forward' | 'backward' = 'forward'): void {
    if (out && out.buffer === x.data.buffer) {
      throw new RangeError(`${this.layerName}.${what}: out must not share memory with the input (backward reads the input)`);
    }
  }
}

/** A converted copy of a buffer, or null for none (a helper for convertState overrides). */
export function convertBuffer(a: FloatArray | null, dtype: DType): FloatArray | null {
  return a && convert(a, dtype);
}
