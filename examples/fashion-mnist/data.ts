// Which Fashion-MNIST to use, loading it, and cutting it into shuffled mini-batches.
//
// Order of preference: the folder given with --data; else Debian's `dataset-fashion-mnist` package; else the
// subset committed in data/ (the whole test set and a fifth of the training set), so that `npm run demo` works on
// any machine and reaches about the full data set's accuracy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readIdxFile, type IdxArray } from './idx.js';
import { shippedDataDir } from './paths.js';
import type { Rng } from './rng.js';

/** Where Debian's dataset-fashion-mnist package installs the four files. */
export const SYSTEM_DATA_DIR = '/usr/share/datasets/fashion-mnist';

export const CLASS_NAMES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export const IMAGE_MAGIC = 0x00000803;
export const LABEL_MAGIC = 0x00000801;

/** The four files of a Fashion-MNIST folder, by their names in the original distribution. */
const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;
type FileKey = keyof typeof FILES;
export type DataFiles = Record<FileKey, string>;

export interface DataSource {
  kind: 'argument' | 'system' | 'subset';
  dir: string;
  files: DataFiles;
}

/** One split: images as the file's unsigned bytes (count x rows*cols) and labels 0-9. */
export interface Dataset {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  /** rows * cols = 784 */
  pixels: number;
}

/** The folder's four files (each gzipped or not), or the names of those missing. */
export function findDataFiles(dir: string): { files: DataFiles } | { missing: string[] } {
  const files: Partial<DataFiles> = {};
  const missing: string[] = [];
  for (const key of Object.keys(FILES) as FileKey[]) {
    const base = join(dir, FILES[key]);
    const found = [`${base}.gz`, base].find((p) => existsSync(p));
    if (found) files[key] = found;
    else missing.push(`${FILES[key]}[.gz]`);
  }
  return missing.length ? { missing } : { files: files as DataFiles };
}

/**
 * Picks the data. An explicit folder must hold all four files (a typo should not silently train on something
 * else); without one, the system package is used when complete, else the shipped subset.
 */
export function locateData(explicitDir?: string, systemDir = SYSTEM_DATA_DIR, subsetDir = shippedDataDir()): DataSource {
  if (explicitDir !== undefined) {
    const found = findDataFiles(explicitDir);
    if ('missing' in found) throw new Error(`--data ${explicitDir}: missing ${found.missing.join(', ')}`);
    return { kind: 'argument', dir: explicitDir, files: found.files };
  }
  const system = findDataFiles(systemDir);
  if ('files' in system) return { kind: 'system', dir: systemDir, files: system.files };
  const subset = findDataFiles(subsetDir);
  if ('missing' in subset) throw new Error(`the shipped subset in ${subsetDir} is incomplete: missing ${subset.missing.join(', ')}`);
  return { kind: 'subset', dir: subsetDir, files: subset.files };
}

/** A one-line description of the data for the user. */
export function describeSource(source: DataSource, train: Dataset, test: Dataset): string {
  const what = {
    argument: 'Fashion-MNIST from --data',
    system: "Fashion-MNIST from Debian's dataset-fashion-mnist package",
    subset: 'the Fashion-MNIST subset shipped with this example (Debian\'s dataset-fashion-mnist or --data DIR: the full training set)',
  }[source.kind];
  return `${what}: ${train.count} training and ${test.count} test images (${source.dir})`;
}

function checkIdx(idx: IdxArray, magic: number, rank: number, path: string): void {
  if (idx.magic !== magic || idx.dims.length !== rank) {
    throw new Error(`${path}: expected magic 0x${magic.toString(16).padStart(8, '0')} with ${rank} dimension(s), ` +
      `got 0x${idx.magic.toString(16).padStart(8, '0')} with ${idx.dims.length}`);
  }
}

/** Reads one split and checks that images and labels agree. */
export function loadSplit(imagesPath: string, labelsPath: string): Dataset {
  const images = readIdxFile(imagesPath);
  const labels = readIdxFile(labelsPath);
  checkIdx(images, IMAGE_MAGIC, 3, imagesPath);
  checkIdx(labels, LABEL_MAGIC, 1, labelsPath);
  const [count = 0, rows = 0, cols = 0] = images.dims;
  if (labels.dims[0] !== count) throw new Error(`${imagesPath} holds ${count} images but ${labelsPath} ${labels.dims[0]} labels`);
  const bad = labels.data.findIndex((l) => l >= CLASS_NAMES.length);
  if (bad >= 0) throw new Error(`${labelsPath}: label ${labels.data[bad]} at index ${bad} is not a class 0-9`);
  return { images: images.data, labels: labels.data, count, pixels: rows * cols };
}

export function loadData(source: DataSource): { train: Dataset; test: Dataset } {
  return {
    train: loadSplit(source.files.trainImages, source.files.trainLabels),
    test: loadSplit(source.files.testImages, source.files.testLabels),
  };
}

/** 0..count-1 in a random order (Fisher-Yates), a fresh order each epoch. */
export function shuffledOrder(count: number, rng: Rng): Uint32Array {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

export interface Batch {
  /** n x pixels, scaled to [0, 1]. Scaling (not standardizing) keeps the background exactly 0, which the matmul skips. */
  x: Float32Array;
  labels: Uint8Array;
  n: number;
}

/** Copies the images at `indices` into a batch. */
export function gatherBatch(ds: Dataset, indices: ArrayLike<number>): Batch {
  const n = indices.length, p = ds.pixels;
  const x = new Float32Array(n * p);
  const labels = new Uint8Array(n);
  for (let b = 0; b < n; b++) {
    const src = indices[b]! * p, dst = b * p;
    for (let k = 0; k < p; k++) x[dst + k] = ds.images[src + k]! / 255;
    labels[b] = ds.labels[indices[b]!]!;
  }
  return { x, labels, n };
}

/**
 * The batches of one pass over `order`; a last batch smaller than `minSize` is left out. Training passes at least
 * 2 (batch norm cannot normalize one value per channel in training mode; PyTorch raises the same error), see
 * train.ts for why it drops every short batch.
 */
export function* batches(ds: Dataset, order: Uint32Array, batchSize: number, minSize = 1): Generator<Batch> {
  for (let start = 0; start < order.length; start += batchSize) {
    const indices = order.subarray(start, Math.min(start + batchSize, order.length));
    if (indices.length < minSize) break;
    yield gatherBatch(ds, indices);
  }
}

/** Number of batches `batches` yields. */
export function batchCount(count: number, batchSize: number, minSize = 1): number {
  const full = Math.floor(count / batchSize), rest = count % batchSize;
  return full + (rest > 0 && rest >= minSize ? 1 : 0);
}
