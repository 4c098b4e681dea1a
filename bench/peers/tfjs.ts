// @tensorflow/tfjs (pure-JS "cpu" backend and the "wasm" backend): tf.moments + tf.batchNorm, and tf.grad for the
// backward. tfjs normalizes over the LAST axis (NHWC) and its batchNorm gradient only broadcasts there, so every
// shape is timed in its channels-last form (same bytes, same math). float32 only; rank <= 4.
import type { createRequire } from 'node:module';

type Req = ReturnType<typeof createRequire>;

// The slice of the tfjs API used here (tfjs is installed on demand, so its types are not there at build time).
interface TfTensor { data(): Promise<unknown>; dispose(): void; mul(t: TfTensor): TfTensor; sum(): TfTensor }
interface Tf {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  tensor(data: Float32Array, shape: number[]): TfTensor;
  ones(shape: number[]): TfTensor;
  zeros(shape: number[]): TfTensor;
  moments(x: TfTensor, axes: number[]): { mean: TfTensor; variance: TfTensor };
  batchNorm(x: TfTensor, mean: TfTensor, variance: TfTensor, offset: TfTensor, scale: TfTensor, eps: number): TfTensor;
  grad(f: (x: TfTensor) => TfTensor): (x: TfTensor) => TfTensor;
  tidy(f: () => TfTensor): TfTensor;
  dispose(ts: TfTensor[]): void;
}

export interface TfjsOps { fwd(): Promise<void>; eval(): Promise<void>; bwd(): Promise<void>; dispose(): void }

export async function loadTfjs(req: Req): Promise<Tf> {
  const tf = req('@tensorflow/tfjs') as Tf;
  req('@tensorflow/tfjs-backend-wasm');
  return tf;
}

export async function tfjsOps(tf: Tf, backend: string, nhwc: number[], data: Float32Array, dyData: Float32Array): Promise<TfjsOps> {
  await tf.setBackend(backend);
  await tf.ready();
  const C = nhwc.at(-1)!, axes = nhwc.slice(0, -1).map((_, i) => i);
  const x = tf.tensor(data, nhwc), dy = tf.tensor(dyData, nhwc);
  const scale = tf.ones([C]), offset = tf.zeros([C]);
  const { mean, variance } = tf.moments(x, axes);
  const forward = (t: TfTensor) => {
    const m = tf.moments(t, axes);
    return tf.batchNorm(t, m.mean, m.variance, offset, scale, 1e-5);
  };
  const grad = tf.grad((t) => forward(t).mul(dy).sum());
  const run = async (f: () => TfTensor) => {
    const out = tf.tidy(f);
    await out.data();
    out.dispose();
  };
  return {
    fwd: () => run(() => forward(x)),
    eval: () => run(() => tf.batchNorm(x, mean, variance, offset, scale, 1e-5)),
    bwd: () => run(() => grad(x)),
    dispose: () => tf.dispose([x, dy, scale, offset, mean, variance]),
  };
}
