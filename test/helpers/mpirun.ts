// Running a command under a real mpirun on this machine, for the MPI tests: whether it can run here (else the
// reason to skip), and the launch with root allowed, oversubscription, and libasan preloaded for the ranks only.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

const root = join(__dirname, '..', '..');
export const mpiAddon = join(root, 'build', 'Release', 'normkit_mpi.node');

const hasMpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
/** Why MPI runs cannot happen here, or undefined. */
export const mpiSkipReason = !hasMpirun ? 'mpirun not found: apt-get install openmpi-bin libopenmpi-dev'
  : !existsSync(mpiAddon) ? 'normkit_mpi.node not built (no MPI headers): apt-get install libopenmpi-dev, npm run build:native'
    : undefined;

/** A test title with the skip reason in it where MPI runs cannot happen. */
export const mpiTitle = (title: string) => (mpiSkipReason ? `${title} (skipped: ${mpiSkipReason})` : title);

// Generous: it only catches a hang (a job that should have ended and did not). SIGTERM lets mpirun take its
// ranks down with it.
export const HANG_MS = 120_000;

/** `mpirun -np <np> --oversubscribe node <args>`, as root if need be; fails the test on a sanitizer report. */
export function mpirunNode(np: number, args: readonly string[]): SpawnSyncReturns<string> {
  // Under npm run test:asan, libasan is preloaded for the ranks only (-x): mpirun itself is Open MPI's code, and
  // Open MPI 4.1.4's runtime has a use-after-free of its own on the abort path (orte_rml_oob_send_buffer_nb).
  const { LD_PRELOAD: preload, ...env } = process.env;
  const forRanks = preload ? ['-x', `LD_PRELOAD=${preload}`] : [];
  const r = spawnSync('mpirun', ['-np', String(np), '--oversubscribe', ...forRanks, process.execPath, ...args], {
    encoding: 'utf8', timeout: HANG_MS, killSignal: 'SIGTERM',
    env: { ...env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
  });
  // Under npm run test:asan the ranks run the sanitized addons: a report there is a failure, whatever the scenario.
  expect(r.stderr ?? '').not.toMatch(/ERROR: AddressSanitizer|runtime error:/);
  return r;
}
