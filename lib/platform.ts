// What this machine is, in the terms the prebuilt binaries are made for, and what to tell a user whose machine
// has none that loads. Pure functions of an injected Host (the tests simulate musl, macOS, Windows, other CPUs);
// only detectHost() looks at the real process.
import { existsSync, openSync, readdirSync, readFileSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';

export interface Host {
  platform: string;  // process.platform
  arch: string;      // process.arch
  libc: 'glibc' | 'musl' | null;  // Linux only; null elsewhere or when it cannot be told
  glibcVersion: string | null;
}

/** A prebuilt binary the package ships: prebuilds/<target>/abi.json. */
export interface Prebuilt { target: string; glibc: string | null }

/**
 * The C library, as detect-libc tells it: the ELF interpreter named in the first page of /proc/self/exe
 * (ld-musl-* or ld-linux-*), then (withReport) process.report's glibcVersionRuntime, which only glibc builds of
 * Node report; the report takes milliseconds, so the loader asks for it only to explain a failure.
 */
export function detectHost(withReport = true): Host {
  const host: Host = { platform: process.platform, arch: process.arch, libc: null, glibcVersion: null };
  if (process.platform !== 'linux') return host;
  try {
    const fd = openSync('/proc/self/exe', 'r');
    const head = Buffer.alloc(4096);
    try { readSync(fd, head, 0, head.length, 0); } finally { closeSync(fd); }
    const text = head.toString('latin1');
    if (text.includes('/ld-musl-')) host.libc = 'musl';
    else if (/\/ld-linux[-.\w]*\.so/.test(text)) host.libc = 'glibc';
  } catch { /* no /proc: fall through to the report */ }
  if (!withReport) return host;
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    const version = report?.header?.glibcVersionRuntime;
    if (version) { host.libc = 'glibc'; host.glibcVersion = version; } else if (host.libc === null && report) host.libc = 'musl';
  } catch { /* report unavailable */ }
  return host;
}

/** The prebuilt binaries in a package root, with the glibc each needs (from its abi.json). */
export function shippedPrebuilds(root: string): Prebuilt[] {
  const dir = join(root, 'prebuilds');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((target) => {
    let glibc: string | null = null;
    try {
      const abi = JSON.parse(readFileSync(join(dir, target, 'abi.json'), 'utf8')) as { needs?: { GLIBC?: string } };
      glibc = abi.needs?.GLIBC ?? null;
    } catch { /* no abi.json: say nothing about its floor */ }
    return { target, glibc };
  });
}

/** The prebuilds directory name for a host: <platform>-<arch>, glibc Linux only (musl would be linux-<arch>-musl). */
export function prebuildTarget(host: Host): string {
  return host.platform === 'linux' && host.libc === 'musl' ? `linux-${host.arch}-musl` : `${host.platform}-${host.arch}`;
}

const older = (a: string, b: string) => {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  return false;
};

// Building the installed copy in place (the loader tries its build/Release first); a clone builds with npm scripts.
const FROM_SOURCE_LINUX = ['    npm install --no-save cmake-js@8 node-addon-api@8 && cd node_modules/normkit && ../.bin/cmake-js rebuild',
  '  (in a clone of the repository: npm install, or npm run build:native)'];

/** "Possible solutions" lines for a host on which no binary loaded. */
export function loadAdvice(host: Host, shipped: readonly Prebuilt[]): string[] {
  const target = prebuildTarget(host);
  const list = shipped.length
    ? shipped.map((p) => `${p.target}${p.glibc ? ` (glibc >= ${p.glibc})` : ''}`).join(', ')
    : 'none (this copy of the package has no prebuilds/ directory)';
  const lines = [`- normkit ships prebuilt binaries for: ${list}.`];
  const match = shipped.find((p) => p.target === target);
  if (match) {
    if (host.glibcVersion && match.glibc && older(host.glibcVersion, match.glibc)) {
      lines.push(`- this system's glibc ${host.glibcVersion} is older than the ${match.glibc} the ${target} binary needs: upgrade the ` +
        'distribution (or its container image), or build from source as below.');
    } else {
      lines.push(`- ${target} is among them, so the package may be damaged: reinstall normkit.`);
    }
    lines.push('- build from source (needs cmake, a C++17 compiler and OpenMP, e.g. Debian: apt-get install cmake g++):', ...FROM_SOURCE_LINUX);
    return lines;
  }
  if (host.platform === 'linux' && host.libc === 'musl') {
    lines.push(`- this is musl libc (Alpine?), and the binaries need glibc. Use a glibc-based image (node:<version>-bookworm-slim),`,
      '  or build from source on this system (apk add cmake g++ make libgomp linux-headers), then:', ...FROM_SOURCE_LINUX);
  } else if (host.platform === 'linux' && !['x64', 'arm64'].includes(host.arch)) {
    lines.push(`- the kernels are written for x86-64 and AArch64; ${host.arch} is neither, so there is no way to build it yet.`);
  } else if (host.platform === 'darwin') {
    lines.push(`- macOS (${host.arch}) has no prebuilt binary yet. Building from source is untested there: it needs cmake, the Xcode`,
      '  command line tools (clang, C++17) and OpenMP from Homebrew: brew install cmake libomp, then',
      '    npm install --no-save cmake-js@8 node-addon-api@8 && cd node_modules/normkit && \\',
      '    OpenMP_ROOT="$(brew --prefix libomp)" ../.bin/cmake-js rebuild',
      '- or run under Docker/Linux (linux-x64 and linux-arm64 have prebuilt binaries).');
  } else if (host.platform === 'win32') {
    lines.push('- Windows has no prebuilt binary and no supported build: MSVC implements OpenMP 2.0, and the kernels need',
      '  OpenMP 4 (`omp simd`). Use WSL2 (Ubuntu or Debian), where the linux-x64 or linux-arm64 binary loads.');
  } else {
    lines.push(`- ${target} has no prebuilt binary. Build from source (needs cmake, a C++17 compiler and OpenMP):`, ...FROM_SOURCE_LINUX);
  }
  return lines;
}
