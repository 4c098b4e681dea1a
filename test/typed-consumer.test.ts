// A strict TypeScript user: the README's examples and a user-defined layer compile with `tsc --noEmit` under
// strict + noUncheckedIndexedAccess against declarations emitted from the current sources, with no casts; the
// README's model example then runs (train, save, reload). Every public option, class and function of the
// emitted declarations carries a doc comment (what an editor shows on hover).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'normkit-typed-'));
const pkg = join(work, 'pkg'), app = join(work, 'app');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const readmeBlocks = Array.from(readFileSync(join(root, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g), (m) => m[1]!);

const USER_LAYER = `
import { BatchNorm1d, functional as F, LayerNorm, Module, ModuleDict, Parameter, Sequential, tensor, type StateDict, type Tensor } from 'normkit';

/** y = x W^T + b, as torch.nn.Linear, for float32 pipelines. */
class Dense extends Module {
  weight: Parameter;
  bias: Parameter;
  private input: Tensor<Float32Array> | null = null;
  constructor(readonly inFeatures: number, readonly outFeatures: number) {
    super();
    this.weight = new Parameter(new Float32Array(outFeatures * inFeatures).fill(0.1), [outFeatures, inFeatures]);
    this.bias = new Parameter(new Float32Array(outFeatures));
  }
  override forward(x: Tensor<Float32Array>): Tensor<Float32Array> {
    const n = x.shape[0] ?? 0, w = this.weight.data, b = this.bias.data;
    const y = new Float32Array(n * this.outFeatures);
    for (let r = 0; r < n; r++) for (let o = 0; o < this.outFeatures; o++) {
      let s = b[o] ?? 0;
      for (let i = 0; i < this.inFeatures; i++) s += (x.data[r * this.inFeatures + i] ?? 0) * (w[o * this.inFeatures + i] ?? 0);
      y[r * this.outFeatures + o] = s;
    }
    this.input = x;
    return tensor(y, [n, this.outFeatures]);
  }
  override backward(dy: Tensor<Float32Array>): Tensor<Float32Array> {
    const x = this.input;
    if (!x) throw new Error('backward before forward');
    return tensor(new Float32Array(x.data.length), x.shape);
  }
}

const model = new Sequential(new BatchNorm1d(4), new Dense(4, 2), new LayerNorm(2));
const y: Tensor<Float32Array> = model.forward(tensor([1, 2, 3, 4, 5, 6, 7, 9], [2, 4]));
export const f32: Float32Array = y.data;
export const first: BatchNorm1d = model.at(0);
export const maybe: BatchNorm1d | Dense | LayerNorm | undefined = model.at(Number('1'));
export const y64: Float64Array = new LayerNorm(4, { dtype: 'float64' }).forward(tensor([1, 2, 3, 4], [1, 4], { dtype: 'float64' })).data;
export const named: Array<[string, Parameter]> = [...model.namedParameters()];
export const sd: StateDict = model.stateDict();
model.loadStateDict(sd, { strict: true });
model.zeroGrad({ setToNone: false });
export const parts = new ModuleDict({ encoder: model, norm: new BatchNorm1d(2) });
export const again: Sequential | BatchNorm1d | undefined = parts.get('encoder');
model.to('float64');
const x64 = tensor([1, 2, 3, 5], [2, 2], { dtype: 'float64' });
const bnOut = F.batchNorm(x64, { training: true });
export const fy: Float64Array = bnOut.y.data;
export const fdw: Float64Array = F.batchNormBackward(x64, x64, { saveMean: bnOut.saveMean, saveInvstd: bnOut.saveInvstd }).dweight;
export const ly: Promise<Float32Array> = F.layerNormAsync(tensor([1, 2], [1, 2]), 2).then((r) => r.y.data);
// @ts-expect-error a float32 tensor's data is not a Float64Array
export const wrong: Float64Array = new BatchNorm1d(4).forward(tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4])).data;
// @ts-expect-error there is no float16
tensor([1], [1], { dtype: 'float16' });
// @ts-expect-error setToNone is a boolean
model.zeroGrad({ setToNone: 1 });
// @ts-expect-error Sequential takes modules
new Sequential(new BatchNorm1d(2), 3);
`;

function run(file: string, args: string[], cwd: string): string {
  return execFileSync(file, args, { cwd, encoding: 'utf8', env: { ...process.env, NORMKIT_ADDON: process.env.NORMKIT_ADDON ?? join(root, 'build/Release/normkit.node') } });
}

beforeAll(() => {
  // normkit as a user installs it: emitted JS + declarations, package.json with exports.
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--outDir', join(pkg, 'dist')], { cwd: root, encoding: 'utf8' });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'normkit', version: '0.0.0-test', main: './dist/index.js',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } } }));
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  symlinkSync(pkg, join(app, 'node_modules', 'normkit'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  readmeBlocks.forEach((code, i) => writeFileSync(join(app, `readme-${i}.ts`), code));
  writeFileSync(join(app, 'user-layer.ts'), USER_LAYER);
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: {
    strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, noImplicitOverride: true,
    module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', outDir: 'out', skipLibCheck: false,
    types: ['node'], typeRoots: [join(root, 'node_modules/@types')] }, include: ['*.ts'] }));
}, 120_000);

