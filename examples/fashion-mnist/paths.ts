// Where the example's own folder is. The compiled code runs from dist/tools/examples/fashion-mnist/ and the tests
// from examples/fashion-mnist/ itself, but the shipped data and the default output folder live in the source tree,
// so walk up from this file until a folder holds examples/fashion-mnist/data/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const MARKER = join('examples', 'fashion-mnist', 'data', 'SOURCE.md');

/** The source folder examples/fashion-mnist/ of the repository this file belongs to. */
export function exampleDir(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, MARKER))) return join(dir, 'examples', 'fashion-mnist');
    if (dirname(dir) === dir) throw new Error(`cannot find ${MARKER} in any folder above ${__dirname}`);
  }
}

/** The small Fashion-MNIST subset committed with the example. */
export function shippedDataDir(): string {
  return join(exampleDir(), 'data');
}

/** Where plots, checkpoints and JSON go unless --out says otherwise. */
export function defaultOutDir(): string {
  return join(exampleDir(), 'out');
}
