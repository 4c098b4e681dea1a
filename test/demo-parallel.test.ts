// The demo's data-parallel runs (examples/fashion-mnist/main.ts, parallel.ts): `--workers 2` (a thread group) and
// `--mpi` under mpirun -np 2, against the single-process run with the same seed, global batch and order, on a small
// slice of the shipped data (2048 training images, batches of 32, 4 epochs: 256 steps per network). Only float32
// summation order differs between them, so the final test accuracy must agree within 0.01 and every weight tensor
// within 1e-4 relative. They run the built program (npm run build), as a user does: --workers' ranks are worker
// threads running dist/tools/examples/fashion-mnist/main.js.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSafetensors, type StateDict } from '../lib/index.js';
import { encodeIdx, readIdxFile } from '../examples/fashion-mnist/idx.js';
import { mpiSkipReason, mpirunNode, mpiTitle } from './helpers/mpirun.js';

const root = join(__dirname, '..');
const main = join(root, 'dist', 'tools', 'examples', 'fashion-mnist', 'main.js');
const shipped = join(root, 'examples', 'fashion-mnist', 'data');
const TRAIN = 2048, TEST = 1000;

/** The first `count` items of a shipped IDX file, written uncompressed into `dir`. */
function slice(dir: string, name: string, count: number): void {
  const idx = readIdxFile(join(shipped, `${name}.gz`));
  const per = idx.dims.slice(1).reduce((a, b) => a * b, 1);
  writeFileSync(join(dir, name), encodeIdx([count, ...idx.dims.slice(1)], idx.data.subarray(0, count * per)));
}

interface Summary { testAccuracy: number[] }
interface Report {
  withBN: Summary; withoutBN: Summary; checkpoint: string;
  distributed?: { ranks: number; communicator: string; identicalWeights: boolean };
}

const work = mkdtempSync(join(tmpdir(), 'normkit-demo-parallel-'));
const data = join(work, 'data');
const ARGS = ['--data', data, '--hidden', '32,16', '--batch-size', '32', '--epochs', '4', '--lr', '0.5', '--threads', '1'];

/** Runs the demo with `launch` (node itself, or mpirun); returns its JSON report. */
function demo(name: string, extra: string[], launch = (args: string[]) => spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 })): Report {
  const json = join(work, `${name}.json`);
  const r = launch([main, ...ARGS, ...extra, '--json', json, '--out', join(work, name)]);
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
  return JSON.parse(readFileSync(json, 'utf8')) as Report;
}

const last = (s: Summary) => s.testAccuracy[s.testAccuracy.length - 1]!;

/**
 * The worst over layers of max |a - b| / max |b|, both maxima over the layer's float tensors (fc1.weight and
 * fc1.bias together). Per layer, not per tensor: a dense bias right before a batch norm layer gets a gradient that
 * is 0 in exact arithmetic (batch norm subtracts the batch mean), so it holds float32 rounding noise of ~1e-8 that
 * differs between any two summation orders; on its layer's scale that noise is what it is, negligible.
 */
function worstRelative(a: StateDict, b: StateDict): number {
  expect(Object.keys(a)).toEqual(Object.keys(b));
  const layers = new Map<string, { diff: number; scale: number }>();
  for (const [key, t] of Object.entries(b)) {
    if (!(t.data instanceof Float32Array)) continue;
    const other = a[key]!.data as Float32Array;
    const layer = layers.get(key.split('.')[0]!) ?? { diff: 0, scale: 0 };
    t.data.forEach((v, i) => {
      layer.scale = Math.max(layer.scale, Math.abs(v));
      layer.diff = Math.max(layer.diff, Math.abs(v - other[i]!));
    });
    layers.set(key.split('.')[0]!, layer);
  }
  expect(layers.size).toBe(5);  // fc1, bn1, fc2, bn2, fc3
  return Math.max(...[...layers.values()].map((l) => l.diff / l.scale));
}

const checkpoint = (r: Report) => loadSafetensors(new Uint8Array(readFileSync(r.checkpoint)));

let single: Report;
beforeAll(() => {
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  mkdirSync(data);
  slice(data, 'train-images-idx3-ubyte', TRAIN);
  slice(data, 'train-labels-idx1-ubyte', TRAIN);
  slice(data, 't10k-images-idx3-ubyte', TEST);
  slice(data, 't10k-labels-idx1-ubyte', TEST);
  single = demo('single', []);
}, 180_000);

describe('the demo data-parallel on 2 worker threads (--workers 2)', () => {
  it('matches the single-process run: test accuracy within 0.01, weights within 1e-4 relative, identical on both ranks', () => {
    const two = demo('workers2', ['--workers', '2']);
    expect(two.distributed).toEqual({ ranks: 2, communicator: 'threads', identicalWeights: true });
    expect(single.distributed).toBeUndefined();
    expect(last(single.withBN)).toBeGreaterThan(0.6);  // it learned something, so agreeing means something
    expect(Math.abs(last(two.withBN) - last(single.withBN))).toBeLessThanOrEqual(0.01);
    expect(Math.abs(last(two.withoutBN) - last(single.withoutBN))).toBeLessThanOrEqual(0.01);
    const worst = worstRelative(checkpoint(two), checkpoint(single));
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(worst).toBeGreaterThan(0);  // two different computations, not one run read twice
  }, 180_000);
});

(mpiSkipReason ? describe.skip : describe)(mpiTitle('the demo data-parallel over MPI (mpirun -np 2 … --mpi)'), () => {
  it('trains with identical weights on both ranks, rank 0 writing the report, and matches the single-process run', () => {
    const mpi = demo('mpi2', ['--mpi'], (args) => mpirunNode(2, args));
    expect(mpi.distributed).toEqual({ ranks: 2, communicator: 'mpi', identicalWeights: true });
    expect(Math.abs(last(mpi.withBN) - last(single.withBN))).toBeLessThanOrEqual(0.01);
    expect(worstRelative(checkpoint(mpi), checkpoint(single))).toBeLessThanOrEqual(1e-4);
  }, 180_000);
});
