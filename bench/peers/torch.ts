// PyTorch, when /usr/bin/python3 has it (Debian's python3-torch): F.batch_norm forward (training and eval) and the
// autograd backward (torch.autograd.grad on a retained graph, so only the backward is timed), timed inside Python
// with the same medians; for `module` cases also through nn.BatchNorm*d. Optional: reported as unavailable otherwise.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const SCRIPT = `
import json, sys, time, torch
import torch.nn.functional as F
cases = json.loads(sys.argv[1]); out = []
def med(f, reps):
    f(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(); ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort(); return ts[len(ts) // 2]
for c in cases:
    torch.set_num_threads(c['threads'])
    dt = torch.float32 if c['dtype'] == 'float32' else torch.float64
    shape = c['shape']
    if c['channelsLast']:  # the logical NCHW tensor stored channels last
        shape = [shape[0], shape[-1], *shape[1:-1]]
    x = torch.randn(shape, dtype=dt)
    if c['channelsLast']:
        x = x.contiguous(memory_format=torch.channels_last)
    C = shape[1]; rm = torch.zeros(C, dtype=dt); rv = torch.ones(C, dtype=dt); w = torch.ones(C, dtype=dt); b = torch.zeros(C, dtype=dt)
    reps = c['reps']
    fwd = med(lambda: F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5), reps)
    ev = med(lambda: F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5), reps)
    xg = x.detach().requires_grad_(True); dy = torch.randn_like(x)
    y = F.batch_norm(xg, None, None, w, b, True, 0.1, 1e-5)  # one graph, differentiated again and again
    bwd = med(lambda: torch.autograd.grad(y, xg, dy, retain_graph=True), reps)
    r = {'key': c['key'], 'fwd': fwd, 'eval': ev, 'bwd': bwd}
    if c.get('module'):  # nn.BatchNorm as a network calls it: module dispatch and buffer bookkeeping on top of ATen
        m = getattr(torch.nn, 'BatchNorm%dd' % max(1, len(shape) - 2))(C, dtype=dt)
        if c['channelsLast']:
            m = m.to(memory_format=torch.channels_last)
        mfwd = med(lambda: m(x), reps)
        m.eval(); mev = med(lambda: m(x), reps); m.train()
        ym = m(xg)
        mbwd = med(lambda: torch.autograd.grad(ym, xg, dy, retain_graph=True), reps)
        r['module'] = {'fwd': mfwd, 'eval': mev, 'bwd': mbwd}
    out.append(r)
print(json.dumps({'torch': torch.__version__, 'results': out}))
`;

export interface TorchCase { key: string; shape: number[]; channelsLast: boolean; dtype: string; threads: number; reps: number; module?: boolean }
/** module: the same ops through nn.BatchNorm*d (cases with `module`). */
export interface TorchResult { key: string; fwd: number; eval: number; bwd: number; module?: { fwd: number; eval: number; bwd: number } }

export function torchAvailable(): string | null {
  if (!existsSync('/usr/bin/python3')) return 'no /usr/bin/python3';
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return null;
  } catch {
    return 'torch is not installed for /usr/bin/python3 (apt-get install python3-torch)';
  }
}

export function runTorch(cases: TorchCase[]): { version: string; results: TorchResult[] } {
  const out = execFileSync('/usr/bin/python3', ['-c', SCRIPT, JSON.stringify(cases)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const parsed = JSON.parse(out) as { torch: string; results: TorchResult[] };
  return { version: parsed.torch, results: parsed.results };
}
