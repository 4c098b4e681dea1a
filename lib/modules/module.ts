// What every layer shares: Parameter, train/eval, parameters/zeroGrad, state-dict plumbing over declared slots,
// and the busy guard for async calls. Layers only declare their slots and do their own bookkeeping.
import { describe, formatShape, invalidType } from '../errors.js';
import type { Int64Tensor, StateDict } from '../io/safetensors.js';
import { runAsync, runSync, type Steps } from '../native-steps.js';
import { checks, isPlainObject, parseOptions, type OptionSpec } from '../options.js';
import type { FloatArray, Tensor } from '../tensor.js';
import { allocate, dtypeOf, isFloatArray } from '../tensor.js';

/** A learnable tensor and its accumulated gradient (null until a backward). */
export class Parameter {
  grad: FloatArray | null = null;
  constructor(public data: FloatArray, public readonly shape: readonly number[] = [data.length]) {}
}

/** A state-dict entry of a layer: a float tensor it owns, or an int64 counter. */
export type StateSlot =
  | { kind: 'float'; key: string; array: FloatArray; shape: readonly number[] }
  | { kind: 'count'; key: string; get(): number; set(n: number): void };

export interface LoadStateDictOptions { strict?: boolean; prefix?: string }

export interface CallOptions { out?: FloatArray }

const CALL_SPEC: OptionSpec<CallOptions> = { out: { default: undefined, check: checks.floatArray } };

/** grad += g, allocating a zero grad first (gradients add up, as .grad does in PyTorch). */
export function accumulateGrad(p: Parameter, g: ArrayLike<number>): void {
  if (!p.grad) p.grad = allocate(dtypeOf(p.data), p.data.length);
  for (let i = 0; i < g.length; i++) p.grad[i]! += g[i]!;
}

export abstract class Module {
  training = true;
  private busyWith: string | null = null;

  /** The name used in messages, e.g. "BatchNorm2d". */
  protected abstract get layerName(): string;
  /** This layer's state-dict entries, in PyTorch's order. */
  protected abstract stateSlots(): StateSlot[];
  abstract parameters(): Parameter[];
  /** The forward as native steps; commits its state (running stats, saved input) only at the end. */
  protected abstract forwardSteps(x: Tensor, out: FloatArray | undefined): Steps<Tensor>;
  /** The backward of the last forward as native steps; adds into the parameters' grads at the end. */
  protected abstract backwardSteps(dy: Tensor, out: FloatArray | undefined): Steps<Tensor>;

  private callOut(what: string, options: unknown): FloatArray | undefined {
    return parseOptions<CallOptions>(`${this.layerName}.${what}`, options, CALL_SPEC).out;
  }

  forward(x: Tensor, options?: CallOptions): Tensor {
    this.assertIdle('forward');
    return runSync(this.forwardSteps(x, this.callOut('forward', options)));
  }

  /** Returns dx for the last forward and adds into the parameters' grads. */
  backward(dy: Tensor, options?: CallOptions): Tensor {
    this.assertIdle('backward');
    return runSync(this.backwardSteps(dy, this.callOut('backward', options)));
  }

  /** forward on the libuv pool; the layer refuses other calls until it settles. */
  forwardAsync(x: Tensor, options?: CallOptions): Promise<Tensor> {
    return this.exclusive('forwardAsync', () => runAsync(this.forwardSteps(x, this.callOut('forwardAsync', options))));
  }

