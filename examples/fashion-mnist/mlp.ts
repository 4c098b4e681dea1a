// The MLP: 784 -> hidden... -> 10 with ReLU, with or without a BatchNorm1d between each hidden dense layer and
// its ReLU (where d2l and the batch norm paper put it). normkit does all the normalization: batch statistics in
// training mode, running statistics in eval mode — and, with batch norm, the ReLU too, in the same pass
// (BatchNorm1d with activation 'relu': no separate ReLU layer, no extra pass over the activations).
//
// Checkpoints (model.stateDict()) use the keys and layouts PyTorch gives the equivalent module, fc1, bn1, fc2, bn2,
// ..., fcN as attributes (load_in_pytorch.py defines it and loads a checkpoint with strict=True):
//
//   x = fcN(relu(bn2(fc2(relu(bn1(fc1(x)))))))      # without batch norm: the same without the bn layers
import { BatchNorm1d } from 'normkit';
import { Dense, ReLU } from './nn.js';
import { Network } from './network.js';
import { Rng } from './rng.js';

export interface MlpOptions {
  inputs: number;
  hidden: readonly number[];
  classes: number;
  batchNorm: boolean;
  /** Seeds the weight initialization: two models with the same seed and sizes start from the same weights. */
  seed: number;
}

/**
 * fc1, bn1, fc2, bn2, ..., fcN with batch norm (each bn a BatchNorm1d with the ReLU fused in); fc1, relu1, fc2,
 * relu2, ..., fcN without. A ReLU has no state, so the checkpoint's keys are the same either way.
 */
export class Mlp extends Network {
  readonly classes: number;

  constructor(readonly options: MlpOptions) {
    super();
    this.classes = options.classes;
    const rng = new Rng(options.seed);
    const sizes = [options.inputs, ...options.hidden];
    for (let i = 1; i < sizes.length; i++) {
      // The first layer computes no input gradient (nobody wants d(loss)/d(pixels)).
      this.set(`fc${i}`, new Dense(sizes[i - 1]!, sizes[i]!, rng, 'he', i > 1));
      // BatchNorm1d draws no random numbers, so both variants get identical dense weights from the same seed.
      // PyTorch's defaults (eps 1e-5, momentum 0.1), then relu(bn(x)) in one call.
      if (options.batchNorm) this.set(`bn${i}`, new BatchNorm1d(sizes[i]!, { activation: 'relu' }));
      else this.set(`relu${i}`, new ReLU());
    }
    this.set(`fc${sizes.length}`, new Dense(sizes[sizes.length - 1]!, options.classes, rng, 'he', sizes.length > 1));
  }

  protected inputShape(n: number): number[] {
    return [n, this.options.inputs];
  }
}