describe('a strict TypeScript user', () => {
  it('finds the README examples (one layer, a model, named parts)', () => {
    expect(readmeBlocks.length).toBeGreaterThanOrEqual(3);
    const model = readmeBlocks.find((b) => b.includes('extends Module') && b.includes('loadStateDict'));
    expect(model).toBeDefined();
    expect(readFileSync(join(root, 'examples/quickstart.ts'), 'utf8')).toContain(model);   // the runnable copy stays in step
  });

  it('writes them with no casts, any or @ts- directives', () => {
    for (const code of readmeBlocks) {
      const bare = code.replace(/\/\/.*$|^import .*$/gm, '').replace(/'[^']*'/g, "''");   // (import { x as y } is no cast)
      expect(bare).not.toMatch(/\bas\s+(?!const\b)[\w{[(]|\bany\b|@ts-/);
    }
    expect(USER_LAYER.replace(/\/\/.*$|\/\*\*.*\*\/|^import .*$/gm, '')).not.toMatch(/\bas\s+(?!const\b)[\w{[(]|\bany\b/);
  });

  it('compiles them and a user-defined layer under strict + noUncheckedIndexedAccess', () => {
    try {
      run(process.execPath, [tsc, '-p', app], app);
    } catch (e) {
      expect.fail(`tsc reported:\n${(e as { stdout?: string }).stdout ?? String(e)}`);
    }
  });

  it('runs the README model example: trains, saves, reloads and gets the same outputs', () => {
    const i = readmeBlocks.findIndex((b) => b.includes('loadStateDict'));
    const out = run(process.execPath, [join(app, 'out', `readme-${i}.js`)], app);
    const [meta, restored, original] = [out.indexOf('format'), out.indexOf('['), out.lastIndexOf('[')];
    expect(meta).toBeGreaterThanOrEqual(0);
    expect(out.slice(restored, out.indexOf(']', restored))).toBe(out.slice(original, out.indexOf(']', original)));
  });

  it('gets a doc comment on hover for every exported class and function, and every option', () => {
    // The public names: what index.d.ts (and functional/index.d.ts) re-export, and the file declaring each.
    const publicNames = (dir: string, file: string): Array<[string, string]> =>
      Array.from(readFileSync(join(dir, file), 'utf8').matchAll(/export \{([^}]*)\} from '\.\/([^']+)\.js'/g), (m) =>
        m[1]!.split(',').map((n) => n.trim().replace(/^type /, '')).filter(Boolean).map((n): [string, string] => [n, join(dir, `${m[2]}.d.ts`)])).flat();
    const dist = join(pkg, 'dist');
    const names = [...publicNames(dist, 'index.d.ts'), ...publicNames(join(dist, 'functional'), 'index.d.ts')];
    expect(names.length).toBeGreaterThan(40);
    const missing: string[] = [];
    for (const [name, file] of names) {
      const lines = readFileSync(file, 'utf8').split('\n');
      const at = lines.findIndex((l) => new RegExp(`^export (?:declare )?(?:abstract )?(?:class|function|interface|type) ${name}\\b`).test(l));
      if (at < 0) { missing.push(`${name}: declaration not found in ${file}`); continue; }
      if (!/\*\/\s*$/.test(lines[at - 1] ?? '')) missing.push(`${name} (${file})`);
      if (!/^export (?:declare )?interface \w+Options\b/.test(lines[at]!)) continue;
      for (let n = at + 1; n < lines.length && !/^}/.test(lines[n]!); n++) {
        if (/^ {4}(readonly )?\w+\??:/.test(lines[n]!) && !/\*\/\s*$/.test(lines[n - 1] ?? '')) missing.push(`${name}.${lines[n]!.trim()}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
