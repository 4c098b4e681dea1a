// Loads normkit_mpi.node, the small second addon that links Open MPI's libmpi.so.40 (native/mpi/). Only
// mpiWorld() loads it, so normkit.node and everything else in normkit work on machines without MPI.
// Tried in order, as lib/binding.ts does for the main addon:
//   NORMKIT_MPI_ADDON=/path/to/normkit_mpi.node   that file only
//   build/Release/normkit_mpi.node                 a local build (skipped with NORMKIT_PREBUILDS_ONLY=1)
//   prebuilds/<platform>-<arch>/normkit_mpi.node   the binary shipped in the npm package
// Loaded with RTLD_GLOBAL: Open MPI opens its own components (mca_*.so) with dlopen, and they resolve libmpi's
// and libopen-pal's symbols from the global scope.
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { FloatArray } from '../tensor.js';
import { packageRoot } from '../binding.js';

export type CollectiveKind = 'barrier' | 'allGather' | 'allReduce' | 'broadcast';

export interface MpiBinding {
  init(): { rank: number; size: number; library: string };
  /** `valid` false: this rank rejected its arguments and only takes its turn, so the others fail, not wait. */
  collective(kind: CollectiveKind, data: FloatArray | null, out: Float64Array | null, extra: number, valid: boolean): void;
  collectiveAsync(kind: CollectiveKind, data: FloatArray | null, out: Float64Array | null, extra: number,
    valid: boolean): Promise<void>;
  close(): void;
  exit(code: number): void;
}

const INSTALL = [
  'Install Open MPI (4.x or 5.x; its library is libmpi.so.40):',
  '- Debian/Ubuntu: apt-get install openmpi-bin',
  '- RHEL/Fedora/Rocky: dnf install openmpi, then `module load mpi/openmpi-x86_64`',
  '  (or add /usr/lib64/openmpi/lib to LD_LIBRARY_PATH)',
  'and start the program with mpirun, e.g. mpirun -np 2 node train.js',
];

// "libmpi.so.40: cannot open shared object file": the addon is there, Open MPI is not.
const MISSING_MPI = /\blib(mpi|open-rte|open-pal)\b[^:]*: cannot open shared object file/;

function candidates(root: string): string[] {
  if (process.env.NORMKIT_MPI_ADDON) return [process.env.NORMKIT_MPI_ADDON];
  const files = [];
  if (process.env.NORMKIT_PREBUILDS_ONLY !== '1') files.push(join(root, 'build', 'Release', 'normkit_mpi.node'));
  files.push(join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'normkit_mpi.node'));
  return files;
}

function load(): MpiBinding {
  const errors: string[] = [];
  for (const file of candidates(packageRoot())) {
    if (!existsSync(file)) { errors.push(`  ${file}: not found`); continue; }
    const module = { exports: {} as Partial<MpiBinding> };
    try {
      process.dlopen(module, file, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL);
    } catch (e) {
      const message = (e as Error).message.split('\n')[0] ?? '';
      if (MISSING_MPI.test(message)) {
        throw new Error([`normkit: mpiWorld() needs Open MPI's shared library, which this system does not have.`,
          ...INSTALL, `(loading ${file}: ${message})`].join('\n'));
      }
      errors.push(`  ${file}: ${message}`);
      continue;
    }
    if (typeof module.exports.collective !== 'function') {
      errors.push(`  ${file}: loaded, but it is not a normkit MPI addon of this version (rebuild it)`);
      continue;
    }
    return module.exports as MpiBinding;
  }
  throw new Error([`normkit: mpiWorld() could not load normkit_mpi.node. Tried:`, ...errors, 'Possible solutions:',
    '- build it from source: install the MPI headers (Debian/Ubuntu: apt-get install libopenmpi-dev; RHEL: dnf',
    '  install openmpi-devel), then run npm run build:native in the normkit package directory'].join('\n'));
}

let cached: MpiBinding | undefined;

export function mpiBinding(): MpiBinding {
  cached ??= load();
  return cached;
}
