// Fetches the official Node binaries the platform tests run (scripts/node-builds.json: every supported major for
// linux-x64, with 18.17.0 the `engines` floor itself, and the arm64 Node run under qemu-aarch64) from the npm
// registry packages node-linux-<arch>@<version>, into .cache/node/linux-<arch>-v<version>/ (bin/node and the
// headers in include/node). Already present: skipped. No network at test time: the tests only read this cache and
// skip, saying why, when it is absent; .ci/run calls this first.   Usage: node scripts/fetch-node.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const builds = JSON.parse(readFileSync(join(root, 'scripts/node-builds.json'), 'utf8'));
for (const [arch, versions] of Object.entries(builds)) {
  for (const version of versions) {
    const dir = join(root, '.cache/node', `linux-${arch}-v${version}`);
    if (existsSync(join(dir, 'bin/node'))) continue;
    const tmp = mkdtempSync(join(tmpdir(), 'normkit-node-'));
    try {
      // npm pack checks the tarball against the registry's integrity hash.
      const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', `node-linux-${arch}@${version}`, '--json', '--pack-destination', tmp],
        { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
      mkdirSync(join(tmp, 'out'));
      execFileSync('tar', ['-xzf', join(tmp, filename), '-C', join(tmp, 'out'), '--strip-components=1', 'package/bin/node', 'package/include']);
      mkdirSync(join(root, '.cache/node'), { recursive: true });
      rmSync(dir, { recursive: true, force: true });
      renameSync(join(tmp, 'out'), dir);  // whole or not at all: a broken download leaves no half cache
      console.log(`fetch-node: ${dir}`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}
