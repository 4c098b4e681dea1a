// The packed tarball, installed, under every supported Node (official linux-x64 builds 18.17.0 — the `engines`
// floor — 20, 22, 24) and under the official arm64 Node in qemu-aarch64: each replays every PyTorch fixture case
// (BatchNorm and the family) and the bad-input checks through test/platform/run.ts. The prebuilt binaries must also
// give the development build's results bit for bit where the arithmetic is the same: linux-x64 per ISA, and
// linux-arm64 (NEON, fused multiply-adds where AVX2 has them) against the development build's AVX2 path. And linux-x64 once
// more inside the bullseye build root (chroot: Debian 11's glibc 2.31 and libstdc++), an older userland than the host.
// Needs the caches .ci/run fills (node scripts/fetch-node.mjs; qemu-user, libc6-arm64-cross); without them the
// tests are skipped with the reason in their name, and NORMKIT_REQUIRE_PLATFORMS=1 (set by .ci/run) fails instead.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { currentPrebuilds, onPath, packInto } from './helpers/packed.js';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'normkit-platforms-'));
const app = join(work, 'app');
const installed = join(app, 'node_modules', 'normkit');
const runner = join(root, 'dist/tools/test/platform/run.js');
const fixtures = join(root, 'test/fixtures');
const builds = JSON.parse(readFileSync(join(root, 'scripts/node-builds.json'), 'utf8')) as Record<'x64' | 'arm64', string[]>;
const nodeBin = (arch: string, v: string) => join(root, '.cache/node', `linux-${arch}-v${v}`, 'bin/node');
// The arm64 libc: the bullseye root's (glibc 2.31, the floor's neighbourhood) when there, else Debian 12's cross one.
const arm64Sysroot = [join(root, '.cache/bullseye-amd64/usr/aarch64-linux-gnu'), '/usr/aarch64-linux-gnu']
  .find((d) => existsSync(join(d, 'lib/ld-linux-aarch64.so.1')));
const required = process.env.NORMKIT_REQUIRE_PLATFORMS === '1';

interface RunResult { node: string; arch: string; simd: string; cases: number; checks: number; failures: string[]; digests: Record<string, string> }

function parse(out: string): RunResult {
  return JSON.parse(out.trim().split('\n').pop()!) as RunResult;
}

/** Runs test/platform/run.ts with a Node binary (through qemu for arm64) against a normkit directory. */
function runWith(cmd: string[], pkg: string, env: Record<string, string> = {}): RunResult {
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), runner, pkg, fixtures, '--digests'],
    { encoding: 'utf8', env: { ...process.env, NORMKIT_ADDON: '', ...env }, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return parse(r.stdout);
}

/** `it`, or a skipped test that says why (a failing one when the platforms are required). */
function itIf(why: string | null, name: string, fn: () => void, timeout = 300_000) {
  if (!why) it(name, fn, timeout);
  else if (required) it(name, () => { throw new Error(`required by NORMKIT_REQUIRE_PLATFORMS but ${why}`); });
  else it.skip(`${name} — skipped: ${why}`, () => {});
}

let targets: string[] = [];
beforeAll(() => {
  targets = currentPrebuilds();
  const tarball = packInto(work);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tarball], { cwd: app, stdio: 'ignore',
    env: { ...process.env, npm_config_cache: join(work, 'npm-cache'), npm_config_update_notifier: 'false' } });
}, 600_000);

// The development build's digests per ISA (build/Release through lib/'s compiled copy at the repository root).
const devDigests = new Map<string, RunResult>();
function dev(isa: string): RunResult {
  if (!devDigests.has(isa)) devDigests.set(isa, runWith([process.execPath], root, { NORMKIT_ISA: isa }));
  return devDigests.get(isa)!;
}
const hostIsas = (): string[] => JSON.parse(execFileSync(process.execPath,
  ['-p', 'JSON.stringify(require(process.argv[1]).buildInfo().supportedSimd)', root], { encoding: 'utf8' })) as string[];

describe('every supported Node runs the installed package (linux-x64)', () => {
  for (const v of builds.x64) {
    const bin = nodeBin('x64', v);
    itIf(existsSync(bin) ? null : `no Node ${v} in .cache/node (run node scripts/fetch-node.mjs)`,
      `Node ${v}: every PyTorch fixture case and bad-input check passes`, () => {
        const r = runWith([bin], installed);
        expect(r.node).toBe(`v${v}`);
        expect(r.cases).toBeGreaterThanOrEqual(70);
        expect(r.failures).toEqual([]);
      });
  }
});

