// npm run demo: see demo.ts (the program) and README.md (what it shows). This file starts it: one process, or the
// ranks of a data-parallel run. --workers N: this thread is rank 0 and N - 1 worker threads (running this same
// file) are the others, all joined to one thread group. --mpi: this process is the rank mpirun made it.
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { joinThreadGroup, mpiWorld, threadGroup, type Communicator, type ThreadGroup } from 'normkit';
import type { DemoOptions } from './cli.js';
import { consoleOutput, parseCommand, runDemo, runRank, type RankContext } from './demo.js';

interface WorkerInput { group: ThreadGroup; rank: number; options: DemoOptions }

/** Runs a rank and leaves the group however it ends (a rank that left is not waited for until the timeout). */
function inGroup(comm: Communicator, communicator: RankContext['communicator'], options: DemoOptions): number {
  try {
    return runRank(options, { comm, communicator });
  } finally {
    comm.close();
  }
}

function main(argv: readonly string[]): number {
  const parsed = parseCommand(argv);
  if (typeof parsed === 'number') return parsed;
  if (parsed.mpi) return inGroup(mpiWorld(), 'mpi', parsed);
  if (parsed.workers === 1) return runDemo(argv);
  const group = threadGroup(parsed.workers);
  for (let rank = 1; rank < parsed.workers; rank++) {
    const worker = new Worker(__filename, { workerData: { group, rank, options: parsed } satisfies WorkerInput });
    worker.on('error', (e) => {
      consoleOutput.error(`rank ${rank}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      process.exitCode = 1;
    });
    worker.on('exit', (code) => { if (code !== 0) process.exitCode = 1; });
  }
  return inGroup(joinThreadGroup(group, 0), 'threads', parsed);
}

if (isMainThread) {
  const code = main(process.argv.slice(2));
  if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
} else {
  const { group, rank, options } = workerData as WorkerInput;
  process.exitCode = inGroup(joinThreadGroup(group, rank), 'threads', options);
}