  backwardAsync(dy: Tensor, options?: CallOptions): Promise<Tensor> {
    return this.exclusive('backwardAsync', () => runAsync(this.backwardSteps(dy, this.callOut('backwardAsync', options))));
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

  train(mode = true): this {
    if (typeof mode !== 'boolean') throw invalidType(`${this.layerName}.train(mode)`, 'a boolean', mode);
    this.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    this.assertIdle('zeroGrad');
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  /** Refuses a call while an async call on this layer is in flight (its state would be half-updated). */
  protected assertIdle(what: string): void {
    if (this.busyWith !== null) throw new Error(`${this.layerName} is busy with ${this.busyWith}; ${what} must wait until it settles`);
  }

  /** Runs an async call with this layer marked busy until it settles. */
  protected async exclusive<R>(what: string, run: () => Promise<R>): Promise<R> {
    this.assertIdle(what);
    this.busyWith = what;
    try {
      return await run();
    } finally {
      this.busyWith = null;
    }
  }


  /** Copies of this layer's state, with PyTorch's keys (prefixed). */
  stateDict(prefix = ''): StateDict {
    if (typeof prefix !== 'string') throw invalidType('stateDict(prefix)', 'a string', prefix);
    const sd: StateDict = {};
    for (const s of this.stateSlots()) {
      sd[prefix + s.key] = s.kind === 'float'
        ? { data: s.array.slice(), shape: [...s.shape] }
        : { data: BigInt64Array.of(BigInt(s.get())), shape: [] };
    }
    return sd;
  }

  /**
   * Loads a state dict (PyTorch's keys; float32 or float64 values are converted to the layer's dtype).
   * strict (default): missing or unexpected keys throw. Shape mismatches always throw. A throw changes nothing.
   * A dict without num_batches_tracked (an old checkpoint) loads with it set to 0, as PyTorch does.
   */
  loadStateDict(sd: StateDict, options?: LoadStateDictOptions): void {
    this.assertIdle('loadStateDict');
    const o = parseOptions<Required<LoadStateDictOptions>>('loadStateDict', options, {
      strict: { default: true, check: checks.boolean },
      prefix: { default: '', check: (v, n) => { if (typeof v !== 'string') throw invalidType(n, 'a string', v); } },
    });
    if (!isPlainObject(sd)) throw invalidType('state dict', 'an object of tensors', sd);
    const slots = this.stateSlots();
    const expected = new Set(slots.map((s) => o.prefix + s.key));
    const typeErrors: string[] = [], sizeErrors: string[] = [];
    const missing: string[] = [];
    const commits: Array<() => void> = [];
    for (const s of slots) {
      const key = o.prefix + s.key;
      const value: unknown = sd[key];
      if (value === undefined) {
        if (s.kind === 'count') commits.push(() => s.set(0));
        else missing.push(key);
        continue;
      }
      if (s.kind === 'float') {
        const v = value as { data?: unknown; shape?: unknown };
        if (typeof value !== 'object' || value === null) { typeErrors.push(`${key}: expected a tensor but received ${describe(value)}`); continue; }
        if (!isFloatArray(v.data)) { typeErrors.push(`${key}: expected Float32Array or Float64Array data but received ${describe(v.data)}`); continue; }
        const shape = Array.isArray(v.shape) ? (v.shape as unknown[]) : null;
        if (!shape || shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i]) || v.data.length !== s.array.length) {
          sizeErrors.push(`size mismatch for ${key}: copying a tensor of shape ${shape ? formatShape(shape as number[]) : describe(v.shape)} ` +
            `(${v.data.length} elements), the shape in the current layer is ${formatShape(s.shape)}`);
          continue;
        }
        const data = v.data;
        commits.push(() => s.array.set(data));
      } else {
        const v = value as Partial<Int64Tensor> & { data?: unknown };
        const n = v.data instanceof BigInt64Array && v.data.length === 1 ? v.data[0]! : null;
        if (n === null) { typeErrors.push(`${key}: expected an int64 scalar (BigInt64Array(1), shape []) but received ${describe(v.data)}`); continue; }
        if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) { sizeErrors.push(`${key}: expected a count from 0 to 2^53 - 1 but received ${n}`); continue; }
        commits.push(() => s.set(Number(n)));
      }
    }
    const unexpected = Object.keys(sd).filter((k) => k.startsWith(o.prefix) && !expected.has(k));
    if (o.strict) {
      if (missing.length) sizeErrors.push(`Missing key(s) in state_dict: ${missing.map((k) => `"${k}"`).join(', ')}`);
      if (unexpected.length) sizeErrors.push(`Unexpected key(s) in state_dict: ${unexpected.map((k) => `"${k}"`).join(', ')}`);
    }
    const errors = [...typeErrors, ...sizeErrors];
    if (errors.length) {
      const message = `Error(s) in loading state_dict for ${this.layerName}:\n\t${errors.join('\n\t')}`;
      throw typeErrors.length ? new TypeError(message) : new RangeError(message);
    }
    for (const commit of commits) commit();
  }
}

