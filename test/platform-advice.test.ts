// What the loader tells users on machines without a binary that loads, with the machine simulated: lib/platform.ts
// takes the host (platform, arch, libc) as an argument. And libc detection on this real (glibc) machine, checked
// against getconf, an independent source.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { detectHost, loadAdvice, prebuildTarget, type Host, type Prebuilt } from '../lib/platform.js';

const SHIPPED: Prebuilt[] = [{ target: 'linux-arm64', glibc: '2.17' }, { target: 'linux-x64', glibc: '2.17' }];
const host = (h: Partial<Host>): Host => ({ platform: 'linux', arch: 'x64', libc: 'glibc', glibcVersion: '2.36', ...h });
const advice = (h: Partial<Host>) => loadAdvice(host(h), SHIPPED).join('\n');

describe('the loader names the prebuilt binaries and the way forward', () => {
  it('lists what the package ships, with each glibc floor, on every host', () => {
    for (const h of [{}, { libc: 'musl' as const }, { platform: 'darwin' }, { platform: 'win32' }, { arch: 'ppc64' }]) {
      expect(advice(h)).toMatch(/ships prebuilt binaries for: linux-arm64 \(glibc >= 2\.17\), linux-x64 \(glibc >= 2\.17\)/);
    }
    expect(loadAdvice(host({}), []).join('\n')).toMatch(/for: none/);
  });

  it('musl: looks for a musl build, says the binaries need glibc, and how to build on Alpine', () => {
    expect(prebuildTarget(host({ libc: 'musl', arch: 'arm64' }))).toBe('linux-arm64-musl');
    const a = advice({ libc: 'musl', glibcVersion: null });
    expect(a).toMatch(/musl libc/);
    expect(a).toMatch(/glibc-based image/);
    expect(a).toMatch(/apk add cmake g\+\+ make libgomp/);
    expect(a).toMatch(/cmake-js rebuild/);
  });

  it('macOS: no prebuilt binary; cmake, a C++17 compiler and OpenMP from libomp', () => {
    expect(prebuildTarget(host({ platform: 'darwin', arch: 'arm64', libc: null }))).toBe('darwin-arm64');
    const a = advice({ platform: 'darwin', arch: 'arm64', libc: null, glibcVersion: null });
    expect(a).toMatch(/macOS \(arm64\) has no prebuilt binary/);
    expect(a).toMatch(/brew install cmake libomp/);
    expect(a).toMatch(/C\+\+17/);
  });

  it('Windows: no prebuilt binary, why a build does not work, and WSL2', () => {
    const a = advice({ platform: 'win32', libc: null, glibcVersion: null });
    expect(a).toMatch(/Windows has no prebuilt binary/);
    expect(a).toMatch(/OpenMP 2\.0/);
    expect(a).toMatch(/WSL2/);
  });

  it('another CPU: the kernels are x86-64 and AArch64 only', () => {
    expect(advice({ arch: 'ppc64' })).toMatch(/written for x86-64 and AArch64; ppc64 is neither/);
  });

  it('a glibc older than the floor is named, with the version each side', () => {
    expect(advice({ glibcVersion: '2.12' })).toMatch(/glibc 2\.12 is older than the 2\.17 the linux-x64 binary needs/);
    expect(advice({ glibcVersion: '2.17' })).not.toMatch(/older than/);
  });

  it('a supported host whose binary did not load: reinstall, or build from source', () => {
    const a = advice({ arch: 'arm64' });
    expect(a).toMatch(/linux-arm64 is among them.*reinstall normkit/);
    expect(a).toMatch(/needs cmake, a C\+\+17 compiler and OpenMP/);
  });
});

describe('libc detection on this machine', () => {
  it('finds glibc, and the version getconf reports', () => {
    const getconf = execFileSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' }).trim();  // "glibc 2.36"
    expect(detectHost(false)).toMatchObject({ platform: 'linux', libc: 'glibc', glibcVersion: null });
    expect(detectHost()).toMatchObject({ libc: 'glibc', glibcVersion: getconf.replace(/^glibc /, '') });
  });
});
