// Random sequences of calls on a layer (fast-check commands) keep PyTorch's invariants: eval never changes the
// running stats, backward adds exactly its own gradient, zeroGrad zeroes, a throwing call changes nothing, and
// the running stats follow the momentum rule applied to the float64 reference statistics.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, functional as F, tensor, type StateDict } from '../lib/index.js';
import { refForward } from './helpers/reference.js';

const C = 3;

interface Model { runningMean: number[]; runningVar: number[]; count: number; grad: number[] | null; lastX: Float64Array | null; training: boolean }
type Real = BatchNorm1d;

const snap = (bn: Real) => JSON.stringify([Array.from(bn.runningMean!), Array.from(bn.runningVar!), bn.numBatchesTracked,
  bn.weight!.grad ? Array.from(bn.weight!.grad) : null, Array.from(bn.weight!.data), bn.training]);

const batch = (N: number, seed: number) => Float64Array.from({ length: N * C }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * (1 + (i % C)) + i % C);

class Forward implements fc.Command<Model, Real> {
  constructor(readonly N: number, readonly seed: number) {}
  check() { return true; }
  run(m: Model, bn: Real) {
    const x = batch(this.N, this.seed);
    const before = { rm: Array.from(bn.runningMean!), rv: Array.from(bn.runningVar!) };
    bn.forward(tensor(x, [this.N, C]));
    if (m.training) {
      const r = refForward(x, [this.N, C], false, 1e-5);
      m.runningMean = m.runningMean.map((v, c) => 0.9 * v + 0.1 * r.mean[c]!);
      m.runningVar = m.runningVar.map((v, c) => 0.9 * v + 0.1 * r.varUnbiased[c]!);
      m.count++;
    } else {
      expect(Array.from(bn.runningMean!)).toEqual(before.rm);  // eval never changes running stats
      expect(Array.from(bn.runningVar!)).toEqual(before.rv);
    }
    m.lastX = x;
    bn.runningMean!.forEach((v, c) => expect(v).toBeCloseTo(m.runningMean[c]!, 10));
    bn.runningVar!.forEach((v, c) => expect(v).toBeCloseTo(m.runningVar[c]!, 10));
    expect(bn.numBatchesTracked).toBe(m.count);
  }
  toString() { return `forward(N=${this.N})`; }
}

class BadForward implements fc.Command<Model, Real> {
  constructor(readonly kind: number) {}
  check(m: Readonly<Model>) { return this.kind !== 2 || m.training; }  // one value per channel is fine in eval
  run(_m: Model, bn: Real) {
    const before = snap(bn);
    const bad = [tensor(new Float64Array(4), [1, 4]), tensor(new Float32Array(6), [2, 3]), tensor(new Float64Array(3), [1, C])][this.kind]!;
    expect(() => bn.forward(bad)).toThrow(this.kind === 1 ? TypeError : RangeError);
    expect(snap(bn)).toBe(before);
  }
  toString() { return `badForward(${this.kind})`; }
}

class Backward implements fc.Command<Model, Real> {
  constructor(readonly seed: number) {}
  check(m: Readonly<Model>) { return m.lastX !== null; }
  run(m: Model, bn: Real) {
    const x = m.lastX!, N = x.length / C, dy = batch(N, this.seed + 99);
    const before = bn.weight!.grad ? Array.from(bn.weight!.grad) : [0, 0, 0];
    const beforeBias = bn.bias!.grad ? Array.from(bn.bias!.grad) : [0, 0, 0];
    bn.backward(tensor(dy, [N, C]));
    // the gradient added is the functional one for the same statistics: the batch's in training, the running
    // stats in eval (which the eval forward left untouched)
    const stats = bn.training
      ? F.batchNorm(tensor(x, [N, C]), { training: true, weight: bn.weight!.data })
      : { saveMean: Float64Array.from(bn.runningMean!), saveInvstd: Float64Array.from(bn.runningVar!, (v) => 1 / Math.sqrt(v + 1e-5)) };
    const g = F.batchNormBackward(tensor(dy, [N, C]), tensor(x, [N, C]),
      { weight: bn.weight!.data, saveMean: stats.saveMean, saveInvstd: stats.saveInvstd, training: bn.training });
    bn.weight!.grad!.forEach((v, c) => expect(v).toBeCloseTo(before[c]! + g.dweight[c]!, 10));
    bn.bias!.grad!.forEach((v, c) => expect(v).toBeCloseTo(beforeBias[c]! + g.dbias[c]!, 10));
    m.grad = Array.from(bn.weight!.grad!);
  }
  toString() { return 'backward'; }
}

class Mode implements fc.Command<Model, Real> {
  constructor(readonly training: boolean) {}
  check() { return true; }
  run(m: Model, bn: Real) { bn.train(this.training); m.training = this.training; m.lastX = null; }
  toString() { return this.training ? 'train()' : 'eval()'; }
}

class ZeroGrad implements fc.Command<Model, Real> {
  check() { return true; }
  run(_m: Model, bn: Real) { bn.zeroGrad(); if (bn.weight!.grad) expect(Array.from(bn.weight!.grad)).toEqual([0, 0, 0]); }
  toString() { return 'zeroGrad'; }
}

class BadLoad implements fc.Command<Model, Real> {
  check() { return true; }
  run(_m: Model, bn: Real) {
    const before = snap(bn);
    const sd: StateDict = bn.stateDict();
    sd.running_var = { data: new Float64Array(C + 1), shape: [C + 1] };
    expect(() => bn.loadStateDict(sd)).toThrow(/size mismatch for running_var/);
    expect(snap(bn)).toBe(before);
  }
  toString() { return 'badLoad'; }
}

describe('call sequences keep the invariants (model-based)', () => {
  it('holds for random sequences', () => {
    const commands = [
      fc.tuple(fc.integer({ min: 2, max: 9 }), fc.integer({ min: 0, max: 1000 })).map(([n, s]) => new Forward(n, s)),
      fc.integer({ min: 0, max: 2 }).map((k) => new BadForward(k)),
      fc.integer({ min: 0, max: 1000 }).map((s) => new Backward(s)),
      fc.boolean().map((t) => new Mode(t)),
      fc.constant(new ZeroGrad()),
      fc.constant(new BadLoad()),
    ];
    fc.assert(fc.property(fc.commands(commands, { maxCommands: 30 }), (cmds) => {
      const setup = () => ({
        model: { runningMean: [0, 0, 0], runningVar: [1, 1, 1], count: 0, grad: null, lastX: null, training: true } as Model,
        real: new BatchNorm1d(C, { dtype: 'float64' }),
      });
      fc.modelRun(setup, cmds);
    }), { numRuns: 150, seed: 7 });
  });
});
