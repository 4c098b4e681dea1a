// Module trees: registration by field, Sequential and ModuleDict, recursive train/eval/zeroGrad/to, atomic nested
// state dicts, cycles, busy trees, and the defaults of a bare Module. (PyTorch parity: container.parity.test.ts.)
import { describe, expect, it } from 'vitest';
import {
  BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, Module, ModuleDict, Parameter, Sequential, tensor, type StateDict, type Tensor,
} from '../lib/index.js';
import { expectBitIdentical } from './helpers/compare.js';
import { Dense } from './helpers/dense.js';

const x43 = () => tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 3 + i % 4), [3, 4]);
const json = (sd: StateDict) => JSON.stringify(sd, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v));

class Block extends Module {
  scale = new Parameter(Float32Array.of(1, 2, 3, 4));
  norm: BatchNorm1d;
  notAMember = { weight: new Parameter(new Float32Array(1)) };  // inside a plain object: not registered
  late: Parameter | null = null;
  constructor() {
    super();
    this.norm = new BatchNorm1d(4);
    this.late = new Parameter(new Float32Array(2), [1, 2]);
  }
}

describe('registration by field', () => {
  it('registers Parameters and modules under their field names, in assignment order', () => {
    const b = new Block();
    // PyTorch's order: each module's own parameters, then its children's (named_modules, then _parameters).
    expect(Array.from(b.namedParameters(), ([n]) => n)).toEqual(['scale', 'late', 'norm.weight', 'norm.bias']);
    expect(Object.keys(b.stateDict())).toEqual(['scale', 'late', 'norm.weight', 'norm.bias', 'norm.running_mean', 'norm.running_var', 'norm.num_batches_tracked']);
    expect(b.stateDict().late!.shape).toEqual([1, 2]);
    expect(Array.from(b.namedModules(), ([n]) => n)).toEqual(['', 'norm']);
    expect(b.children()).toEqual([b.norm]);
    expect(Array.from(b.namedParameters('m', false), ([n]) => n)).toEqual(['m.scale', 'm.late']);
  });

  it('a Parameter checks its data and shape, and keeps a frozen copy of the shape', () => {
    const shape = [2, 3];
    const p = new Parameter(new Float64Array(6), shape);
    shape.push(1);
    expect(p.shape).toEqual([2, 3]);
    expect(Object.isFrozen(p.shape)).toBe(true);
    expect(new Parameter(new Float32Array(5)).shape).toEqual([5]);
    expect(() => new Parameter(new Float32Array(5), [2, 3])).toThrow(/Expected Parameter data to hold 6 elements for shape \[2, 3\] but it holds 5/);
    expect(() => new Parameter([1, 2] as never)).toThrow(/Expected a Float32Array or Float64Array for Parameter data but received array of length 2/);
    expect(() => new Parameter(null as never)).toThrow(TypeError);
  });

  it('lists a shared Parameter or module once in parameters()/modules(), under each name in stateDict', () => {
    const bn = new BatchNorm1d(2);
    class Shared extends Module { a = bn; b = bn; }
    const s = new Shared();
    expect(s.parameters()).toEqual([bn.weight, bn.bias]);
    expect(s.modules()).toEqual([s, bn]);
    expect(Object.keys(s.stateDict()).filter((k) => k.endsWith('weight'))).toEqual(['a.weight', 'b.weight']);
  });

  it('refuses a cycle with a RangeError instead of recursing forever', () => {
    class Loop extends Module { self: Module | null = null; }
    const l = new Loop();
    l.self = l;
    expect(() => l.stateDict()).toThrow(RangeError);
    expect(() => l.train()).toThrow(/must not have cycles/);
    expect(l.training).toBe(true);
  });

  it('a bare Module: forward and backward say to override them; async forms run the sync ones', async () => {
    const m = new Module();
    expect(() => m.forward(x43())).toThrow(/Module has no forward: override forward\(x\)/);
    expect(() => m.backward(x43())).toThrow(/no backward/);
    await expect(m.forwardAsync(x43())).rejects.toThrow(/no forward/);
    class Twice extends Module { override forward(x: Tensor): Tensor { return { data: x.data.map((v) => 2 * v), shape: x.shape }; } }
    expect(Array.from((await new Twice().forwardAsync(tensor([1, 2], [2]))).data)).toEqual([2, 4]);
  });
});

