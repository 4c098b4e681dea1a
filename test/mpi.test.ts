// mpiWorld() under a real `mpirun -np 3` on this machine: every Communicator operation, sync and async, against
// reduceInRankOrder over the inputs every rank reported; ranks that disagree; ranks that die (the job must end,
// not hang); and the error a machine without Open MPI gets. Each scenario is a plain node script per rank
// (test/mpi/rank.cjs) that loads the built package from dist/, as a user's program would.
// Without mpirun (or without normkit_mpi.node, which is built only where MPI's headers are) the MPI runs are
// skipped with the reason in their title; .ci/run installs openmpi-bin and libopenmpi-dev, so CI always runs them.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { reduceInRankOrder, type ReduceOp } from '../lib/distributed/communicator.js';
import { expectBitIdentical } from './helpers/compare.js';
import { HANG_MS, mpiAddon, mpiSkipReason, mpirunNode, mpiTitle } from './helpers/mpirun.js';

const root = join(__dirname, '..');
const rankScript = join(__dirname, 'mpi', 'rank.cjs');
const SIZE = 3;
const skipReason = mpiSkipReason;
const mpiDescribe = skipReason ? describe.skip : describe;

function launch(scenario: string, dir = ''): SpawnSyncReturns<string> {
  return mpirunNode(SIZE, [rankScript, scenario, dir]);
}

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
const ctors: Record<string, Ctor> = { Float32Array, Float64Array };
const decode = (dtype: string, b64: string): Float32Array | Float64Array => {
  const bytes = Buffer.from(b64, 'base64'), C = ctors[dtype]!;
  return new C(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

interface Case { name: string; kind: string; dtype: string; input: string; output: string; op?: ReduceOp; root?: number }
interface Failure { type: string; message: string }
interface RankReport {
  rank: number; size: number; library: string; same: boolean; cases: Case[]; viewOutsideUntouched: boolean;
  large: { dtype: string; n: number; op: ReduceOp; sha: string }[];
  errors: Record<string, Failure | null | boolean>;
}

mpiDescribe(mpiTitle('mpiWorld() under mpirun -np 3'), () => {
  let reports: RankReport[] = [];
  let run: SpawnSyncReturns<string>;

  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), 'normkit-mpi-'));
    run = launch('collectives', dir);
    reports = [0, 1, 2].filter((r) => existsSync(join(dir, `rank${r}.json`)))
      .map((r) => JSON.parse(readFileSync(join(dir, `rank${r}.json`), 'utf8')) as RankReport);
  }, HANG_MS + 10_000);

  const byName = (name: string) => reports.map((r) => {
    const c = r.cases.find((x) => x.name === name);
    if (!c) expect.fail(`rank ${r.rank} did not report ${name}`);
    return c;
  });
  const names = (kind: string) => reports[0]!.cases.filter((c) => c.kind === kind).map((c) => c.name);

  it('runs to a clean exit on every rank (MPI finalized by close())', () => {
    expect(run.error, run.stderr).toBeUndefined();
    expect(run.status, run.stderr).toBe(0);
    expect(reports.map((r) => r.rank)).toEqual([0, 1, 2]);
    for (const r of reports) {
      expect(r.size).toBe(SIZE);
      expect(r.library).toMatch(/Open MPI/);
      expect(r.same, 'mpiWorld() returns the same communicator').toBe(true);
    }
  });

  it('allReduce sum and mean, float32 and float64, sync and async, lengths 0 … 40001: reduceInRankOrder bit for bit', () => {
    const cases = names('allReduce');
    expect(cases.length).toBe(2 * 2 * 2 * 7 + 4);  // mode × dtype × op × length, + interleaved pair, view, after errors
    for (const r of reports) expect(r.viewOutsideUntouched, `rank ${r.rank}: elements after the view`).toBe(true);
    for (const name of cases) {
      const per = byName(name);
      const parts = per.map((c) => decode(c.dtype, c.input));
      const expected = new ctors[per[0]!.dtype]!(parts[0]!.length);
      reduceInRankOrder(parts, expected, per[0]!.op!);
      for (const c of per) expectBitIdentical(decode(c.dtype, c.output), expected, `${name}, rank ${per.indexOf(c)}`);
    }
  });

  it('the inputs make the order matter (a different summation order gives other bits)', () => {
    const per = byName('allReduce sync Float64Array sum n=1001');
    const parts = per.map((c) => decode(c.dtype, c.input) as Float64Array);
    const reversed = new Float64Array(1001), inOrder = new Float64Array(1001);
    reduceInRankOrder([...parts].reverse(), reversed, 'sum');
    reduceInRankOrder(parts, inOrder, 'sum');
    expect(inOrder.some((v, i) => v !== reversed[i])).toBe(true);
  });

  it('allReduce over several segments (8M float32, 4M float64): the same bits as reduceInRankOrder', () => {
    const formula = (rank: number, n: number, C: Ctor) => {
      const a = new C(n);
      for (let i = 0; i < n; i++) a[i] = Math.sin(i * 0.37 + rank) * (1 + (i % 1000)) + rank / 3;
      return a;
    };
    expect(reports[0]!.large.length).toBe(2);
    for (const [k, l] of reports[0]!.large.entries()) {
      const C = ctors[l.dtype]!, expected = new C(l.n);
      reduceInRankOrder([0, 1, 2].map((r) => formula(r, l.n, C)), expected, l.op);
      const sha = createHash('sha256').update(new Uint8Array(expected.buffer)).digest('hex');
      for (const r of reports) expect(r.large[k]!.sha, `${l.dtype} × ${l.n}, rank ${r.rank}`).toBe(sha);
    }
  });

  it('broadcast from rank 0 and the last rank, empty and not, sync and async: the root\'s bits everywhere', () => {
    const cases = names('broadcast');
    expect(cases.length).toBe(2 * 2 * 2 * 2);
    for (const name of cases) {
      const per = byName(name), rootInput = decode(per[0]!.dtype, per[per[0]!.root!]!.input);
      for (const c of per) expectBitIdentical(decode(c.dtype, c.output), rootInput, `${name}, rank ${per.indexOf(c)}`);
    }
  });

  it('allGather: every rank gets all ranks\' values in rank order', () => {
    const cases = names('allGather');
    expect(cases.length).toBe(6);
    for (const name of cases) {
      const per = byName(name), inputs = per.map((c) => decode(c.dtype, c.input));
      const expected = new Float64Array(inputs.reduce((n, a) => n + a.length, 0));
      inputs.reduce((at, a) => { expected.set(a, at); return at + a.length; }, 0);
      for (const c of per) expectBitIdentical(decode(c.dtype, c.output), expected, `${name}, rank ${per.indexOf(c)}`);
    }
  });

  it('ranks that disagree on length, dtype, op, root or operation: the same Error on every rank, buffers untouched', () => {
    for (const key of ['length', 'lengthAsync', 'dtype', 'op', 'root', 'gather', 'kind']) {
      const got = reports.map((r) => r.errors[key] as Failure | null);
      for (const g of got) {
        expect(g, key).not.toBeNull();
        expect(g!.type, key).toBe('Error');
        expect(g!.message, key).toMatch(/ranks disagree/);
      }
      expect(new Set(got.map((g) => g!.message)).size, `${key}: one message`).toBe(1);
    }
    expect((reports[0]!.errors.length as Failure).message).toContain("rank 1 called allReduce(float32[6], 'sum')");
    expect((reports[0]!.errors.kind as Failure).message).toContain('rank 1 called barrier()');
    for (const r of reports) expect(r.errors.untouched, `rank ${r.rank}: buffers unchanged`).toBe(true);
  });

  it('invalid arguments on one rank: TypeError/RangeError there, an Error naming that rank elsewhere (no hang)', () => {
    for (const [key, bad, type] of [['badType', 2, 'TypeError'], ['badTypeAsync', 2, 'TypeError'], ['badOp', 0, 'RangeError']] as const) {
      for (const r of reports) {
        const e = r.errors[key] as Failure;
        if (r.rank === bad) {
          expect(e.type, key).toBe(type);
          expect(e.message, key).toMatch(/^Expected /);
        } else {
          expect(e.type, key).toBe('Error');
          expect(e.message, key).toContain(`rank(s) ${bad} rejected their arguments`);
        }
      }
    }
    for (const r of reports) {
      expect(r.errors.badRoot).toEqual({ type: 'RangeError', message: 'Expected an integer rank 0 … 2 for root but received number 3' });
      expect(r.errors.badGather).toEqual({ type: 'TypeError', message: 'Expected a Float64Array for local but received Float32Array of length 2' });
    }
  });

  it('close(): later calls throw, sync and async, and mpiWorld() refuses a second MPI', () => {
    for (const r of reports) {
      expect((r.errors.afterClose as Failure).message).toBe('mpiWorld: barrier() on a closed communicator');
      expect((r.errors.afterCloseAsync as Failure).message).toBe('mpiWorld: allReduce() on a closed communicator');
      expect((r.errors.worldAfterClose as Failure).message).toMatch(/finalized by close\(\)/);
    }
  });
});

