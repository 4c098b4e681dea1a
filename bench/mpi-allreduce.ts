// mpiWorld().allReduce bandwidth: 4 MB and 64 MB float32 over 2 ranks (`npm run bench` runs it last).
//   node dist/tools/bench/mpi-allreduce.js             launches itself under mpirun -np 2 (or says why it cannot)
//   mpirun -np 2 node dist/tools/bench/mpi-allreduce.js   the same, launched by hand (add --host a,b for 2 machines)
// Per size: the median (and best) over reps of the slowest rank's time (a collective ends when its last rank does);
// algbw = buffer bytes / time, busbw = algbw × 2(p−1)/p (the bytes each rank sends and receives, as nccl-tests
// reports it), and the ratio to a memcpy of the same bytes on one rank, measured in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { mpiWorld } from 'normkit';
import { median, timeOnce } from './timing.js';

const SIZES_MB = [4, 64];
const root = join(__dirname, '..', '..', '..');

function launch(): void {
  if (spawnSync('mpirun', ['--version']).status !== 0) {
    console.log('MPI allReduce: not run (mpirun not found: apt-get install openmpi-bin libopenmpi-dev)');
    return;
  }
  if (!existsSync(join(root, 'build', 'Release', 'normkit_mpi.node')) && !process.env.NORMKIT_MPI_ADDON) {
    console.log('MPI allReduce: not run (normkit_mpi.node not built: apt-get install libopenmpi-dev, npm run build:native)');
    return;
  }
  const r = spawnSync('mpirun', ['-np', '2', '--oversubscribe', process.execPath, __filename], {
    stdio: 'inherit', env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' },
  });
  if (r.status !== 0) console.log(`MPI allReduce: mpirun exited with ${r.status ?? r.signal}`);
}

function bench(): void {
  const w = mpiWorld();
  const rows: string[] = [];
  for (const mb of SIZES_MB) {
    const n = (mb << 20) / 4, buf = new Float32Array(n).fill(w.rank + 1), src = new Float32Array(n).fill(1);
    const reps = mb >= 64 ? 5 : 20;
    w.allReduce(buf, 'mean');  // warm: page faults, shared-memory segments
    const times: number[] = [], copies: number[] = [];
    for (let i = 0; i < reps; i++) {
      copies.push(timeOnce(() => buf.set(src)));
      w.barrier();
      const mine = timeOnce(() => w.allReduce(buf, 'mean'));
      times.push(Math.max(...w.allGather(new Float64Array([mine]))));
    }
    const ms = median(times), algbw = (n * 4) / (ms * 1e6), busbw = (algbw * 2 * (w.size - 1)) / w.size;
    rows.push(`  ${String(mb).padStart(3)} MB float32: median ${ms.toFixed(2)} ms (best ${Math.min(...times).toFixed(2)}), ` +
      `algbw ${algbw.toFixed(2)} GB/s, busbw ${busbw.toFixed(2)} GB/s, ${(ms / median(copies)).toFixed(1)}× a memcpy ` +
      'of the same bytes');
  }
  if (w.rank === 0) {
    console.log(`MPI allReduce over ${w.size} ranks (${w.library}; median of the slowest rank per rep):`);
    rows.forEach((r) => console.log(r));
  }
  w.close();
}

if (process.env.OMPI_COMM_WORLD_SIZE) bench();
else launch();
