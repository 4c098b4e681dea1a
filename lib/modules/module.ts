// Module: torch.nn.Module's conventions. Subclass it, assign Parameters and child modules to fields, override
// forward (and backward: normkit has no autograd, so a layer states its own gradient).
//
// Registration: a module's members are read from its own enumerable fields when a tree operation runs
// (Object.entries: creation order, which is assignment order), not trapped as they are assigned. A Proxy would see
// every assignment as PyTorch's __setattr__ does, but it would slow every field read in the hot paths and breaks
// #private fields; reading the fields at call time costs one small array per call and needs no cooperation from
// subclasses. The price: a Parameter kept in a plain array or Map is not registered (use a Sequential or
// ModuleDict, as PyTorch needs nn.ModuleList for lists).
import { invalidType } from '../errors.js';
import type { StateDict } from '../io/safetensors.js';
import { checks, isPlainObject, parseOptions } from '../options.js';
import { convert, type DType, type FloatArray, type Tensor } from '../tensor.js';
import { Parameter } from './parameter.js';
import { collectState, planLoad, type KeyedSlot, type StateSlot } from './state-dict.js';

export { Parameter, accumulateGrad, wantsGrad } from './parameter.js';
export type { StateSlot } from './state-dict.js';

/** Options of `loadStateDict`. */
export interface LoadStateDictOptions {
  /** Missing or unexpected keys throw (default true, as PyTorch). Shape and dtype mismatches always throw. */
  strict?: boolean;
  /** Read this module's entries under this key prefix, e.g. "encoder." (default ''). */
  prefix?: string;
}

/** Options of `zeroGrad`. */
export interface ZeroGradOptions {
  /** true (default, as PyTorch 2): set every grad to null; false: fill existing grads with zeros. */
  setToNone?: boolean;
}

/** Options of `forward` / `backward` and their async forms. */
export interface CallOptions<A extends FloatArray = FloatArray> {
  /** Write the result into this array (of the input's dtype and length) and return it, instead of a new one. */
  out?: A;
}

/** Options of a built-in layer's forward: `out`, and `residual` for a layer built with `activation: 'relu'`. */
export interface ForwardOptions<A extends FloatArray = FloatArray> extends CallOptions<A> {
  /**
   * Added before the activation: y = relu(norm(x) + residual), in the same pass (ResNet's BN → add → ReLU). Of x's
   * shape and dtype, not sharing memory with `out`; kept by reference for backward (do not mutate it before then).
   * Only with `activation: 'relu'`.
   */
  residual?: Tensor<A>;
}

/** Options of a built-in layer's backward: `out`, and `residualOut` after a residual forward. */
export interface BackwardOptions<A extends FloatArray = FloatArray> extends CallOptions<A> {
  /**
   * After a forward with `residual`: write the residual's gradient (dy masked by the ReLU) into this array (of dy's
   * dtype and length) instead of a new one. It is also `layer.residualGrad` afterwards.
   */
  residualOut?: A;
}

/**
 * The base class of every layer and container, as torch.nn.Module. Subclass it for your own layers:
 * ```ts
 * class Scale extends Module {
 *   weight = new Parameter(new Float32Array(4).fill(1));   // registered as "weight"
 *   norm = new BatchNorm1d(4);                              // registered as "norm": keys "norm.running_mean", ...
 *   forward(x: Tensor<Float32Array>): Tensor<Float32Array> { ... }
 *   backward(dy: Tensor<Float32Array>): Tensor<Float32Array> { ... }   // dx; add into this.weight.grad
 * }
 * ```
 * A `Parameter` or `Module` assigned to a field is registered under the field's name, in assignment order.
 * `train`/`eval`/`zeroGrad`/`to`/`stateDict`/`loadStateDict` reach every descendant.
 */
export class Module {
  /** Training mode (true after construction): batch statistics and running-stat updates. Set with train()/eval(). */
  training = true;
  private busyWith: string | null = null;

  /** The name used in messages: the class name, e.g. "BatchNorm2d". */
  protected get layerName(): string {
    return this.constructor.name;
  }

  /**
   * Computes the output. Override it in a subclass (the default throws, as PyTorch's does for a module without one).
   * Built-in layers return the array type they are given: float32 in, Float32Array out.
   */
  forward(x: Tensor, options?: CallOptions): Tensor {
    void x; void options;
    throw new Error(`${this.layerName} has no forward: override forward(x) in your Module subclass`);
  }

