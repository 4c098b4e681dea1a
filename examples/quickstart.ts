// The README's model example, runnable: a user-defined layer in a Sequential, trained with SGD, saved to
// safetensors and loaded into a fresh model. Run: npm run build && node dist/tools/examples/quickstart.js
import { BatchNorm1d, LayerNorm, Module, Parameter, Sequential, loadSafetensorsWithMetadata, saveSafetensors, tensor, type Tensor } from 'normkit';

// Your own layer: subclass Module, override forward and backward (normkit has no autograd: backward returns dx
// and adds into the grads). A Parameter or module assigned to a field is registered under the field's name.
class Scale extends Module {
  weight = new Parameter(new Float32Array(4).fill(1));      // state-dict key "<prefix>weight"
  private input: Tensor<Float32Array> | null = null;

  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    this.input = x;
    const w = this.weight.data;
    return tensor(x.data.map((v, i) => v * (w[i % 4] ?? 0)), x.shape);
  }

  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    const x = this.input, w = this.weight.data;
    if (!x) throw new Error('Scale: backward before forward');
    const grad = (this.weight.grad ??= new Float32Array(4));
    dy.data.forEach((g, i) => { grad[i % 4] = (grad[i % 4] ?? 0) + g * (x.data[i] ?? 0); });
    return tensor(dy.data.map((g, i) => g * (w[i % 4] ?? 0)), dy.shape);
  }
}

const makeModel = () => new Sequential(new BatchNorm1d(4), new Scale(), new LayerNorm(4));
const model = makeModel();
const x = tensor(Float32Array.from({ length: 8 * 4 }, (_, i) => Math.sin(i) * 3 + (i % 4)), [8, 4]);
for (let step = 0; step < 10; step++) {
  const y = model.forward(x);                                // Tensor<Float32Array>: float32 in, float32 out
  const dy = tensor(y.data.map((v) => (v - 1) / y.data.length), y.shape);   // toy loss: mean((y - 1)²) / 2
  model.zeroGrad();                                          // grads to null (PyTorch 2's set_to_none)
  model.backward(dy);                                        // last module first; every layer adds into its grads
  for (const p of model.parameters()) {
    const grad = p.grad;
    if (grad) p.data.forEach((v, i) => { p.data[i] = v - 0.1 * (grad[i] ?? 0); });   // plain SGD
  }
}
model.eval();                                               // every layer of the tree

const file = saveSafetensors(model.stateDict(), { format: 'pt' });  // "0.weight", "0.running_mean", "1.weight", "2.bias", …
const restored = makeModel();
const { tensors, metadata } = loadSafetensorsWithMetadata(file);
restored.loadStateDict(tensors);                            // strict and atomic: a bad file changes no layer
restored.eval();
console.log(metadata, Array.from(restored.forward(x).data.subarray(0, 4)), Array.from(model.forward(x).data.subarray(0, 4)));
