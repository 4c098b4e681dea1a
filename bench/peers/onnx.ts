// onnxruntime-node: an ONNX model holding one BatchNormalization node (inference: running statistics), written
// here with a minimal protobuf encoder so no model file or converter is needed. Channel axis 1 only.
import type { createRequire } from 'node:module';

type Req = ReturnType<typeof createRequire>;

// The slice of onnxruntime-node's API used here (installed on demand: no types at build time).
interface OrtTensor { readonly dims: readonly number[] }
interface Ort {
  Tensor: new (type: string, data: Float32Array | Float64Array, dims: number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, options: object): Promise<{ run(feeds: Record<string, OrtTensor>): Promise<unknown> }> };
}

// Protobuf wire format: varint (type 0), 32-bit (type 5), length-delimited (type 2).
function varint(n: number): number[] {
  const out: number[] = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 128; out.push(b); } while (n > 0);
  return out;
}
const field = (no: number, type: number) => varint(no * 8 + type);
const vint = (no: number, v: number) => [...field(no, 0), ...varint(v)];
const bytes = (no: number, b: number[]) => [...field(no, 2), ...varint(b.length), ...b];
const str = (no: number, s: string) => bytes(no, [...Buffer.from(s, 'utf8')]);
const f32 = (no: number, v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return [...field(no, 5), ...b]; };

function valueInfo(name: string, elemType: number, dims: number[]): number[] {
  const shape = dims.flatMap((d) => bytes(1, vint(1, d)));             // TensorShapeProto.dim { dim_value }
  const tensorType = [...vint(1, elemType), ...bytes(2, shape)];       // TypeProto.Tensor { elem_type, shape }
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];         // ValueInfoProto { name, type { tensor_type } }
}

export function batchNormModel(shape: number[], dtype: 'float32' | 'float64', eps: number): Uint8Array {
  const elem = dtype === 'float32' ? 1 : 11, C = shape[1]!;
  const inputs = ['X', 'scale', 'B', 'mean', 'var'];
  const node = [...inputs.flatMap((n) => str(1, n)), ...str(2, 'Y'), ...str(3, 'bn'), ...str(4, 'BatchNormalization'),
    ...bytes(5, [...str(1, 'epsilon'), ...f32(2, eps), ...vint(20, 1)])];
  const graph = [...bytes(1, node), ...str(2, 'g'),
    ...bytes(11, valueInfo('X', elem, shape)), ...inputs.slice(1).flatMap((n) => bytes(11, valueInfo(n, elem, [C]))),
    ...bytes(12, valueInfo('Y', elem, shape))];
  return Uint8Array.from([...vint(1, 8), ...bytes(8, [...str(1, ''), ...vint(2, 15)]), ...bytes(7, graph)]);
}

export async function onnxEval(req: Req, shape: number[], x: Float32Array | Float64Array, threads: number): Promise<() => Promise<void>> {
  const ort = req('onnxruntime-node') as Ort;
  const dtype = x instanceof Float32Array ? 'float32' : 'float64';
  const session = await ort.InferenceSession.create(batchNormModel(shape, dtype, 1e-5), {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' });
  const C = shape[1]!, Ctor = dtype === 'float32' ? Float32Array : Float64Array;
  const param = (v: number) => new ort.Tensor(dtype, new Ctor(C).fill(v), [C]);
  const feeds = { X: new ort.Tensor(dtype, x, shape), scale: param(1), B: param(0), mean: param(0), var: param(1) };
  return async () => { await session.run(feeds); };
}
