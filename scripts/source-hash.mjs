// The hash of everything that decides what a prebuilt binary contains: native/, CMakeLists.txt, cmake/ and the
// prebuild script with its platform table. scripts/prebuild.mjs writes it into each prebuilds/<target>/abi.json;
// the tests and scripts/pack.mjs compare it to tell a current prebuild from a stale one.
// Usage: node scripts/source-hash.mjs   (prints the hash)
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const INPUTS = ['native', 'CMakeLists.txt', 'cmake', 'scripts/prebuild.mjs', 'scripts/platforms.json'];

function* files(path) {
  if (statSync(path).isDirectory()) for (const e of readdirSync(path).sort()) yield* files(join(path, e));
  else yield path;
}

export function sourceHash() {
  const h = createHash('sha256');
  for (const input of INPUTS) for (const f of files(join(root, input))) h.update(`${relative(root, f)}\0`).update(readFileSync(f)).update('\0');
  return h.digest('hex').slice(0, 16);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) console.log(sourceHash());
