// Safetensors files: round trips, the reference writer's exact layout (its own test vectors and a file written by
// test/fixtures/gen_safetensors.py from a torch BatchNorm2d), strict reading of malformed and lying files, and
// PyTorch loading what normkit writes (when /usr/bin/python3 has torch).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  loadSafetensors, loadSafetensorsWithMetadata, saveSafetensors, type Int64Tensor, type StateDict,
} from '../lib/io/safetensors.js';
import type { Tensor } from '../lib/tensor.js';

const FIXTURES = join(__dirname, 'fixtures');
const GEN = join(FIXTURES, 'gen_safetensors.py');
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { timeout: 120_000 }).status === 0;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A file from a header (text, raw bytes, or an object to JSON.stringify) and data bytes; n overrides the length field. */
function file(header: string | Uint8Array | object, data: Uint8Array | number = 0, n?: bigint): Uint8Array {
  const h = header instanceof Uint8Array ? header : enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, n ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

/** The header of a file, as text (with its padding). */
function headerOf(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return dec.decode(bytes.subarray(8, 8 + n));
}

function thrown(act: () => unknown): unknown {
  try { act(); } catch (e) { return e; }
  return undefined;
}

function expectError(act: () => unknown, type: ErrorConstructor, message: RegExp): void {
  const e = thrown(act);
  expect(e, 'must throw').toBeInstanceOf(type);
  expect((e as Error).message).toMatch(message);
}

const f32 = (values: number[], shape: number[] = [values.length]): Tensor => ({ data: Float32Array.from(values), shape });
const f64 = (values: number[], shape: number[] = [values.length]): Tensor => ({ data: Float64Array.from(values), shape });
const i64 = (values: bigint[], shape: number[] = [values.length]): Int64Tensor => ({ data: BigInt64Array.from(values), shape });

/** A BatchNorm2d-like state dict with every dtype: F32 params and stats, I64 scalar counter, F64 and I64 extras. */
function sampleStateDict(): StateDict {
  return {
    weight: f32([0.5, 1.25, -2]),
    bias: f32([0.1, -0.2, 0.3]),
    running_mean: f32([1e-3, 2, -3.5]),
    running_var: f32([1, 0.75, 4]),
    num_batches_tracked: i64([7n], []),
    'stats.f64': f64([1 / 3, -0, Number.MIN_VALUE, Number.MAX_VALUE, Math.PI, -2.5], [2, 3]),
    'stats.i64': i64([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n], [2, 2]),
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('round trip', () => {
  it('keeps F32, F64 and I64 tensors (with the int64 scalar of shape []) and the metadata', () => {
    const sd = sampleStateDict();
    const metadata = { format: 'pt', note: 'ünïcödé "quoted" \\ back\nslash 😀', '10': 'integer-like key', '': 'empty key' };
    const bytes = saveSafetensors(sd, metadata);
    const { stateDict, metadata: meta } = loadSafetensorsWithMetadata(bytes);

    expect(meta).toEqual(metadata);
    expect(Object.keys(stateDict).sort()).toEqual(Object.keys(sd).sort());
    for (const [name, t] of Object.entries(sd)) {
      const back = stateDict[name]!;
      expect(back.data.constructor, name).toBe(t.data.constructor);
      expect(back.shape, name).toEqual(t.shape);
      expect(back.data, name).toEqual(t.data); // Object.is per element: -0 stays -0
    }
    const nbt = stateDict.num_batches_tracked!;
    expect(nbt.data).toBeInstanceOf(BigInt64Array);
    expect(nbt.shape).toEqual([]);
    expect(nbt.data).toEqual(BigInt64Array.of(7n));
    // loadSafetensors gives the same tensors, without the metadata.
    expect(loadSafetensors(bytes)).toEqual(stateDict);
  });

  it('is bit-exact for NaN payloads, infinities, -0 and subnormals', () => {
    const bits32 = Uint32Array.of(0x7fc00001, 0xffc12345, 0x7f800000, 0xff800000, 0x80000000, 0x00000001, 0x7f7fffff);
    const bits64 = BigUint64Array.of(0x7ff8000000000001n, 0xfff0000000000001n, 0x8000000000000000n, 1n);
    const sd: StateDict = {
      a: { data: new Float32Array(bits32.buffer), shape: [7] },
      b: { data: new Float64Array(bits64.buffer), shape: [2, 2] },
    };
    const back = loadSafetensors(saveSafetensors(sd));
    expect(new Uint32Array(back.a!.data.buffer)).toEqual(bits32);
    expect(new BigUint64Array(back.b!.data.buffer)).toEqual(bits64);
  });

  it('keeps empty tensors (a 0 in the shape) and an empty state dict', () => {
    const sd: StateDict = { e1: f32([], [0]), e2: f64([], [2, 0, 3]), e3: i64([], [0, 5]), x: f32([1, 2]) };
    const bytes = saveSafetensors(sd);
    // Zero-sized tensors take no bytes: I64 and F64 first, then F32 by name, all starting at 0.
    expect(headerOf(bytes).trimEnd()).toBe('{"e3":{"dtype":"I64","shape":[0,5],"data_offsets":[0,0]},"e2":{"dtype":"F64","shape":[2,0,3],"data_offsets":[0,0]},' +
      '"e1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
    const back = loadSafetensors(bytes);
    expect(back.e2!.shape).toEqual([2, 0, 3]);
    expect(back.e2!.data).toEqual(new Float64Array(0));
    expect(back.e3!.data).toEqual(new BigInt64Array(0));
    expect(back.x!.data).toEqual(Float32Array.of(1, 2));

    const empty = saveSafetensors({});
    expect(Array.from(empty)).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect(loadSafetensors(empty)).toEqual({});
    expect(loadSafetensorsWithMetadata(empty).metadata).toBeUndefined();
  });

  it('keeps any name: unicode, astral, quotes, control characters, "__proto__", integer-like', () => {
    const names = ['é', '😀', 'z', 'ﬀ', '"q"', 'back\\slash', 'tab\tnl\n\u0001\u007f', '__proto__', 'constructor', '10', '2', ' '];
    const sd: StateDict = {};
    names.forEach((name, i) => Object.defineProperty(sd, name, { value: f32([i]), enumerable: true }));
    const back = loadSafetensors(saveSafetensors(sd));
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype); // "__proto__" did not replace the prototype
    expect(Object.keys(back).sort()).toEqual([...names].sort());
    names.forEach((name, i) => expect(Object.getOwnPropertyDescriptor(back, name)?.value.data, name).toEqual(Float32Array.of(i)));
    // In the file: sorted by code point (UTF-8 byte order): 'ﬀ' (U+FB00) before '😀' (U+1F600), though UTF-16 says otherwise.
    const header = headerOf(saveSafetensors(sd));
    expect(header.indexOf('"ﬀ"')).toBeLessThan(header.indexOf('"😀"'));
    expect(header).toContain('"tab\\tnl\\n\\u0001\u007f"'); // serde_json's escapes: lower-case \u00xx, DEL raw
  });

  it('copies tensors into fresh, aligned arrays whatever the input byteOffset', () => {
    const bytes = saveSafetensors(sampleStateDict());
    for (const shift of [1, 3, 5, 7]) {
      const big = new Uint8Array(bytes.length + 16);
      big.set(bytes, shift);
      const input = big.subarray(shift, shift + bytes.length);
      const back = loadSafetensors(input);
      for (const [name, t] of Object.entries(back)) {
        expect(t.data.byteOffset, name).toBe(0);
        expect(t.data.buffer.byteLength, name).toBe(t.data.byteLength);
        expect(t.data.buffer).not.toBe(big.buffer);
      }
      expect(back).toEqual(loadSafetensors(bytes));
      big.fill(0xff); // the loaded tensors do not share the input's memory
      expect(back.weight!.data).toEqual(Float32Array.of(0.5, 1.25, -2));
    }
    // A Node Buffer (from the shared pool, at some byteOffset) works too.
    expect(loadSafetensors(Buffer.from(bytes))).toEqual(loadSafetensors(bytes));
  });

  it('writes the same bytes whatever the insertion order of tensors and metadata', () => {
    const sd = sampleStateDict();
    const reversed: StateDict = Object.fromEntries(Object.entries(sd).reverse());
    const a = saveSafetensors(sd, { format: 'pt', b: '1', a: '2' });
    const b = saveSafetensors(reversed, { a: '2', b: '1', format: 'pt' });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(headerOf(a).startsWith('{"__metadata__":{"a":"2","b":"1","format":"pt"},')).toBe(true);
  });

  it('omits "__metadata__" without metadata and writes {} for empty metadata, as the reference does', () => {
    expect(headerOf(saveSafetensors({ w: f32([1]) }))).toBe('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  '); // 54 + 2 spaces
    expect(headerOf(saveSafetensors({ w: f32([1]) }, {}))).toMatch(/^\{"__metadata__":\{\},"w":/);
    expect(loadSafetensorsWithMetadata(saveSafetensors({ w: f32([1]) }, {})).metadata).toEqual({});
  });

  it('round-trips random state dicts bit-exactly, laid out sorted, contiguous and padded', () => {
    const name = fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }).filter((s) => s !== '__metadata__');
    const shape = fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 });
    const entry = fc.tuple(fc.constantFrom('F32', 'F64', 'I64'), shape, fc.integer({ min: 0, max: 2 ** 31 - 1 }));
    fc.assert(fc.property(fc.dictionary(name, entry, { maxKeys: 8 }), fc.dictionary(name, fc.string(), { maxKeys: 3 }), (spec, metadata) => {
      const sd: StateDict = {};
      for (const [key, [dtype, dims, seed]] of Object.entries(spec)) {
        const n = dims.reduce((a, b) => a * b, 1);
        const bytes = Uint8Array.from({ length: n * (dtype === 'F32' ? 4 : 8) }, (_, i) => (seed * 31 + i * 97) & 0xff);
        const data = dtype === 'F32' ? new Float32Array(bytes.buffer) : dtype === 'F64' ? new Float64Array(bytes.buffer) : new BigInt64Array(bytes.buffer);
        Object.defineProperty(sd, key, { value: { data, shape: dims }, enumerable: true });
      }
      const file = saveSafetensors(sd, metadata);
      // The layout, rebuilt independently: I64, F64, F32, each by UTF-8 bytes; contiguous offsets; space padding.
      const utf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
      const rank: Record<string, number> = { I64: 0, F64: 1, F32: 2 };
      const order = Object.keys(spec).sort((a, b) => rank[spec[a]![0]]! - rank[spec[b]![0]]! || utf8(a, b));
      let at = 0;
      const fields = order.map((k) => {
        const t = Object.getOwnPropertyDescriptor(sd, k)!.value as Tensor | Int64Tensor;
        const begin = at;
        at += t.data.byteLength;
        return `${JSON.stringify(k)}:{"dtype":"${spec[k]![0]}","shape":[${t.shape.join(',')}],"data_offsets":[${begin},${at}]}`;
      });
      const meta = Object.keys(metadata).sort(utf8).map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
      const json = enc.encode(`{"__metadata__":{${meta.join(',')}}${fields.map((f) => ',' + f).join('')}}`);
      const n = Number(new DataView(file.buffer).getBigUint64(0, true));
      expect(n).toBe(Math.ceil(json.length / 8) * 8);
      expect(headerOf(file)).toBe(dec.decode(json) + ' '.repeat(n - json.length));
      expect(file.length).toBe(8 + n + at);
      const { stateDict, metadata: gotMetadata } = loadSafetensorsWithMetadata(file);
      expect(gotMetadata).toEqual(metadata);
      for (const k of order) {
        const t = Object.getOwnPropertyDescriptor(sd, k)!.value as Tensor | Int64Tensor;
        const back = Object.getOwnPropertyDescriptor(stateDict, k)!.value as Tensor | Int64Tensor;
        expect(back.shape).toEqual(t.shape);
        expect(back.data.constructor).toBe(t.data.constructor);
        expect(new Uint8Array(back.data.buffer)).toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      }
    }), { numRuns: 300 });
  });

  it('carries a PyTorch-trained BatchNorm2d state into a normkit BatchNorm2d and back', async () => {
    const { BatchNorm2d } = await import('../lib/index.js');
    const fromTorch = loadSafetensors(new Uint8Array(readFileSync(join(FIXTURES, 'safetensors-bn2d.safetensors'))));
    const bn = new BatchNorm2d(3);
    bn.loadStateDict(fromTorch, { strict: false }); // the file's aux.* tensors are not the layer's
    expect(bn.numBatchesTracked).toBe(1);
    const sd = bn.stateDict();
    expect(sd.running_var).toEqual(fromTorch.running_var);
    const bytes = saveSafetensors(sd, { format: 'pt' });
    const fresh = new BatchNorm2d(3);
    fresh.loadStateDict(loadSafetensors(bytes));
    expect(fresh.stateDict()).toEqual(sd);
    expect(headerOf(bytes)).toMatch(/^\{"__metadata__":\{"format":"pt"\},"num_batches_tracked":\{"dtype":"I64","shape":\[\],"data_offsets":\[0,8\]\},"bias":/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('layout matches the reference writer', () => {
  // Expected bytes from the reference's own tests (safetensors/src/tensor.rs: test_serialization,
  // test_serialization_forced_alignement, test_empty).
  const floats = f32([0, 1, 2, 3, 4, 5]);
  const refData = [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64];

  it('writes the reference test vectors byte for byte', () => {
    expect(Array.from(saveSafetensors({ 'attn.0': { data: floats.data, shape: [1, 2, 3] } }))).toEqual([
      64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
      116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
      58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
      101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, ...refData,
    ]);
    expect(Array.from(saveSafetensors({ attn0: { data: floats.data, shape: [1, 1, 2, 3] } }))).toEqual([
      72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
      121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
      91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
      115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
      32, 32, ...refData,
    ]);
    expect(Array.from(saveSafetensors({}, { framework: 'pt' }))).toEqual([
      40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
      95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
      116, 34, 125, 125, 32, 32, 32, 32, 32,
    ]);
  });

  it('reads the reference test vectors (whitespace padding on either side, zero-sized tensors)', () => {
    // test_whitespace_padded_header / test_whitespace_leading_padded_header: an empty file with padding.
    expect(loadSafetensors(file('{}\r \t\n'))).toEqual({});
    expect(loadSafetensors(file('\t\n{}\r '))).toEqual({});
    // test_zero_sized_tensor, with F32 (normkit does not read I32).
    expect(loadSafetensors(file('{"test":{"dtype":"F32","shape":[2,0],"data_offsets":[0, 0]}}'))).toEqual({ test: f32([], [2, 0]) });
    // test_empty_shapes_allowed: a scalar.
    expect(loadSafetensors(file('{"test":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}', new Uint8Array(Float64Array.of(2.5).buffer))))
      .toEqual({ test: f64([2.5], []) });
  });

  interface FixtureTensor { dtype: 'F32' | 'F64' | 'I64'; shape: number[]; data: Array<number | string> }
  interface Fixture { metadata: Record<string, string>; order: string[]; tensors: Record<string, FixtureTensor> }
  const fixtureBytes = new Uint8Array(readFileSync(join(FIXTURES, 'safetensors-bn2d.safetensors')));
  const fixture = JSON.parse(readFileSync(join(FIXTURES, 'safetensors-bn2d.json'), 'utf8')) as Fixture;
  const fromFixture = (t: FixtureTensor): Tensor | Int64Tensor =>
    t.dtype === 'I64' ? i64(t.data.map((v) => BigInt(v)), t.shape) : t.dtype === 'F64' ? f64(t.data as number[], t.shape) : f32(t.data as number[], t.shape);

  it('writes the Python-written BatchNorm2d fixture byte for byte', () => {
    expect(Object.keys(fixture.tensors)).toEqual(expect.arrayContaining(['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked', 'aux.float64']));
    const sd: StateDict = {};
    for (const [name, t] of Object.entries(fixture.tensors)) sd[name] = fromFixture(t);
    const bytes = saveSafetensors(sd, fixture.metadata);
    expect(headerOf(bytes)).toBe(headerOf(fixtureBytes)); // readable diff first
    expect(bytes.length).toBe(fixtureBytes.length);
    expect(Buffer.from(bytes).equals(Buffer.from(fixtureBytes))).toBe(true);
  });

  it('reads the Python-written BatchNorm2d fixture: values, dtypes, shapes, order, metadata', () => {
    const { stateDict, metadata } = loadSafetensorsWithMetadata(fixtureBytes);
    expect(metadata).toEqual({ format: 'pt' });
    expect(Object.keys(stateDict)).toEqual(fixture.order);
    expect(fixture.order.slice(0, 3)).toEqual(['aux.int64', 'num_batches_tracked', 'aux.float64']); // I64, I64, F64, then F32
    for (const [name, t] of Object.entries(fixture.tensors)) {
      expect(stateDict[name], name).toEqual(fromFixture(t));
    }
    expect(stateDict.num_batches_tracked).toEqual({ data: BigInt64Array.of(1n), shape: [] });
    expect(stateDict.weight!.data).toBeInstanceOf(Float32Array);
    expect(stateDict['aux.float64']!.data).toBeInstanceOf(Float64Array);
    expect(Object.is(stateDict['aux.float64']!.data[1], -0)).toBe(true);
    expect(stateDict['aux.int64']!.data).toEqual(BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 42n));
  });

  it('keeps the committed fixture small', () => {
    expect(fixtureBytes.length + readFileSync(join(FIXTURES, 'safetensors-bn2d.json')).length).toBeLessThan(10_000);
  });

  it.skipIf(!hasTorch)('is loaded by torch.nn.BatchNorm2d.load_state_dict and rewritten identically by the Python writer', () => {
    const sd: StateDict = {
      weight: f32([0.5, 1.5, -0.25, 2]),
      bias: f32([0, -1, 1e-3, 3.75]),
      running_mean: f32([0.1, 0.2, 0.3, 0.4]),
      running_var: f32([1, 2, 3, 4.5]),
      num_batches_tracked: i64([12n], []),
      'extra.f64': f64([Math.E, -0], [1, 2]),
    };
    const bytes = saveSafetensors(sd, { format: 'pt', written_by: 'normkit' });
    const run = spawnSync(PYTHON, [GEN, '--check', '-'], { input: Buffer.from(bytes), encoding: 'utf8', timeout: 120_000 });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { identical: boolean; metadata: Record<string, string>; num_batches_tracked: number; tensors: Record<string, FixtureTensor> };
    expect(out.identical).toBe(true);
    expect(out.metadata).toEqual({ format: 'pt', written_by: 'normkit' });
    expect(out.num_batches_tracked).toBe(12);
    for (const [name, t] of Object.entries(out.tensors)) expect(fromFixture(t), name).toEqual(sd[name]);
    expect(Object.keys(out.tensors).sort()).toEqual(Object.keys(sd).sort());
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('loadSafetensors rejects malformed files with a clear error', () => {
  const ok = (name: string, dtype: string, shape: number[], offsets: [number, number]) => ({ [name]: { dtype, shape, data_offsets: offsets } });
  const cases: Array<[string, () => unknown, ErrorConstructor, RegExp]> = [
    ['not a Uint8Array', () => loadSafetensors(new ArrayBuffer(16) as never), TypeError, /Expected a Uint8Array \(or Buffer\) for safetensors bytes but received ArrayBuffer object/],
    ['a number[]', () => loadSafetensors([1, 2, 3] as never), TypeError, /Uint8Array .* but received array of length 3/],
    ['empty', () => loadSafetensors(new Uint8Array(0)), RangeError, /holds 0 bytes, too few for the 8-byte header length/],
    ['7 bytes', () => loadSafetensors(new Uint8Array(7)), RangeError, /holds 7 bytes.*header too small/],
    ['header length over 100 MB', () => loadSafetensors(file('{}', 0, 100_000_001n)), RangeError, /header length is 100000001 bytes, more than the limit of 100000000/],
    ['header length past the end', () => loadSafetensors(file('{}', 0, 3n)), RangeError, /header length is 3 bytes but only 2 bytes follow/],
    ['truncated header', () => loadSafetensors(file('{"a":{"dtype":"F32"').subarray(0, 12)), RangeError, /only 4 bytes follow.*truncated/],
    ['invalid UTF-8', () => loadSafetensors(file(Uint8Array.of(0x7b, 0xff, 0x7d))), Error, /not valid UTF-8/],
    ['header not JSON', () => loadSafetensors(file('{')), Error, /invalid JSON: expected a string key but found the end of the header/],
    ['bad JSON inside', () => loadSafetensors(file('{"a":tru}')), Error, /invalid JSON: expected a JSON value but found "tru}" at character 5/],
    ['trailing comma', () => loadSafetensors(file('{"a":{},}')), Error, /invalid JSON: expected a string key/],
    ['garbage after the object', () => loadSafetensors(file('{} x')), Error, /unexpected "x" after the JSON object/],
    ['a JSON array', () => loadSafetensors(file('[]')), Error, /expected a JSON object starting with '\{' but the header starts with "\[\]"/],
    ['a JSON string', () => loadSafetensors(file('"{}"')), Error, /starting with '\{'/],
    ['an empty header', () => loadSafetensors(file('  ')), Error, /the header is empty/],
    ['a BOM', () => loadSafetensors(file('\ufeff{}')), Error, /starting with '\{'/],
    ['raw control character in a string', () => loadSafetensors(file('{"a\nb":1}')), Error, /no raw control character/],
    ['lone surrogate escape', () => loadSafetensors(file('{"\\ud800":1}')), Error, /trailing surrogate/],
    ['bad escape', () => loadSafetensors(file('{"\\x":1}')), Error, /a valid escape sequence/],
    ['nesting bomb', () => loadSafetensors(file(`{"a":${'['.repeat(100_000)}`)), Error, /nested more than 128 levels/],
    ['duplicate tensor name', () => loadSafetensors(file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8)), Error, /duplicate key "w"/],
    ['duplicate "__metadata__"', () => loadSafetensors(file('{"__metadata__":{},"__metadata__":{}}')), Error, /duplicate key "__metadata__"/],
    ['duplicate metadata key', () => loadSafetensors(file('{"__metadata__":{"a":"1","a":"2"}}')), Error, /duplicate key "a"/],
    ['tensor entry not an object', () => loadSafetensors(file({ w: 5 })), TypeError, /Expected an object \{ dtype, shape, data_offsets \} for tensor "w" in the safetensors header but received number 5/],
    ['tensor entry an array', () => loadSafetensors(file({ w: ['F32', [1], [0, 4]] }, 4)), TypeError, /for tensor "w" .* but received array of length 3/],
    ['missing dtype', () => loadSafetensors(file({ w: { shape: [1], data_offsets: [0, 4] } }, 4)), TypeError, /Expected a "dtype" field for tensor "w"/],
    ['missing data_offsets', () => loadSafetensors(file({ w: { dtype: 'F32', shape: [1] } }, 4)), TypeError, /Expected a "data_offsets" field for tensor "w"/],
    ['dtype not a string', () => loadSafetensors(file({ w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, 4)), TypeError, /Expected a string for the dtype of tensor "w" .* but received number 32/],
    ['unknown dtype', () => loadSafetensors(file(ok('w', 'F128', [1], [0, 16]), 16)), TypeError, /Unknown dtype "F128" for tensor "w" in the safetensors header; safetensors dtypes are BOOL, F4,/],
    ['lower-case dtype', () => loadSafetensors(file(ok('w', 'f32', [1], [0, 4]), 4)), TypeError, /Unknown dtype "f32"/],
    ['unsupported BF16', () => loadSafetensors(file(ok('layer.weight', 'BF16', [2], [0, 4]), 4)), TypeError, /Unsupported dtype BF16 for tensor "layer.weight" in the safetensors file: normkit reads F32, F64, I64/],
    ['unsupported F16', () => loadSafetensors(file({ ...ok('a', 'F32', [1], [0, 4]), ...ok('h', 'F16', [3], [4, 10]) }, 10)), TypeError, /Unsupported dtype F16 for tensor "h"/],
    ['unsupported I32', () => loadSafetensors(file(ok('i', 'I32', [2, 2], [0, 16]), 16)), TypeError, /Unsupported dtype I32 for tensor "i"/],
    ['shape not an array', () => loadSafetensors(file(ok('w', 'F32', 3 as never, [0, 12]), 12)), TypeError, /Expected an array of non-negative integers for the shape of tensor "w" .* but received number 3/],
    ['negative dim', () => loadSafetensors(file(ok('w', 'F32', [-1], [0, 4]), 4)), RangeError, /Expected a non-negative integer for shape\[0\] of tensor "w" .* but received number -1/],
    ['fractional dim', () => loadSafetensors(file(ok('w', 'F32', [1.5], [0, 4]), 4)), RangeError, /shape\[0\] of tensor "w" .* received number 1.5/],
    ['dim written as a float', () => loadSafetensors(file('{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 4)), RangeError, /non-negative integer for shape\[0\]/],
    ['dim as a string', () => loadSafetensors(file(ok('w', 'F32', ['1'] as never, [0, 4]), 4)), TypeError, /shape\[0\] of tensor "w" .* received string "1"/],
    ['dim beyond 2^53', () => loadSafetensors(file('{"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}}', 4)), RangeError, /at most 2\^53 - 1 for shape\[0\] .* "18446744073709551615"/],
    ['offsets not an array', () => loadSafetensors(file(ok('w', 'F32', [1], 4 as never), 4)), TypeError, /Expected an array \[begin, end\] for the data_offsets of tensor "w"/],
    ['three offsets', () => loadSafetensors(file(ok('w', 'F32', [1], [0, 4, 8] as never), 4)), RangeError, /2 integers \[begin, end\] for the data_offsets of tensor "w" .* array of length 3/],
    ['offset null', () => loadSafetensors(file(ok('w', 'F32', [1], [null, 4] as never), 4)), TypeError, /data_offsets\[0\] of tensor "w" .* received null/],
    ['negative offset', () => loadSafetensors(file(ok('w', 'F32', [1], [0, -4]), 4)), RangeError, /non-negative integer for data_offsets\[1\] of tensor "w" .* received number -4/],
    ['end before begin', () => loadSafetensors(file({ ...ok('a', 'F32', [1], [0, 4]), ...ok('w', 'F32', [0], [4, 0]) }, 4)), RangeError, /Invalid data_offsets \[4, 0\] for tensor "w" .* not end before it begins/],
    ['overlapping tensors', () => loadSafetensors(file({ ...ok('a', 'F32', [2], [0, 8]), ...ok('b', 'F32', [2], [4, 12]) }, 12)), RangeError, /Invalid data_offsets \[4, 12\] for tensor "b" .* expected it to begin at byte 8/],
    ['a gap between tensors', () => loadSafetensors(file({ ...ok('a', 'F32', [1], [0, 4]), ...ok('b', 'F32', [1], [8, 12]) }, 12)), RangeError, /Invalid data_offsets \[8, 12\] for tensor "b" .* begin at byte 4/],
    ['not starting at 0', () => loadSafetensors(file(ok('a', 'F32', [1], [4, 8]), 8)), RangeError, /\[4, 8\] for tensor "a" .* begin at byte 0/],
    ['shape and offsets disagree', () => loadSafetensors(file(ok('running_var', 'F32', [3], [0, 8]), 8)), RangeError, /tensor "running_var" of dtype F32 and shape \[3\] needs 12 bytes but its data_offsets \[0, 8\] span 8/],
    ['F64 size mismatch', () => loadSafetensors(file(ok('d', 'F64', [2, 2], [0, 16]), 16)), RangeError, /"d" of dtype F64 and shape \[2, 2\] needs 32 bytes/],
    ['F4 off a byte boundary', () => loadSafetensors(file(ok('q', 'F4', [3], [0, 2]), 2)), RangeError, /3 elements of 4 bits do not end at a byte boundary/],
    ['offsets past the end of the file', () => loadSafetensors(file(ok('w', 'F32', [4], [0, 16]), 8)), RangeError, /cover 16 bytes but the data buffer after the header holds 8 \(truncated file/],
    ['trailing bytes (polyglot)', () => loadSafetensors(file(ok('w', 'F32', [1], [0, 4]), 9)), RangeError, /cover 4 bytes but the data buffer after the header holds 9 \(trailing bytes/],
    ['metadata not an object', () => loadSafetensors(file({ __metadata__: 'pt' })), TypeError, /Expected an object of strings for "__metadata__" .* received string "pt"/],
    ['metadata value not a string', () => loadSafetensors(file({ __metadata__: { format: 'pt', epoch: 3 } })), TypeError, /Expected a string \(metadata values are strings\) for "__metadata__"\["epoch"\] .* received number 3/],
    ['metadata value an object', () => loadSafetensors(file({ __metadata__: { nested: { a: 'b' } } })), TypeError, /"__metadata__"\["nested"\] .* received object/],
  ];

  it.each(cases)('%s', (_name, act, type, message) => {
    expectError(act, type, message);
  });

  it('reports the first malformed tensor even when another one is unsupported', () => {
    // Structure is validated for every tensor before any dtype is refused or anything allocated.
    expectError(() => loadSafetensors(file({ ...ok('b', 'BF16', [2], [0, 4]), ...ok('w', 'F32', [2], [4, 10]) }, 10)), RangeError, /"w" of dtype F32 and shape \[2\] needs 8 bytes/);
  });

  it('accepts "__metadata__": null and ignores unknown fields of a tensor entry, as the reference does', () => {
    const bytes = file({ __metadata__: null, w: { dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: [1, { x: 2 }] } }, new Uint8Array(Float32Array.of(3).buffer));
    expect(loadSafetensorsWithMetadata(bytes)).toEqual({ stateDict: { w: f32([3]) }, tensors: { w: f32([3]) }, metadata: undefined });
  });

  it('never loads any truncation of a valid file', () => {
    const bytes = new Uint8Array(readFileSync(join(FIXTURES, 'safetensors-bn2d.safetensors')));
    for (let len = 0; len < bytes.length; len++) {
      const e = thrown(() => loadSafetensors(bytes.slice(0, len)));
      expect(e, `prefix of ${len} bytes`).toBeInstanceOf(RangeError);
      expect((e as Error).message).toMatch(/header too small|truncated/);
    }
  });

  it('throws only TypeError, RangeError or Error (never crashes) on randomly corrupted files', () => {
    const bytes = new Uint8Array(readFileSync(join(FIXTURES, 'safetensors-bn2d.safetensors')));
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    let failures = 0;
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 8 + n - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
      const copy = bytes.slice();
      for (const [at, v] of edits) copy[at] = v;
      const e = thrown(() => loadSafetensors(copy));
      if (e === undefined) return; // e.g. a changed digit of a value, or a renamed tensor
      failures++;
      expect([TypeError, RangeError, Error]).toContain((e as Error).constructor);
      expect((e as Error).message).toMatch(/safetensors|Expected|Unknown dtype|Unsupported dtype/);
    }), { numRuns: 500 });
    expect(failures).toBeGreaterThan(100);
  });
});

describe('lying headers are rejected fast, before any allocation', () => {
  function rejectsCheaply(bytes: Uint8Array, type: ErrorConstructor, message: RegExp): void {
    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const e = thrown(() => loadSafetensors(bytes));
    const ms = performance.now() - t0;
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(e).toBeInstanceOf(type);
    expect((e as Error).message).toMatch(message);
    expect(ms).toBeLessThan(100);
    expect(grown).toBeLessThan(1 << 20);
  }

  it('a header length of 2^64 - 1', () => {
    rejectsCheaply(file('{}', 0, 2n ** 64n - 1n), RangeError, /header length is 18446744073709551615 bytes, more than the limit/);
  });

  it('a header length just under the limit, in a 24-byte file', () => {
    rejectsCheaply(file('{}', 14, 99_999_999n), RangeError, /header length is 99999999 bytes but only 16 bytes follow/);
  });

  it('a tensor claiming 8 TiB of data in a tiny file', () => {
    rejectsCheaply(file({ w: { dtype: 'F64', shape: [2 ** 40], data_offsets: [0, 2 ** 43] } }, 8), RangeError, /cover 8796093022208 bytes but the data buffer after the header holds 8/);
  });

  it('a shape whose element count overflows', () => {
    rejectsCheaply(file({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, 4), RangeError, /Invalid shape \[1073741824, 1073741824, 1073741824\] for tensor "w" .* overflows/);
  });

  it('a shape whose byte size overflows', () => {
    rejectsCheaply(file({ w: { dtype: 'I64', shape: [2 ** 52], data_offsets: [0, 8] } }, 8), RangeError, /for tensor "w" of dtype I64 in the safetensors header: its byte size overflows/);
  });

  it('a huge shape with small offsets', () => {
    rejectsCheaply(file({ w: { dtype: 'F32', shape: [2 ** 40], data_offsets: [0, 4] } }, 4), RangeError, /needs 4398046511104 bytes but its data_offsets \[0, 4\] span 4/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('saveSafetensors validates its input', () => {
  const detached = (): Float32Array => {
    const a = new Float32Array(2);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    return a;
  };
  const cases: Array<[string, () => unknown, ErrorConstructor, RegExp]> = [
    ['state dict null', () => saveSafetensors(null as never), TypeError, /Expected an object mapping names to tensors for state dict but received null/],
    ['state dict an array', () => saveSafetensors([f32([1])] as never), TypeError, /for state dict but received array of length 1/],
    ['state dict a typed array', () => saveSafetensors(new Float32Array(2) as never), TypeError, /for state dict but received Float32Array of length 2/],
    ['empty name', () => saveSafetensors({ '': f32([1]) }), RangeError, /Expected a non-empty string for a state dict key but received string ""/],
    ['"__metadata__" as a tensor name', () => saveSafetensors({ __metadata__: f32([1]) }), RangeError, /"__metadata__" .* reserved for the safetensors metadata/],
    ['lone surrogate in a name', () => saveSafetensors({ ['a\ud800']: f32([1]) }), RangeError, /well-formed Unicode string \(no lone surrogates\) for a state dict key/],
    ['entry not a tensor', () => saveSafetensors({ w: 3 as never }), TypeError, /Expected a tensor \{ data, shape \} for state dict entry "w" but received number 3/],
    ['number[] data', () => saveSafetensors({ w: { data: [1, 2], shape: [2] } as never }), TypeError, /Float32Array, Float64Array or BigInt64Array .* for state dict entry "w".data but received array of length 2/],
    ['Int32Array data', () => saveSafetensors({ w: { data: new Int32Array(2), shape: [2] } as never }), TypeError, /"w".data but received Int32Array of length 2/],
    ['BigUint64Array data', () => saveSafetensors({ n: { data: new BigUint64Array(1), shape: [] } as never }), TypeError, /"n".data but received BigUint64Array of length 1/],
    ['shape not an array', () => saveSafetensors({ w: { data: new Float32Array(2), shape: 2 } as never }), TypeError, /for state dict entry "w".shape but received number 2/],
    ['negative dim', () => saveSafetensors({ w: { data: new Float32Array(2), shape: [-2] } }), RangeError, /non-negative integer for state dict entry "w".shape\[0\] but received number -2/],
    ['fractional dim', () => saveSafetensors({ w: { data: new Float32Array(2), shape: [1.5] } }), RangeError, /"w".shape\[0\] but received number 1.5/],
    ['dim past 2^53 beside a 0', () => saveSafetensors({ w: { data: new Float32Array(0), shape: [0, 1e21] } }), RangeError, /integer of at most 2\^53 - 1 for state dict entry "w".shape\[1\] but received number 1e\+21/],
    ['length does not match the shape', () => saveSafetensors({ w: { data: new Float64Array(5), shape: [2, 3] } }), RangeError, /Expected state dict entry "w".data to hold 6 elements for shape \[2, 3\] but it holds 5/],
    ['int64 scalar of length 2', () => saveSafetensors({ num_batches_tracked: i64([1n, 2n], []) }), RangeError, /"num_batches_tracked".data to hold 1 elements for shape \[\] but it holds 2/],
    ['detached buffer', () => saveSafetensors({ w: { data: detached(), shape: [2] } }), TypeError, /attached buffer for state dict entry "w".data/],
    ['metadata null', () => saveSafetensors({}, null as never), TypeError, /Expected an object of strings for metadata but received null/],
    ['metadata an array', () => saveSafetensors({}, ['pt'] as never), TypeError, /for metadata but received array of length 1/],
    ['metadata value a number', () => saveSafetensors({}, { epoch: 3 } as never), TypeError, /Expected a string \(safetensors metadata values are strings\) for metadata\["epoch"\] but received number 3/],
    ['metadata value undefined', () => saveSafetensors({}, { format: undefined } as never), TypeError, /metadata\["format"\] but received undefined/],
    ['lone surrogate in metadata', () => saveSafetensors({}, { a: '\udc00' }), RangeError, /no lone surrogates\) for metadata\["a"\]/],
  ];

  it.each(cases)('%s', (_name, act, type, message) => {
    expectError(act, type, message);
  });

  it('refuses a header over 100 MB, as the reference does', () => {
    expectError(() => saveSafetensors({}, { big: 'a'.repeat(100_000_000) }), RangeError, /at most 100000000 bytes but this state dict and metadata need 100000032/);
  });

  it('leaves its input unchanged', () => {
    const sd = sampleStateDict();
    const before = JSON.stringify(Object.entries(sd).map(([k, t]) => [k, t.shape, Array.from(t.data as ArrayLike<unknown>, String)]));
    saveSafetensors(sd, { format: 'pt' });
    expect(JSON.stringify(Object.entries(sd).map(([k, t]) => [k, t.shape, Array.from(t.data as ArrayLike<unknown>, String)]))).toBe(before);
  });

  it('writes tensors that are views at an odd offset of a larger buffer', () => {
    const buf = new ArrayBuffer(64);
    const view = new Float64Array(buf, 8, 3);
    view.set([1, 2, 3]);
    const back = loadSafetensors(saveSafetensors({ v: { data: view, shape: [3] } }));
    expect(back.v!.data).toEqual(Float64Array.of(1, 2, 3));
  });
});
