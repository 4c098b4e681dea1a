// Containers: torch.nn.Sequential and torch.nn.ModuleDict. Both keep their children apart from their fields (a
// list, a Map) and name them through namedMembers: a Sequential's are "0", "1", ... so state-dict keys are
// PyTorch's "0.weight", "1.running_mean"; a ModuleDict's keys may be any name, "training" or "forward" included.
import { describe, invalidType } from '../errors.js';
import { dtypeOf, isFloatArray, isLike, type FloatArray, type Tensor } from '../tensor.js';
import { Module } from './module.js';

function checkModule(m: unknown, name: string): Module {
  if (!(m instanceof Module)) throw invalidType(name, 'a Module', m);
  return m;
}

/**
 * torch.nn.Sequential: forward runs the modules in order, backward runs their backward in reverse, and
 * forwardAsync/backwardAsync await each in turn. Children are named "0", "1", ... as in PyTorch, so a
 * `nn.Sequential` checkpoint loads by key. Types follow the modules given: `seq.at(0)` is the first one's type.
 * The output must have the input's dtype (every built-in layer keeps it); a module that changes it is refused.
 */
export class Sequential<M extends readonly Module[] = Module[]> extends Module {
  private readonly list: M;

  /**
   * @param modules the modules, in the order forward runs them
   * @throws TypeError if one is not a Module
   */
  constructor(...modules: M) {
    super();
    modules.forEach((m, i) => checkModule(m, `Sequential argument ${i}`));
    this.list = modules;
  }

  /** The children, named "0", "1", ... (then any fields a subclass adds). */
  protected override namedMembers(): Array<[string, unknown]> {
    return [...this.list.map((m, i): [string, unknown] => [String(i), m]), ...Object.entries(this)];
  }

  /** The number of modules. */
  get length(): number {
    return this.list.length;
  }

  /**
   * The module at `index` (0-based), or undefined out of range. A literal index is typed as the module given
   * there (`seq.at(0)` of `new Sequential(new BatchNorm1d(4), …)` is a BatchNorm1d); a computed one as any of them.
   */
  at<I extends number>(index: I): number extends I ? M[number] | undefined : M[I] {
    return this.list[index];
  }

  /** The modules, in order. */
  [Symbol.iterator](): IterableIterator<M[number]> {
    return this.list[Symbol.iterator]();
  }

  private checkOutput<T extends Tensor>(x: T, y: Tensor, what: string): Tensor<T['data']> {
    const data: unknown = typeof y === 'object' && y !== null ? y.data : undefined;
    if (!isFloatArray(data) || !isFloatArray(x.data) || !isLike(x.data, data)) {
      const want = isFloatArray(x.data) ? dtypeOf(x.data) : 'float';
      throw new TypeError(`Sequential.${what}: expected a ${want} tensor from the last module but received ${isFloatArray(data) ? dtypeOf(data) : describe(y)}`);
    }
    return { data, shape: y.shape };
  }

  /** Runs x through every module in order; returns the last output. */
  override forward<T extends Tensor>(x: T): Tensor<T['data']> {
    let h: Tensor = x;
    for (const m of this.children()) h = m.forward(h);
    return this.checkOutput(x, h, 'forward');
  }

  /** dx for dy: every module's backward, last module first. Each adds into its own parameters' grads. */
  override backward<T extends Tensor>(dy: T): Tensor<T['data']> {
    let g: Tensor = dy;
    for (const m of this.children().reverse()) g = m.backward(g);
    return this.checkOutput(dy, g, 'backward');
  }

  /** forward with each module's forwardAsync (built-in layers run off the event loop); busy until it settles. */
  override forwardAsync<T extends Tensor>(x: T): Promise<Tensor<T['data']>> {
    return this.exclusive('forwardAsync', async () => {
      let h: Tensor = x;
      for (const m of this.children()) h = await m.forwardAsync(h);
      return this.checkOutput(x, h, 'forwardAsync');
    });
  }

  /** backward with each module's backwardAsync, last module first. */
  override backwardAsync<T extends Tensor>(dy: T): Promise<Tensor<T['data']>> {
    return this.exclusive('backwardAsync', async () => {
      let g: Tensor = dy;
      for (const m of this.children().reverse()) g = await m.backwardAsync(g);
      return this.checkOutput(dy, g, 'backwardAsync');
    });
  }
}

/** A child name: a non-empty string without "." (the key separator), as PyTorch's add_module requires. */
function checkName(key: unknown): string {
  if (typeof key !== 'string') throw invalidType('ModuleDict key', 'a string', key);
  if (key === '' || key.includes('.')) throw new RangeError(`Expected a non-empty ModuleDict key without "." but received ${describe(key)}`);
  return key;
}

/**
 * torch.nn.ModuleDict: named child modules, in insertion order, registered as children (state-dict keys
 * "<key>.weight"). It has no forward: your module decides how to call them.
 */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly items = new Map<string, M>();

  /** @param modules the initial children, in key order (an object's own enumerable keys) */
  constructor(modules: Record<string, M> = {}) {
    super();
    if (typeof modules !== 'object' || modules === null) throw invalidType('ModuleDict modules', 'an object of modules', modules);
    for (const [k, m] of Object.entries(modules)) this.set(k, m);
  }

  protected override namedMembers(): Array<[string, unknown]> {
    return [...Object.entries(this), ...this.items];
  }

  /** The module under `key`, or undefined. */
  get(key: string): M | undefined {
    return this.items.get(key);
  }

  /** Adds or replaces the module under `key` (a replaced key keeps its position). Returns this. */
  set(key: string, module: M): this {
    const name = checkName(key);
    checkModule(module, `ModuleDict "${name}"`);
    this.items.set(name, module);
    return this;
  }

  /** Whether `key` holds a module. */
  has(key: string): boolean {
    return this.items.has(key);
  }

  /** Removes `key`; returns whether it was there. */
  delete(key: string): boolean {
    return this.items.delete(key);
  }

  /** The number of modules. */
  get size(): number {
    return this.items.size;
  }

  keys(): IterableIterator<string> { return this.items.keys(); }
  values(): IterableIterator<M> { return this.items.values(); }
  entries(): IterableIterator<[string, M]> { return this.items.entries(); }
  [Symbol.iterator](): IterableIterator<[string, M]> { return this.items.entries(); }
}
