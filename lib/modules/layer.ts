// Layer: what the built-in layers share on top of Module. Each writes its forward and backward once, as a
// generator of native steps (native-steps.ts), and gets sync and async calls, the `out` option, the busy guard and
// a dtype that Module.to() can change. Users subclass Module and override plain forward/backward instead.
import { parseOptions, checks, type OptionSpec } from '../options.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { convert, isLike, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { Module, type CallOptions } from './module.js';

const CALL_SPEC: OptionSpec<CallOptions> = { out: { default: undefined, check: checks.floatArray } };

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

  /** The dtype of the parameters and statistics, and of the inputs accepted. Changed by `to(dtype)`. */
  get dtype(): DType {
    return this.layerDtype;
  }

  protected setDtype(dtype: DType): void {
    this.layerDtype = dtype;
  }

  /** The forward as native steps; commits its state (running stats, saved input) only at the end. */
  protected abstract forwardSteps(x: Tensor, out: FloatArray | undefined): Steps<Tensor>;
  /** The backward of the last forward as native steps; adds into the parameters' grads at the end. */
  protected abstract backwardSteps(dy: Tensor, out: FloatArray | undefined): Steps<Tensor>;

  private callOut(what: string, options: unknown): FloatArray | undefined {
    return parseOptions<CallOptions>(`${this.layerName}.${what}`, options, CALL_SPEC).out;
  }

  /**
   * Normalizes x (training: batch statistics, and running statistics updated where the layer keeps them; eval:
   * running statistics). Returns a new tensor of x's dtype and shape, or `out` filled. x is kept by reference for
   * backward: do not mutate it before then. Throws TypeError/RangeError on bad input, changing no state.
   */
  override forward<T extends Tensor>(x: T, options?: CallOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('forward');
    return sameKind(x, runSync(this.forwardSteps(x, this.callOut('forward', options))));
  }

  /**
   * The gradient of the last forward: returns dx for dy (of the output's shape and dtype) and ADDS into
   * weight.grad / bias.grad. Throws if there was no forward.
   */
  override backward<T extends Tensor>(dy: T, options?: CallOptions<T['data']>): Tensor<T['data']> {
    this.assertIdle('backward');
    return sameKind(dy, runSync(this.backwardSteps(dy, this.callOut('backward', options))));
  }

  /** forward with the kernels on the libuv pool; the layer refuses other calls until it settles. Same bits as forward. */
  override forwardAsync<T extends Tensor>(x: T, options?: CallOptions<T['data']>): Promise<Tensor<T['data']>> {
    return this.exclusive('forwardAsync', async () => sameKind(x, await runAsync(this.forwardSteps(x, this.callOut('forwardAsync', options)))));
  }

  /** backward with the kernels on the libuv pool (see forwardAsync). */
  override backwardAsync<T extends Tensor>(dy: T, options?: CallOptions<T['data']>): Promise<Tensor<T['data']>> {
    return this.exclusive('backwardAsync', async () => sameKind(dy, await runAsync(this.backwardSteps(dy, this.callOut('backwardAsync', options)))));
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