describe('Sequential', () => {
  it('forward runs in order and backward in reverse: the same bits as chaining the layers by hand', async () => {
    const make = () => [new BatchNorm1d(4), new Dense(4, 3), new LayerNorm(3)] as const;
    const [a, b, c] = make();
    b.weight.data.set([0.5, -1, 2, 0.25, 1, 1, -0.5, 0.75, -2, 0.1, 0.3, 1.5]);
    const seq = new Sequential(...make());
    seq.loadStateDict({ ...a.stateDict('0.'), ...b.stateDict('1.'), ...c.stateDict('2.') });
    const dy = tensor(Float32Array.from({ length: 9 }, (_, i) => Math.cos(i)), [3, 3]);
    const yRef = c.forward(b.forward(a.forward(x43()))), dxRef = a.backward(b.backward(c.backward(dy)));
    const y = seq.forward(x43()), dx = seq.backward(dy);
    expectBitIdentical(y.data, yRef.data, 'y');
    expectBitIdentical(dx.data, dxRef.data, 'dx');
    expect(y.data).toBeInstanceOf(Float32Array);
    const yAsync = await seq.forwardAsync(x43()), dxAsync = await seq.backwardAsync(dy);
    expectBitIdentical(yAsync.data, yRef.data, 'async y');
    expectBitIdentical(dxAsync.data, dxRef.data, 'async dx');
    expect(seq.length).toBe(3);
    expect(Array.from(seq.namedModules('model'), ([n]) => n)).toEqual(['model', 'model.0', 'model.1', 'model.2']);
    expect(seq.at(1)).toBeInstanceOf(Dense);
    expect(seq.at(3)).toBeUndefined();
    expect([...seq].length).toBe(3);
  });

  it('has PyTorch\'s keys: "0.weight", "1.running_mean", nested "2.0.weight"', () => {
    const seq = new Sequential(new LayerNorm(4), new BatchNorm1d(4), new Sequential(new GroupNorm(2, 4)));
    expect(Object.keys(seq.stateDict())).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var',
      '1.num_batches_tracked', '2.0.weight', '2.0.bias']);
  });

  it('refuses what is not a module, and a module that changes the dtype', () => {
    expect(() => new Sequential(new BatchNorm1d(2), {} as never)).toThrow(/Expected a Module for Sequential argument 1 but received object/);
    class ToF64 extends Module { override forward(x: Tensor): Tensor { return { data: Float64Array.from(x.data), shape: x.shape }; } }
    expect(() => new Sequential(new ToF64()).forward(x43())).toThrow(/expected a float32 tensor from the last module but received float64/);
  });

  it('a tree with an async call in flight refuses zeroGrad, loadStateDict and to()', async () => {
    const bn = new BatchNorm1d(4), seq = new Sequential(bn);
    const pending = seq.forwardAsync(x43());
    expect(() => seq.zeroGrad()).toThrow(/busy with forwardAsync/);
    expect(() => seq.to('float64')).toThrow(/busy/);
    expect(() => seq.loadStateDict(seq.stateDict())).toThrow(/busy/);
    await pending;
    expect(bn.numBatchesTracked).toBe(1);
  });
});

describe('ModuleDict', () => {
  it('registers its children by key in insertion order; any key without "." works', () => {
    const d = new ModuleDict({ encoder: new BatchNorm1d(2), training: new LayerNorm(2) });
    d.set('10', new LayerNorm(3)).set('2', new LayerNorm(3));
    expect([...d.keys()]).toEqual(['encoder', 'training', '10', '2']);
    expect(Array.from(d.namedChildren(), ([k]) => k)).toEqual(['encoder', 'training', '10', '2']);
    expect(Object.keys(d.stateDict()).slice(-4)).toEqual(['10.weight', '10.bias', '2.weight', '2.bias']);
    expect(d.get('encoder')).toBeInstanceOf(BatchNorm1d);
    expect(d.training).toBe(true);
    expect(d.size).toBe(4);
    expect(() => d.set('a.b', new LayerNorm(2))).toThrow(RangeError);
    expect(() => d.set('', new LayerNorm(2))).toThrow(RangeError);
    expect(() => d.set('x', 3 as never)).toThrow(TypeError);
    expect(d.delete('10')).toBe(true);
    expect(d.has('10')).toBe(false);
  });
});

