// What the training loop, the checkpoint code and main.ts need from a network (the MLP of mlp.ts or the LeNet of
// cnn.ts), and the PyTorch state-dict plumbing both share: dense and convolution weights under PyTorch's names and
// layouts, batch norm layers through normkit's own stateDict/loadStateDict, strict loading.
import type { StateDict, Tensor } from 'normkit';
import type { Conv2d } from './conv.js';
import { transpose, type Dense, type Param } from './nn.js';

export interface Network {
  readonly training: boolean;
  /** Logits (n x classes) for n images (n x pixels, scaled to [0, 1]). */
  forward(x: Float32Array, n: number): Float32Array;
  /** Backpropagates d(loss)/d(logits) of the last forward, adding into every parameter's gradient. */
  backward(dLogits: Float32Array): void;
  parameters(): Param[];
  zeroGrad(): void;
  /** Training mode: batch norm normalizes with batch statistics and updates its running statistics. */
  train(): this;
  /** Eval mode: batch norm uses the running statistics, so a prediction does not depend on the batch. */
  eval(): this;
  /** The whole state with PyTorch's keys and layouts, in module order. */
  stateDict(): StateDict;
  /** Strict: every key must match. A dict that fails part way leaves the model partly loaded: load into a fresh one. */
  loadStateDict(sd: StateDict): void;
}

/** normkit returns float32 for float32 input; the hand-written layers need to know it statically. */
export function float32(t: Tensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new TypeError('expected a float32 tensor from batch norm');
  return t.data;
}

/** nn.Linear's entries: weight (out x in; Dense stores in x out) and bias. */
export function denseState(d: Dense, name: string): StateDict {
  return {
    [`${name}.weight`]: { data: transpose(d.weight.data, d.inFeatures, d.outFeatures), shape: [d.outFeatures, d.inFeatures] },
    [`${name}.bias`]: { data: d.bias.data.slice(), shape: [d.outFeatures] },
  };
}

/** nn.Conv2d's entries: weight (O, C, k, k), Conv2d's own layout, and bias. */
export function convState(c: Conv2d, name: string): StateDict {
  return {
    [`${name}.weight`]: { data: c.weight.data.slice(), shape: [c.outChannels, c.inChannels, c.kernel, c.kernel] },
    [`${name}.bias`]: { data: c.bias.data.slice(), shape: [c.outChannels] },
  };
}

type Entry = StateDict[string];
const isFloat = (t: Entry | undefined): t is Tensor => t?.data instanceof Float32Array || t?.data instanceof Float64Array;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Copies `name.weight` and `name.bias` (float32 or float64, of exactly the given shapes) into a layer's
 * parameters; `own` holds the keys under `name.` only, and any other than these two is refused.
 */
function loadWeightAndBias(own: StateDict, name: string, weight: Float32Array, weightShape: readonly number[],
  bias: Float32Array, transposeTo?: [number, number]): void {
  const extra = Object.keys(own).filter((k) => k !== `${name}.weight` && k !== `${name}.bias`);
  if (extra.length) throw new RangeError(`unexpected key(s) in state dict: ${extra.join(', ')}`);
  const w = own[`${name}.weight`], b = own[`${name}.bias`];
  if (!isFloat(w) || !isFloat(b) || !sameShape(w.shape, weightShape) || !sameShape(b.shape, [bias.length]) ||
    w.data.length !== weight.length || b.data.length !== bias.length) {
    throw new RangeError(`${name}: expected weight [${weightShape.join(', ')}] and bias [${bias.length}]`);
  }
  const data = Float32Array.from(w.data);
  weight.set(transposeTo ? transpose(data, transposeTo[0], transposeTo[1]) : data);
  bias.set(b.data);
}

export function loadDense(d: Dense, name: string, own: StateDict): void {
  loadWeightAndBias(own, name, d.weight.data, [d.outFeatures, d.inFeatures], d.bias.data, [d.outFeatures, d.inFeatures]);
}

export function loadConv(c: Conv2d, name: string, own: StateDict): void {
  loadWeightAndBias(own, name, c.weight.data, [c.outChannels, c.inChannels, c.kernel, c.kernel], c.bias.data);
}

/** A named layer's part of a strict load: `load` gets only the keys under `name.`. */
export type LayerLoader = [name: string, load: (own: StateDict) => void];

/**
 * Loads layer by layer, each from its own keys (so that normkit's strict batch norm load reports the missing and
 * unexpected keys of its own layer), then refuses keys that no layer claimed.
 */
export function loadStrict(sd: StateDict, layers: readonly LayerLoader[]): void {
  const known = new Set<string>();
  for (const [name, load] of layers) {
    const own = Object.fromEntries(Object.entries(sd).filter(([key]) => key.startsWith(`${name}.`))) as StateDict;
    load(own);
    for (const key of Object.keys(own)) known.add(key);
  }
  const unexpected = Object.keys(sd).filter((k) => !known.has(k));
  if (unexpected.length) throw new RangeError(`unexpected key(s) in state dict: ${unexpected.join(', ')}`);
}