  /**
   * Returns dx, the gradient of the input of the LAST forward, given dy, the gradient of its output, and ADDS into
   * the parameters' grads. Override it in a subclass (the default throws: normkit has no autograd).
   */
  backward(dy: Tensor, options?: CallOptions): Tensor {
    void dy; void options;
    throw new Error(`${this.layerName} has no backward: override backward(dy) in your Module subclass`);
  }

  /**
   * forward, awaitable. The default runs `forward` and marks the module busy until it settles; built-in layers and
   * Sequential run their kernels on the libuv pool, off the event loop. Override it for your own async work.
   */
  forwardAsync(x: Tensor, options?: CallOptions): Promise<Tensor> {
    return this.exclusive('forwardAsync', async () => this.forward(x, options));
  }

  /** backward, awaitable (see forwardAsync). */
  backwardAsync(dy: Tensor, options?: CallOptions): Promise<Tensor> {
    return this.exclusive('backwardAsync', async () => this.backward(dy, options));
  }

  /**
   * This module's own members as [name, value] pairs: every own enumerable field, in creation order. Values that
   * are neither a Parameter nor a Module are skipped by the callers. ModuleDict overrides it.
   */
  protected namedMembers(): Array<[string, unknown]> {
    return Object.entries(this);
  }

  /** Every module of the tree with its key prefix, pre-order, shared ones under each name (what state dicts see). */
  private *walk(prefix: string, ancestors: Module[] = []): Generator<[string, Module], void, void> {
    if (ancestors.includes(this)) {
      throw new RangeError(`${this.layerName} at "${prefix}" contains itself: a module tree must not have cycles`);
    }
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) yield* child.walk(`${prefix}${name}.`, [...ancestors, this]);
  }

  /** The direct child modules as [fieldName, module] pairs. */
  *namedChildren(): IterableIterator<[string, Module]> {
    for (const [name, v] of this.namedMembers()) if (v instanceof Module) yield [name, v];
  }

  /** The direct child modules. */
  children(): Module[] {
    return Array.from(this.namedChildren(), ([, m]) => m);
  }

  /** Every module of the tree, this one first (name ''), with dotted names ("body.0"); each module once. */
  *namedModules(prefix = ''): IterableIterator<[string, Module]> {
    if (typeof prefix !== 'string') throw invalidType('namedModules(prefix)', 'a string', prefix);
    const seen = new Set<Module>();
    for (const [p, m] of this.walk(prefix === '' ? '' : `${prefix}.`)) {
      if (seen.has(m)) continue;
      seen.add(m);
      yield [p.endsWith('.') ? p.slice(0, -1) : p, m];
    }
  }

  /** Every module of the tree, this one first; each module once. */
  modules(): Module[] {
    return Array.from(this.namedModules(), ([, m]) => m);
  }

  /**
   * The parameters of the tree as [dottedName, Parameter] pairs ("0.weight", "head.bias"), in registration order,
   * each Parameter once — as PyTorch's named_parameters(). `new Map(m.namedParameters())` makes a Map of them.
   * @param prefix prepended to every name (with a dot)
   * @param recurse false: only this module's own parameters
   */
  *namedParameters(prefix = '', recurse = true): IterableIterator<[string, Parameter]> {
    if (typeof prefix !== 'string') throw invalidType('namedParameters(prefix)', 'a string', prefix);
    const seen = new Set<Parameter>();
    const mods: Array<[string, Module]> = recurse ? Array.from(this.walk(prefix === '' ? '' : `${prefix}.`)) : [[prefix === '' ? '' : `${prefix}.`, this]];
    for (const [p, m] of mods) {
      for (const [name, v] of m.namedMembers()) {
        if (!(v instanceof Parameter) || seen.has(v)) continue;
        seen.add(v);
        yield [p + name, v];
      }
    }
  }

  /** The parameters of the tree (each once), for your optimizer. */
  parameters(recurse = true): Parameter[] {
    return Array.from(this.namedParameters('', recurse), ([, p]) => p);
  }

  /**
   * Sets training mode on this module and every descendant (through each child's own train()). Returns this.
   * @param mode true: training (batch statistics); false: eval (running statistics). Default true.
   */
  train(mode = true): this {
    if (typeof mode !== 'boolean') throw invalidType(`${this.layerName}.train(mode)`, 'a boolean', mode);
    for (const _ of this.walk('')) { /* refuses a cycle before anything changes */ }
    this.training = mode;
    for (const child of this.children()) child.train(mode);
    return this;
  }

  /** train(false) on the whole tree: running statistics from now on. Returns this. */
  eval(): this {
    return this.train(false);
  }

  /**
   * Clears the gradients of every parameter of the tree. As PyTorch 2, the default `setToNone: true` sets each
   * grad to null (the next backward allocates it); `{ setToNone: false }` fills existing grads with zeros instead.
   * Frozen parameters (requiresGrad false) are cleared too, as PyTorch's zero_grad does.
   */
  zeroGrad(options?: ZeroGradOptions): void {
    const o = parseOptions<ZeroGradOptions>(`${this.layerName}.zeroGrad`, options, { setToNone: { default: true, check: checks.boolean } });
    this.assertTreeIdle('zeroGrad');
    for (const p of this.parameters()) {
      if (o.setToNone) p.grad = null;
      else p.grad?.fill(0);
    }
  }

  /**
   * This module's own state-dict entries (its parameters, then its buffers), in PyTorch's order. The default lists
   * the Parameter fields; built-in layers add their running statistics. Override it to add buffers of your own.
   */
  protected stateSlots(): StateSlot[] {
    const slots: StateSlot[] = [];
    for (const [key, v] of this.namedMembers()) {
      if (v instanceof Parameter) slots.push({ kind: 'float', key, array: v.data, shape: v.shape });
    }
    return slots;
  }

  private keyedSlots(prefix: string): KeyedSlot[] {
    const out: KeyedSlot[] = [];
    for (const [p, m] of this.walk(prefix)) for (const slot of m.stateSlots()) out.push({ key: p + slot.key, slot });
    return out;
  }

  /**
   * Copies of the whole tree's state with PyTorch's dotted keys: "weight", "running_mean", "0.weight",
   * "encoder.bn1.num_batches_tracked" (an int64 scalar). Save it with saveSafetensors.
   * @param prefix prepended to every key (default '')
   */
  stateDict(prefix = ''): StateDict {
    if (typeof prefix !== 'string') throw invalidType('stateDict(prefix)', 'a string', prefix);
    return collectState(this.keyedSlots(prefix));
  }

  /**
   * Loads a state dict into the whole tree (PyTorch's dotted keys; float32 or float64 values are converted to each
   * layer's dtype). Atomic: every entry is checked first, and a throw changes no layer. Shape and type mismatches
   * always throw; with `strict` (the default) missing or unexpected keys do too. A dict without
   * num_batches_tracked (an old checkpoint) loads with it set to 0, as PyTorch does.
   */
  loadStateDict(sd: StateDict, options?: LoadStateDictOptions): void {
    const o = parseOptions<Required<LoadStateDictOptions>>('loadStateDict', options, {
      strict: { default: true, check: checks.boolean },
      prefix: { default: '', check: (v, n) => { if (typeof v !== 'string') throw invalidType(n, 'a string', v); } },
    });
    this.assertTreeIdle('loadStateDict');
    if (!isPlainObject(sd)) throw invalidType('state dict', 'an object of tensors', sd);
    for (const commit of planLoad(this.layerName, this.keyedSlots(o.prefix), sd, o.strict, o.prefix)) commit();
  }

  /**
   * Converts the parameters (data and grad), running statistics and dtype of every layer of the tree, as
   * PyTorch's module.to(dtype). Parameter objects stay the same (an optimizer holding them keeps working); a no-op
   * for layers already of that dtype. Returns this.
   */
  to(dtype: DType): this {
    checks.dtype(dtype, `${this.layerName}.to(dtype)`);
    this.assertTreeIdle('to');
    const commits: Array<() => void> = [];
    for (const p of this.parameters()) {
      const data = convert(p.data, dtype), grad = p.grad && convert(p.grad, dtype);
      commits.push(() => { p.data = data; p.grad = grad; });
    }
    for (const m of this.modules()) commits.push(m.convertState(dtype));
    for (const commit of commits) commit();  // all copies are made before anything changes
    return this;
  }

  /**
   * For to(dtype): prepares this module's own state other than its Parameters in `dtype` and returns the function
   * that installs it. Built-in layers convert their running statistics and record the new dtype.
   */
  protected convertState(dtype: DType): () => void {
    void dtype;
    return () => {};
  }

  /** Refuses a call while an async call on this module is in flight (its state would be half-updated). */
  protected assertIdle(what: string): void {
    if (this.busyWith !== null) throw new Error(`${this.layerName} is busy with ${this.busyWith}; ${what} must wait until it settles`);
  }

  /** assertIdle for every module of the tree. */
  protected assertTreeIdle(what: string): void {
    for (const m of this.modules()) m.assertIdle(what);
  }

  /** Runs an async call with this module marked busy until it settles. */
  protected async exclusive<R>(what: string, run: () => Promise<R>): Promise<R> {
    this.assertIdle(what);
    this.busyWith = what;
    try {
      return await run();
    } finally {
      this.busyWith = null;
    }
  }
}