mpiDescribe(mpiTitle('mpiWorld() without mpirun'), () => {
  it('is a world of one (Open MPI\'s singleton): collectives return the rank\'s own values, exit is clean', () => {
    const r = spawnSync(process.execPath, ['-e', `
      const w = require(${JSON.stringify(join(root, 'dist', 'cjs', 'index.js'))}).mpiWorld();
      const b = new Float32Array([1.5, -2, 3e-8]);
      w.allReduce(b, 'mean');
      console.log(JSON.stringify({ rank: w.rank, size: w.size, b: Array.from(b), g: Array.from(w.allGather(new Float64Array([7, 8]))) }));`],
    { encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' } });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ rank: 0, size: 1, b: [1.5, -2, Math.fround(3e-8)], g: [7, 8] });
  });
});

mpiDescribe(mpiTitle('a rank that dies ends the whole job (nothing hangs)'), () => {
  it('(the control) every rank ends normally without close(), at different times: exit status 0', () => {
    const r = launch('exit-clean');
    expect(r.error, 'the job hung').toBeUndefined();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const rank of [0, 1, 2]) expect(r.stdout).toContain(`rank ${rank} done`);
    expect(r.stderr).not.toMatch(/MPI_ABORT|exited improperly/);
  });

  for (const [how, what] of [['throw', 'an uncaught exception'], ['reject', 'an unhandled rejection'],
    ['exit', 'process.exit(3)'], ['kill', 'SIGKILL'],
    ['exit0', 'process.exit(0)']] as const) {
    it(`${what} on rank 1 while ranks 0 and 2 wait in a collective`, () => {
      const r = launch(`die-${how}`);
      expect(r.error, `mpirun still running after ${HANG_MS} ms: the job hung`).toBeUndefined();
      expect(r.status, r.stdout + r.stderr).not.toBe(0);
      expect(r.stdout).toContain('rank 0 waiting');
      expect(r.stdout).not.toContain('never released');
    });
  }
});

// These need no mpirun: they load the package in a child process with MPI unusable in some way.
describe('without a usable MPI', () => {
  const child = (code: string, env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  const TRY_WORLD = `
    const nk = require(${JSON.stringify(join(root, 'dist', 'cjs', 'index.js'))});
    let error = null;
    try { nk.mpiWorld(); } catch (e) { error = { type: e.constructor.name, message: e.message }; }
    const bn = new nk.BatchNorm1d(2);   // the rest of normkit is unaffected
    const y = bn.forward(nk.tensor([1, 2, 3, 5], [2, 2]));
    console.log(JSON.stringify({ error, y: Array.from(y.data) }));`;

  it.skipIf(!existsSync(mpiAddon))('libmpi missing: an Error saying what to install; normkit still works', () => {
    // A machine without Open MPI: the dynamic loader cannot find a library normkit_mpi.node needs. Reproduced by
    // a copy of the addon whose DT_NEEDED entry names libmpi.so.00 (a soname nothing provides) instead of
    // libmpi.so.40, so the very same loader failure happens on this machine, where libmpi.so.40 is installed.
    const dir = mkdtempSync(join(tmpdir(), 'normkit-nompi-'));
    const copy = join(dir, 'normkit_mpi.node');
    copyFileSync(mpiAddon, copy);
    const bytes = readFileSync(copy), at = bytes.indexOf('libmpi.so.40\0');
    expect(at).toBeGreaterThan(0);
    bytes.write('libmpi.so.00', at, 'latin1');
    writeFileSync(copy, bytes);
    const r = child(TRY_WORLD, { NORMKIT_MPI_ADDON: copy });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { error: Failure | null; y: number[] };
    expect(out.error?.type).toBe('Error');
    expect(out.error?.message).toMatch(/needs Open MPI's shared library/);
    expect(out.error?.message).toContain('apt-get install openmpi-bin');
    expect(out.error?.message).toContain('dnf install openmpi');
    expect(out.error?.message).toContain('libmpi.so.00: cannot open shared object file');
    expect(out.y.map((v) => Math.round(v * 1e4) / 1e4)).toEqual([-1, -1, 1, 1]);
  });

  it.skipIf(!existsSync(mpiAddon))('not under mpirun and no orted on PATH: an Error, not an abort inside MPI_Init', () => {
    const bin = mkdtempSync(join(tmpdir(), 'normkit-bin-'));
    symlinkSync(process.execPath, join(bin, 'node'));
    const r = child(TRY_WORLD, { PATH: bin, OMPI_COMM_WORLD_SIZE: undefined, PMIX_RANK: undefined });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { error: Failure | null };
    expect(out.error?.message).toMatch(/not started by mpirun/);
    expect(out.error?.message).toContain('apt-get install openmpi-bin');
  });

  it('normkit_mpi.node absent (built without MPI headers): an Error saying how to build it', () => {
    const r = child(TRY_WORLD, { NORMKIT_MPI_ADDON: join(tmpdir(), 'no-such-dir', 'normkit_mpi.node') });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { error: Failure | null };
    expect(out.error?.message).toMatch(/could not load normkit_mpi\.node/);
    expect(out.error?.message).toContain('libopenmpi-dev');
  });

  it('mpiWorld() in a worker_thread: an Error (MPI belongs to the process)', () => {
    const r = child(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`const nk = require(${JSON.stringify(join(root, 'dist', 'cjs', 'index.js'))});
        try { nk.mpiWorld(); } catch (e) { require('node:worker_threads').parentPort.postMessage(e.message); }\`, { eval: true });
      w.on('message', (m) => { console.log(m); w.terminate(); });`, {});
    expect(r.stdout).toMatch(/must be called on the main thread/);
  });

  it('the main addon does not link libmpi (its ldd is unchanged)', () => {
    const ldd = spawnSync('ldd', [join(root, 'build', 'Release', 'normkit.node')], { encoding: 'utf8' });
    expect(ldd.status, ldd.stderr).toBe(0);
    expect(ldd.stdout).toMatch(/libgomp/);
    expect(ldd.stdout).not.toMatch(/libmpi|libopen-rte|libopen-pal/);
  });
});
