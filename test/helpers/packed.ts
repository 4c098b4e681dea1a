// The tarball users get, for the tests that install it (package.test.ts, platforms.test.ts). Prebuilt binaries
// built from the current sources are used as they are (CI makes release ones first: npm run prebuilds); a stale or
// missing one is rebuilt with the host toolchain (`prebuild --dev`: x64, and arm64 when g++-aarch64-linux-gnu is
// installed), under a lock, since test files run in parallel. Then scripts/pack.mjs --dev packs it, as a release.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

/** Whether an executable of this name is on PATH. */
export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, cmd)));
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function withLock<T>(name: string, f: () => T): T {
  const lock = join(root, '.tmp', `${name}.lock`);
  mkdirSync(join(root, '.tmp'), { recursive: true });
  for (;;) {
    try { mkdirSync(lock); break; } catch { /* held */ }
    // A lock older than 15 minutes was left by a killed run.
    try { if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmdirSync(lock); } catch { /* just released */ }
    sleep(500);
  }
  try { return f(); } finally { rmdirSync(lock); }
}

/** What prebuilds/<target>/abi.json says, or null when absent. */
export function prebuildAbi(target: string): { build: string; sources: string; needs: Record<string, string> } | null {
  const file = join(root, 'prebuilds', target, 'abi.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null;
}

export const sourceHash = (): string => execFileSync(process.execPath, [join(root, 'scripts/source-hash.mjs')], { encoding: 'utf8' }).trim();

/** Makes every prebuild this machine can build current; returns the targets that are. */
export function currentPrebuilds(): string[] {
  return withLock('prebuild', () => {
    const hash = sourceHash();
    const wanted = ['linux-x64', ...(onPath('aarch64-linux-gnu-g++') ? ['linux-arm64'] : [])];
    for (const target of wanted) {
      if (prebuildAbi(target)?.sources === hash) continue;
      execFileSync(process.execPath, [join(root, 'scripts/prebuild.mjs'), '--dev', '--target', target], { cwd: root, stdio: 'ignore' });
    }
    return ['linux-x64', 'linux-arm64'].filter((t) => prebuildAbi(t)?.sources === hash);
  });
}

/** Packs the tarball (current prebuilds only) into `dir`; returns its path. */
export function packInto(dir: string): string {
  currentPrebuilds();
  return execFileSync(process.execPath, [join(root, 'scripts/pack.mjs'), '--dev', '--pack-destination', dir],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
}
