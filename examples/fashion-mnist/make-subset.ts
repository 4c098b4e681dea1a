// Regenerates data/: the first TRAIN training images and all 10000 test images of Fashion-MNIST, as gzipped IDX
// files of the same names, so that `npm run demo` reaches the full data set's accuracy without it (see
// data/SOURCE.md). The whole test set (4.4 MB of the ~9.7 MB) makes the accuracy it prints comparable with the
// full data set's; TRAIN is the smallest prefix with which the default run stays clear of 0.85 (README.md).
// Run: node dist/tools/examples/fashion-mnist/make-subset.js [FULL_DATA_DIR]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdx, readIdxFile } from './idx.js';
import { SYSTEM_DATA_DIR, findDataFiles } from './data.js';
import { shippedDataDir } from './paths.js';

const TRAIN = 12000, TEST = 10000;

const from = process.argv[2] ?? SYSTEM_DATA_DIR;
const found = findDataFiles(from);
if ('missing' in found) throw new Error(`${from}: missing ${found.missing.join(', ')}`);
const parts: Array<[string, string, number]> = [
  [found.files.trainImages, 'train-images-idx3-ubyte.gz', TRAIN],
  [found.files.trainLabels, 'train-labels-idx1-ubyte.gz', TRAIN],
  [found.files.testImages, 't10k-images-idx3-ubyte.gz', TEST],
  [found.files.testLabels, 't10k-labels-idx1-ubyte.gz', TEST],
];
for (const [path, name, count] of parts) {
  const idx = readIdxFile(path);
  const perItem = idx.dims.slice(1).reduce((a, b) => a * b, 1);
  const bytes = encodeIdx([count, ...idx.dims.slice(1)], idx.data.subarray(0, count * perItem));
  const out = join(shippedDataDir(), name);
  writeFileSync(out, gzipSync(bytes, { level: 9 }));  // zlib writes no timestamp: the output is reproducible
  console.log(`${out}: ${count} of ${idx.dims[0]}`);
}
