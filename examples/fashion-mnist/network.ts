// What the training loop, the checkpoint code and main.ts need from a network (the MLP of mlp.ts or the LeNet of
// cnn.ts): named layers run in insertion order, as PyTorch's nn.Sequential(OrderedDict([("fc1", ...), ...])).
// normkit's Module does the rest: parameters(), train()/eval(), zeroGrad(), and stateDict()/loadStateDict() with
// PyTorch's dotted keys ("fc1.weight", "bn1.running_mean"), strict and atomic.
import { BatchNormBase, ModuleDict, SyncBatchNorm, type Communicator, type Module, type Tensor } from 'normkit';

/** normkit returns float32 for float32 input; the hand-written layers need to know it statically. */
export function float32(t: Tensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new TypeError('expected a float32 tensor from a layer');
  return t.data;
}

/**
 * A network: a ModuleDict whose children run in order. normkit's Sequential names its children "0", "1", ...;
 * a ModuleDict keeps the names the checkpoint and load_in_pytorch.py use. Layers without state (ReLU, pooling)
 * are children too, as in PyTorch, and add no keys.
 */
export abstract class Network extends ModuleDict {
  abstract readonly classes: number;
  /** The first layer's input shape for a batch of n images. */
  protected abstract inputShape(n: number): number[];

  /** Every layer in order. */
  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    let h = x;
    for (const m of this.values()) { const y = m.forward(h); h = { data: float32(y), shape: y.shape }; }
    return h;
  }

  /** Every layer's backward, last first; each adds into its own parameters' grads. */
  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    let g = dy;
    for (const m of [...this.values()].reverse()) { const d = m.backward(g); g = { data: float32(d), shape: d.shape }; }
    return g;
  }

  /** Logits (n x classes) for n images (n x pixels, scaled to [0, 1]). */
  logits(x: Float32Array, n: number): Float32Array {
    return this.forward({ data: x, shape: this.inputShape(n) }).data;
  }

  /** Backpropagates d(loss)/d(logits) of the last forward, adding into every parameter's gradient. */
  backpropagate(dLogits: Float32Array): void {
    this.backward({ data: dLogits, shape: [dLogits.length / this.classes, this.classes] });
  }

  /** The batch norm layers, in order (plain or synchronized). */
  get norms(): BatchNormBase[] {
    return [...this.values()].filter((m: Module): m is BatchNormBase => m instanceof BatchNormBase);
  }

  /**
   * Replaces every batch norm layer with a SyncBatchNorm over `comm` holding its state, under the same name (so the
   * checkpoint's keys do not change): torch.nn.SyncBatchNorm.convert_sync_batchnorm. Returns this.
   */
  synchronizeBatchNorm(comm: Communicator): this {
    for (const [name, m] of [...this]) if (m instanceof BatchNormBase) this.set(name, SyncBatchNorm.fromBatchNorm(m, comm));
    return this;
  }
}