describe('the linux-x64 prebuilt binary', () => {
  it('is the development build, bit for bit, on every ISA this CPU runs', () => {
    for (const isa of hostIsas()) {
      const shipped = runWith([process.execPath], installed, { NORMKIT_ISA: isa });
      expect(shipped.simd).toBe(isa);
      expect(shipped.failures).toEqual([]);
      expect(shipped.digests, `ISA ${isa}`).toEqual(dev(isa).digests);
    }
  }, 300_000);
});

describe('linux-arm64 under qemu-aarch64 (the official arm64 Node)', () => {
  const v = builds.arm64[0]!;
  const why = !onPath('qemu-aarch64') ? 'qemu-aarch64 is not installed (apt-get install qemu-user)'
    : !arm64Sysroot ? 'no arm64 libc (apt-get install libc6-arm64-cross libstdc++6-arm64-cross)'
    : !existsSync(nodeBin('arm64', v)) ? `no arm64 Node ${v} in .cache/node (run node scripts/fetch-node.mjs)`
    : null;
  let arm: RunResult | undefined;
  const armRun = () => (arm ??= runWith(['qemu-aarch64', '-L', arm64Sysroot!, nodeBin('arm64', v)], installed));

  itIf(why, 'loads the installed NEON binary and passes every PyTorch fixture case and bad-input check', () => {
    expect(targets).toContain('linux-arm64');
    const r = armRun();
    expect(r).toMatchObject({ node: `v${v}`, arch: 'arm64', simd: 'neon' });
    expect(r.cases).toBeGreaterThanOrEqual(70);
    expect(r.failures).toEqual([]);
  });

  // The kernels are built with -ffp-contract=off: a multiply-add fuses only where the source says so
  // (native/core/moments.h add_product), the same on NEON and AVX2, with the same summation order. (Before, GCC's
  // contraction fused differently on each: GroupNorm's float64 results differed in the last bits.)
  itIf(why, "gives the development build's AVX2 results bit for bit, every case", () => {
    expect(dev('avx2').simd, 'this CPU has no AVX2 to compare with').toBe('avx2');
    const arm = armRun().digests, x64 = dev('avx2').digests;
    expect(Object.keys(arm).sort()).toEqual(Object.keys(x64).sort());
    expect(Object.keys(arm).filter((k) => arm[k] !== x64[k])).toEqual([]);
  });
});

describe('linux-x64 on an older userland: the bullseye root (Debian 11, glibc 2.31, GCC 10 libstdc++)', () => {
  const bullseye = join(root, '.cache/bullseye-amd64');
  const v = builds.x64[0]!;  // 18.17.0: needs glibc 2.28
  const why = !existsSync(join(bullseye, 'usr/bin/g++-10')) ? 'no bullseye root in .cache (npm run prebuilds makes it)'
    : process.getuid?.() !== 0 ? 'chroot needs root'
    : !existsSync(nodeBin('x64', v)) ? `no Node ${v} in .cache/node (run node scripts/fetch-node.mjs)`
    : null;
  itIf(why, `Node ${v} there loads the installed package and passes every fixture case and bad-input check`, () => {
    // The root sees only itself: copy in the installed package, the runner and the fixtures; link in node.
    const name = `normkit-floor-${process.pid}`, inside = join(bullseye, 'tmp', name);
    try {
      cpSync(installed, join(inside, 'normkit'), { recursive: true });
      cpSync(join(root, 'dist/tools/test'), join(inside, 'tools'), { recursive: true });
      cpSync(fixtures, join(inside, 'fixtures'), { recursive: true });
      linkSync(nodeBin('x64', v), join(inside, 'node'));
      const at = `/tmp/${name}`;
      const out = execFileSync('chroot', [bullseye, `${at}/node`, `${at}/tools/platform/run.js`, `${at}/normkit`, `${at}/fixtures`],
        { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      const r = parse(out);
      expect(r).toMatchObject({ node: `v${v}`, arch: 'x64' });
      expect(r.cases).toBeGreaterThanOrEqual(70);
      expect(r.failures).toEqual([]);
      const glibc = execFileSync('chroot', [bullseye, `${at}/node`, '-p', 'process.report.getReport().header.glibcVersionRuntime'],
        { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }).trim();
      expect(glibc).toBe('2.31');
    } finally {
      rmSync(inside, { recursive: true, force: true });
    }
  });
});