describe('tree operations', () => {
  it('train/eval reach every descendant and return this', () => {
    const d = new ModuleDict({ a: new Sequential(new BatchNorm2d(2), new BatchNorm2d(2)) });
    expect(d.eval()).toBe(d);
    expect(d.modules().map((m) => m.training)).toEqual([false, false, false, false]);
    d.train();
    expect(d.modules().every((m) => m.training)).toBe(true);
  });

  it('zeroGrad sets every grad in the tree to null by default, or zeroes it with setToNone: false', () => {
    const seq = new Sequential(new BatchNorm1d(4), new Dense(4, 2));
    seq.forward(x43());
    seq.backward(tensor(new Float32Array(6).fill(1), [3, 2]));
    seq.zeroGrad({ setToNone: false });
    for (const p of seq.parameters()) expect(p.grad!.every((v) => v === 0)).toBe(true);
    seq.zeroGrad();
    for (const p of seq.parameters()) expect(p.grad).toBeNull();
  });

  it('to(dtype) converts parameters, grads, running statistics and dtype of the whole tree, keeping the Parameters', () => {
    const bn = new BatchNorm1d(4), dense = new Dense(4, 2), seq = new Sequential(bn, dense);
    seq.forward(x43());
    seq.backward(tensor(Float32Array.of(1, 2, 3, 4, 5, 6), [3, 2]));
    const before = seq.stateDict(), weight = bn.weight!, grad = Array.from(bn.weight!.grad!);
    expect(seq.to('float64')).toBe(seq);
    expect(bn.dtype).toBe('float64');
    expect(bn.weight).toBe(weight);
    for (const p of seq.parameters()) expect(p.data).toBeInstanceOf(Float64Array);
    expect(bn.weight!.grad).toBeInstanceOf(Float64Array);
    expect(Array.from(bn.weight!.grad!)).toEqual(grad);
    expect(bn.runningVar).toBeInstanceOf(Float64Array);
    expect(json(seq.stateDict())).toBe(json(before));   // the same values, widened exactly
    expect(() => seq.forward(x43())).toThrow(/expected float64 input/);
    expect(seq.forward(tensor(Float64Array.from(x43().data), [3, 4])).data).toBeInstanceOf(Float64Array);
    expect(() => seq.to('float16' as never)).toThrow(TypeError);
    seq.to('float32');
    expect(bn.runningMean).toBeInstanceOf(Float32Array);
  });
});

describe('nested loadStateDict', () => {
  const model = () => new ModuleDict({ body: new Sequential(new BatchNorm1d(4), new LayerNorm(4)), head: new GroupNorm(1, 4) });
  const trained = () => {
    const m = model();
    const body = m.get('body')!;
    body.forward(x43());
    for (const p of m.parameters()) p.data.fill(0.5);
    return m;
  };

  it('round-trips the whole tree', () => {
    const src = trained(), dst = model();
    dst.loadStateDict(src.stateDict());
    expect(json(dst.stateDict())).toBe(json(src.stateDict()));
  });

  it('is atomic across the tree: one bad entry deep inside changes no layer', () => {
    const dst = model(), before = json(dst.stateDict());
    const good = trained().stateDict();
    expect(() => dst.loadStateDict({ ...good, 'head.bias': tensor(new Float32Array(3), [3]) })).toThrow(/size mismatch for head.bias/);
    expect(() => dst.loadStateDict({ ...good, 'body.0.num_batches_tracked': 3 as never })).toThrow(TypeError);
    const { ['body.1.weight']: _w, ...missing } = good;
    expect(() => dst.loadStateDict({ ...missing, 'body.2.weight': good['head.weight']! })).toThrow(
      /Error\(s\) in loading state_dict for ModuleDict:\n\tMissing key\(s\) in state_dict: "body.1.weight"\n\tUnexpected key\(s\) in state_dict: "body.2.weight"/);
    expect(json(dst.stateDict())).toBe(before);
    dst.loadStateDict(missing, { strict: false });   // non-strict: what matches loads
    expect(json(dst.stateDict()).includes('"head.weight":{"data":[0.5,0.5,0.5,0.5]')).toBe(true);
  });
});
