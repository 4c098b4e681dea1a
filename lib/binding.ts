// Finds and loads the native addon. Tried in order, from the package root (found from this file, so it works from
// lib/ under vitest, from dist/cjs/ when installed, and whatever the caller's working directory):
//   1. build/Release/normkit.node             a local build (development: npm install / npm run build:native)
//   2. prebuilds/<platform>-<arch>/normkit.node  the binary shipped in the npm package (glibc Linux; musl would be
//                                               linux-<arch>-musl, which does not exist yet: see lib/platform.ts)
// NORMKIT_PREBUILDS_ONLY=1 skips 1; NORMKIT_ADDON=/path/to/normkit.node loads that file only (a sanitizer build,
// say). On failure, one error lists every attempt, why it failed, and what to do.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { detectHost, loadAdvice, prebuildTarget, shippedPrebuilds } from './platform.js';

export interface NativeInfo {
  isa: string;
  supportedIsas: string[];
  openmp: boolean;
  maxThreads: number;
  processors: number;
  /** Elements each thread must get before a kernel goes parallel (native/kernels.h kGrainElems). */
  grainElems: number;
}

type Arr = Float32Array | Float64Array;
type Geo = [P: number, A: number, B: number, K: number, threads: number];

// Optional trailing arguments (w, b) are per-position parameters (length K) for views with A == 1 (LayerNorm).
// The fused activation 'relu' follows them: relu (true), r (the residual added before the ReLU, or null), and for a
// backward dr (receives the residual's gradient, or null) and what the forward normalized with, so the kernel
// recomputes the ReLU's mask from the saved input (scale and shift per group, or the training op's beta and b).
type Relu = [relu: boolean, r: Arr | null];
type ReluGrad = [relu: boolean, r: Arr | null, dr: Arr | null];
export interface NativeBinding {
  moments(...a: [...Geo, x: Arr, mean: Float64Array, m2: Float64Array]): void;
  normalize(...a: [...Geo, x: Arr, y: Arr, mean: Float64Array, scale: Float64Array, shift: Float64Array,
    w?: Arr | null, b?: Arr | null, ...relu: Relu | []]): void;
  backwardReduce(...a: [...Geo, dy: Arr, x: Arr, mean: Float64Array, sumDy: Float64Array, sumDyXmu: Float64Array,
    w?: Arr | null, ...relu: [...ReluGrad, scale: Float64Array, shift: Float64Array] | []]): void;
  backwardApply(...a: [...Geo, dy: Arr, x: Arr, dx: Arr, mean: Float64Array, a: Float64Array,
    b: Float64Array | null, c: Float64Array | null, w?: Arr | null,
    ...relu: [...ReluGrad, scale: Float64Array, shift: Float64Array] | []]): void;
  paramGrad(...a: [...Geo, dy: Arr, x: Arr, mean: Float64Array | null, invstd: Float64Array, dw: Float64Array,
    db: Float64Array]): void;
  // The fused training ops. segments: parts of a group with their own gamma/beta (groups * segments entries, as
  // sumDy/sumDyXmu); w, b: per-position params; dw, db: their gradients (length K); rms: RMSNorm (centred at 0).
  forwardTrain(...a: [...Geo, x: Arr, y: Arr, eps: number, gamma: Float64Array | null, beta: Float64Array | null,
    mean: Float64Array, m2: Float64Array, invstd: Float64Array, segments?: number, w?: Arr | null, b?: Arr | null,
    rms?: boolean, ...relu: Relu | []]): void;
  backwardTrain(...a: [...Geo, dy: Arr, x: Arr, dx: Arr, mean: Float64Array, invstd: Float64Array,
    gamma: Float64Array | null, sumDy: Float64Array, sumDyXmu: Float64Array, segments?: number, w?: Arr | null,
    dw?: Float64Array | null, db?: Float64Array | null, rms?: boolean,
    ...relu: [...ReluGrad, beta: Float64Array | null, b: Arr | null] | []]): void;
  forwardTrainAsync(...a: Parameters<NativeBinding['forwardTrain']>): Promise<void>;
  backwardTrainAsync(...a: Parameters<NativeBinding['backwardTrain']>): Promise<void>;
  momentsAsync(...a: Parameters<NativeBinding['moments']>): Promise<void>;
  normalizeAsync(...a: Parameters<NativeBinding['normalize']>): Promise<void>;
  backwardReduceAsync(...a: Parameters<NativeBinding['backwardReduce']>): Promise<void>;
  backwardApplyAsync(...a: Parameters<NativeBinding['backwardApply']>): Promise<void>;
  paramGradAsync(...a: Parameters<NativeBinding['paramGrad']>): Promise<void>;
  /** The benchmarks' roofline: a copy over `threads`; streaming: with non-temporal stores. */
  copy(src: Arr, dst: Arr, threads: number, streaming?: boolean): void;
  info(): NativeInfo;
}

/** The directory holding normkit's package.json, walking up from this file. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'normkit') return dir;
      } catch { /* not ours; keep walking */ }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`normkit: cannot find its package.json above ${__dirname}`);
    dir = up;
  }
}

function load(): NativeBinding {
  // libgomp reads OMP_* once, when it is loaded: set the wait policy first. Busy-waiting OpenMP threads would
  // steal cores from V8 and libuv between calls. A user's own setting wins.
  process.env.OMP_WAIT_POLICY ??= 'passive';
  const root = packageRoot();
  const requireNative = createRequire(join(root, 'package.json'));
  const platform = prebuildTarget(detectHost(false));
  const candidates: string[] = [];
  if (process.env.NORMKIT_ADDON) candidates.push(process.env.NORMKIT_ADDON);
  else {
    if (process.env.NORMKIT_PREBUILDS_ONLY !== '1') candidates.push(join(root, 'build', 'Release', 'normkit.node'));
    candidates.push(join(root, 'prebuilds', platform, 'normkit.node'));
  }
  const errors: string[] = [];
  for (const file of candidates) {
    if (!existsSync(file)) { errors.push(`  ${file}: not found`); continue; }
    try {
      const loaded: unknown = requireNative(file);
      if (typeof (loaded as Partial<NativeBinding> | null)?.forwardTrain !== 'function') {
        errors.push(`  ${file}: loaded, but it is not a normkit addon of this version (rebuild it)`);
        continue;
      }
      return loaded as NativeBinding;
    } catch (e) {
      errors.push(`  ${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error([`normkit: could not load the native addon for ${platform} (Node ${process.version}). Tried:`,
    ...errors, 'Possible solutions:', ...loadAdvice(detectHost(), shippedPrebuilds(root))].join('\n'));
}

let cached: NativeBinding | undefined;

/** The loaded addon (loaded on first use). */
export function native(): NativeBinding {
  cached ??= load();
  return cached;
}
