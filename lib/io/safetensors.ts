// Safetensors (Hugging Face) files: https://github.com/huggingface/safetensors
//
//   8 bytes   N, little-endian u64: the length of the header
//   N bytes   UTF-8 JSON header: {"__metadata__": {str: str}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}
//   the rest  the data buffer: each tensor little-endian, row-major, contiguous, at [begin, end) of the buffer
//
// Writing follows the reference writer (`serialize` in safetensors/src/tensor.rs) byte for byte: compact JSON,
// "__metadata__" first, tensors sorted by dtype (the reference enum's order, descending: I64, F64, then F32) then
// by name (UTF-8 byte order), laid out in that order without gaps, header padded with spaces to a multiple of 8.
// The reference keeps metadata in a HashMap, so its metadata order is unspecified; normkit writes it sorted.
//
// Reading is as strict as the reference reader (`SafeTensors::read_metadata`): header at most 100,000,000 bytes and
// inside the file, valid UTF-8 JSON, an object ('{' first; JSON whitespace may pad either side, which the reference
// has accepted on purpose since its commit 96305fc, though its README says the header MUST begin with '{'), dtypes it knows, non-negative integer shapes and offsets, offsets
// contiguous from 0 with no gap or overlap, each tensor's byte length equal to its shape's product times its dtype
// size, and the last offset the end of the file. On top of it, as its specification requires: no duplicate keys, and
// "__metadata__" values are strings. Only then is anything allocated, and every tensor is copied into a fresh,
// aligned typed array (the input may have any byteOffset; the result never shares its memory).
import { formatShape, invalidRange, invalidType } from '../errors.js';
import { checkShape, isDetached, numel, type Tensor } from '../tensor.js';

/** An int64 tensor, as PyTorch's num_batches_tracked (BigInt64Array(1), shape []). */
export interface Int64Tensor {
  readonly data: BigInt64Array;
  readonly shape: readonly number[];
}

/** PyTorch's state_dict: names (weight, bias, running_mean, running_var, num_batches_tracked...) to tensors. */
export type StateDict = Record<string, Tensor | Int64Tensor>;

/** What `loadSafetensorsWithMetadata` returns: the tensors, and the "__metadata__" map if the file has one. */
export interface SafetensorsContents {
  /** The tensors, in file order. */
  stateDict: StateDict;
  /** The same object as stateDict (the name API.md's contract uses). */
  tensors: StateDict;
  /** The file's "__metadata__" (e.g. { format: 'pt' }), or undefined when it has none. */
  metadata: Record<string, string> | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Dtypes

/** Every dtype of the reference, in the order of its `Dtype` enum (the order the writer sorts by), with bit sizes. */
const DTYPES: ReadonlyArray<readonly [string, number]> = [
  ['BOOL', 8], ['F4', 4], ['F6_E2M3', 6], ['F6_E3M2', 6], ['U8', 8], ['I8', 8], ['F8_E5M2', 8], ['F8_E4M3', 8],
  ['F8_E8M0', 8], ['F8_E4M3FNUZ', 8], ['F8_E5M2FNUZ', 8], ['I16', 16], ['U16', 16], ['F16', 16], ['BF16', 16],
  ['I32', 32], ['U32', 32], ['F32', 32], ['C64', 64], ['F64', 64], ['I64', 64], ['U64', 64],
];
const DTYPE_BITS: ReadonlyMap<string, number> = new Map(DTYPES);
const DTYPE_RANK: ReadonlyMap<string, number> = new Map(DTYPES.map(([name], i) => [name, i]));

type SupportedDtype = 'F32' | 'F64' | 'I64';
const SUPPORTED: readonly SupportedDtype[] = ['F32', 'F64', 'I64'];
const isSupported = (d: string): d is SupportedDtype => (SUPPORTED as readonly string[]).includes(d);

const MAX_HEADER_SIZE = 100_000_000;
const N_LEN = 8;
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A lone surrogate cannot be encoded as UTF-8 (TextEncoder would silently write U+FFFD instead). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Orders strings by code point, which is the byte order of their UTF-8 (Rust's `str` order). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF, astral code points) sort after every other BMP unit in code point order.
    const hx = x >= 0xd800 && x <= 0xdfff, hy = y >= 0xd800 && y <= 0xdfff;
    if (hx !== hy) return hx ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof ArrayBuffer);
}

/** Defines an own enumerable property, safe for a key such as "__proto__". */
function put<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

interface Entry {
  name: string;
  dtype: SupportedDtype;
  shape: readonly number[];
  data: Float32Array | Float64Array | BigInt64Array;
}

function checkName(name: string, what: string): void {
  if (name.length === 0) throw invalidRange(what, 'a non-empty string', name);
  if (LONE_SURROGATE.test(name)) throw invalidRange(what, 'a well-formed Unicode string (no lone surrogates)', name);
}

function checkEntry(name: string, value: unknown): Entry {
  const what = `state dict entry ${JSON.stringify(name)}`;
  checkName(name, 'a state dict key');
  if (name === '__metadata__') {
    throw new RangeError(`Expected a tensor name for state dict key "__metadata__" but it is reserved for the safetensors metadata; pass metadata as the second argument`);
  }
  if (typeof value !== 'object' || value === null) throw invalidType(what, 'a tensor { data, shape }', value);
  const { data, shape } = value as { data?: unknown; shape?: unknown };
  let dtype: SupportedDtype;
  if (data instanceof Float32Array) dtype = 'F32';
  else if (data instanceof Float64Array) dtype = 'F64';
  else if (data instanceof BigInt64Array) dtype = 'I64';
  else throw invalidType(`${what}.data`, 'a Float32Array, Float64Array or BigInt64Array (safetensors F32, F64, I64)', data);
  const s = checkShape(shape, `${what}.shape`);
  // A dim past 2^53 (possible beside a 0) would be written as 1e+21, which no reader takes for an integer.
  s.forEach((d, i) => { if (d > Number.MAX_SAFE_INTEGER) throw invalidRange(`${what}.shape[${i}]`, 'an integer of at most 2^53 - 1', d); });
  if (isDetached(data)) throw new TypeError(`Expected an attached buffer for ${what}.data but its ArrayBuffer is detached`);
  const n = numel(s);
  if (data.length !== n) {
    throw new RangeError(`Expected ${what}.data to hold ${n} elements for shape ${formatShape(s)} but it holds ${data.length}`);
  }
  return { name, dtype, shape: s, data };
}

function checkMetadata(metadata: unknown): Array<[string, string]> {
  if (!isPlainRecord(metadata)) throw invalidType('metadata', 'an object of strings', metadata);
  const out: Array<[string, string]> = [];
  for (const key of Object.keys(metadata)) {
    const what = `metadata[${JSON.stringify(key)}]`;
    if (LONE_SURROGATE.test(key)) throw invalidRange(`metadata key ${JSON.stringify(key)}`, 'a well-formed Unicode string (no lone surrogates)', key);
    const v = metadata[key];
    if (typeof v !== 'string') throw invalidType(what, 'a string (safetensors metadata values are strings)', v);
    if (LONE_SURROGATE.test(v)) throw invalidRange(what, 'a well-formed Unicode string (no lone surrogates)', v);
    out.push([key, v]);
  }
  return out.sort((a, b) => compareCodePoints(a[0], b[0]));
}

/** Copies a typed array's elements into `out` at `pos`, little-endian. */
function writeData(out: Uint8Array, pos: number, data: Float32Array | Float64Array | BigInt64Array): void {
  if (HOST_LITTLE_ENDIAN) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + pos, data.byteLength);
  if (data instanceof Float32Array) data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  else if (data instanceof Float64Array) data.forEach((v, i) => view.setFloat64(i * 8, v, true));
  else data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
}

/**
 * Serializes a state dict to the bytes of a .safetensors file, laid out exactly as the reference writer
 * (Python's `safetensors.torch.save_file`) lays it out. Float32Array -> F32, Float64Array -> F64,
 * BigInt64Array -> I64. Metadata values must be strings (`{ format: 'pt' }` is what PyTorch writers add).
 */
export function saveSafetensors(sd: StateDict, metadata?: Record<string, string>): Uint8Array {
  if (!isPlainRecord(sd)) throw invalidType('state dict', 'an object mapping names to tensors', sd);
  const entries: Entry[] = [];
  for (const name of Object.keys(sd)) entries.push(checkEntry(name, (sd as Record<string, unknown>)[name]));
  const meta = metadata === undefined ? undefined : checkMetadata(metadata);

  // The reference: sort by dtype descending (its enum order), then by name.
  entries.sort((a, b) => (DTYPE_RANK.get(b.dtype) ?? 0) - (DTYPE_RANK.get(a.dtype) ?? 0) || compareCodePoints(a.name, b.name));

  // Compact JSON as serde_json writes it; JSON.stringify escapes strings identically (", \, control characters as
  // \b \t \n \f \r or lower-case \u00xx, nothing else). Built by hand so that integer-like keys keep their order.
  const fields: string[] = [];
  if (meta) fields.push(`"__metadata__":{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  let offset = 0;
  for (const e of entries) {
    const begin = offset;
    offset += e.data.byteLength;
    fields.push(`${JSON.stringify(e.name)}:{"dtype":"${e.dtype}","shape":[${e.shape.join(',')}],"data_offsets":[${begin},${offset}]}`);
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const n = Math.ceil(json.length / N_LEN) * N_LEN;
  if (n > MAX_HEADER_SIZE) {
    throw new RangeError(`Expected a safetensors header of at most ${MAX_HEADER_SIZE} bytes but this state dict and metadata need ${n}`);
  }

  const total = N_LEN + n + offset;
  let out: Uint8Array;
  try {
    out = new Uint8Array(total);
  } catch {
    throw new RangeError(`Expected a state dict that fits in one Uint8Array but its safetensors file would take ${total} bytes`);
  }
  const view = new DataView(out.buffer);
  view.setUint32(0, n, true); // n < 2^32: the high word stays 0
  out.set(json, N_LEN);
  out.fill(0x20, N_LEN + json.length, N_LEN + n);
  let pos = N_LEN + n;
  for (const e of entries) {
    writeData(out, pos, e.data);
    pos += e.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// A strict JSON parser for the header. JSON.parse would silently keep the last of duplicate keys, round integers
// beyond 2^53 and accept "2.0" as an integer; this one reports all of them. It parses the grammar of RFC 8259, as
// serde_json does (including its nesting limit of 128), and keeps objects as Maps, so any key is safe.

class JsonNumber {
  constructor(readonly raw: string, readonly value: number) {}
  /** Written without fraction or exponent, as serde_json requires of an integer. */
  get isIntegerLiteral(): boolean { return /^-?\d+$/.test(this.raw); }
}

type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | Map<string, JsonValue>;

const MAX_DEPTH = 128;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function headerError(message: string): Error {
  return new Error(`Invalid safetensors header: ${message}`);
}

class HeaderParser {
  private pos = 0;
  constructor(private readonly text: string) {}

  /** The whole header: whitespace, one JSON object, whitespace (the reference accepts padding on both sides). */
  parseDocument(): Map<string, JsonValue> {
    this.skipWhitespace();
    if (this.text[this.pos] !== '{') {
      const found = this.pos < this.text.length ? `starts with ${JSON.stringify(this.text.slice(this.pos, this.pos + 10))}` : 'is empty';
      throw headerError(`expected a JSON object starting with '{' but the header ${found}`);
    }
    const value = this.parseObject(1);
    this.skipWhitespace();
    if (this.pos !== this.text.length) {
      throw headerError(`unexpected ${JSON.stringify(this.text.slice(this.pos, this.pos + 10))} after the JSON object at character ${this.pos} (only whitespace may follow it)`);
    }
    return value;
  }

  private fail(what: string): never {
    const at = this.pos < this.text.length ? `${JSON.stringify(this.text.slice(this.pos, this.pos + 10))} at character ${this.pos}` : 'the end of the header';
    throw headerError(`invalid JSON: expected ${what} but found ${at}`);
  }

  private skipWhitespace(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else return;
    }
  }

  private parseValue(depth: number): JsonValue {
    this.skipWhitespace();
    const c = this.text[this.pos];
    if (c === '{') return this.parseObject(depth + 1);
    if (c === '[') return this.parseArray(depth + 1);
    if (c === '"') return this.parseString();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.pos)) { this.pos += word.length; return value; }
    }
    return this.fail('a JSON value');
  }

  private enter(depth: number): void {
    if (depth > MAX_DEPTH) throw headerError(`JSON nested more than ${MAX_DEPTH} levels deep at character ${this.pos}`);
  }

  private parseObject(depth: number): Map<string, JsonValue> {
    this.enter(depth);
    this.pos++; // {
    const map = new Map<string, JsonValue>();
    this.skipWhitespace();
    if (this.text[this.pos] === '}') { this.pos++; return map; }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('a string key');
      const keyAt = this.pos;
      const key = this.parseString();
      if (map.has(key)) throw headerError(`duplicate key ${JSON.stringify(key)} at character ${keyAt} (safetensors forbids duplicate keys)`);
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') this.fail("':'");
      this.pos++;
      map.set(key, this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text[this.pos];
      this.pos++;
      if (c === '}') return map;
      if (c !== ',') { this.pos--; this.fail("',' or '}'"); }
    }
  }

  private parseArray(depth: number): JsonValue[] {
    this.enter(depth);
    this.pos++; // [
    const arr: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') { this.pos++; return arr; }
    for (;;) {
      arr.push(this.parseValue(depth));
      this.skipWhitespace();
      const c = this.text[this.pos];
      this.pos++;
      if (c === ']') return arr;
      if (c !== ',') { this.pos--; this.fail("',' or ']'"); }
    }
  }

  private parseNumber(): JsonNumber {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) return this.fail('a number');
    this.pos += m[0].length;
    return new JsonNumber(m[0], Number(m[0]));
  }

  private parseString(): string {
    const t = this.text;
    this.pos++; // "
    let out = '';
    let start = this.pos;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('a closing \'"\'');
      if (c === 0x22) { out += t.slice(start, this.pos); this.pos++; return out; }
      if (c < 0x20) this.fail('no raw control character in a string (it must be escaped)');
      if (c !== 0x5c) { this.pos++; continue; }
      out += t.slice(start, this.pos);
      const e = t[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const unit = this.hex4();
          if (unit >= 0xdc00 && unit <= 0xdfff) { this.pos -= 6; this.fail('no lone trailing surrogate in a \\u escape'); }
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (t[this.pos] !== '\\' || t[this.pos + 1] !== 'u') this.fail('a \\u escape of a trailing surrogate after a leading one');
            this.pos += 2;
            const low = this.hex4();
            if (low < 0xdc00 || low > 0xdfff) { this.pos -= 6; this.fail('a trailing surrogate after a leading one'); }
            out += String.fromCharCode(unit, low);
          } else {
            out += String.fromCharCode(unit);
          }
          break;
        }
        default: this.pos -= 2; this.fail('a valid escape sequence');
      }
      start = this.pos;
    }
  }

  private hex4(): number {
    const h = this.text.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('4 hex digits after \\u');
    this.pos += 4;
    return parseInt(h, 16);
  }
}

/** A JSON value as plain JavaScript, for describe() in error messages. */
function plain(v: JsonValue | undefined): unknown {
  if (v instanceof JsonNumber) return v.value;
  if (v instanceof Map) return {};
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A non-negative integer literal up to 2^53 - 1 (the reference takes usize; larger ones cannot describe a real file). */
function headerInteger(v: JsonValue | undefined, what: string): number {
  if (!(v instanceof JsonNumber)) throw invalidType(what, 'a non-negative integer', plain(v));
  if (!v.isIntegerLiteral || v.value < 0) throw invalidRange(what, 'a non-negative integer', v.value);
  if (v.value > Number.MAX_SAFE_INTEGER) throw invalidRange(what, 'an integer of at most 2^53 - 1', v.raw);
  return v.value + 0; // -0 -> 0
}

function tensorInfo(name: string, value: JsonValue): TensorInfo {
  const what = `tensor ${JSON.stringify(name)} in the safetensors header`;
  if (!(value instanceof Map)) throw invalidType(what, 'an object { dtype, shape, data_offsets }', plain(value));
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!value.has(field)) throw new TypeError(`Expected a "${field}" field for ${what} but it has none`);
  }
  // Other fields are ignored, as the reference ignores them.
  const dtype = value.get('dtype');
  if (typeof dtype !== 'string') throw invalidType(`the dtype of ${what}`, 'a string', plain(dtype));
  if (!DTYPE_BITS.has(dtype)) {
    throw new TypeError(`Unknown dtype ${JSON.stringify(dtype)} for ${what}; safetensors dtypes are ${DTYPES.map(([d]) => d).join(', ')}`);
  }
  const shapeValue = value.get('shape');
  if (!Array.isArray(shapeValue)) throw invalidType(`the shape of ${what}`, 'an array of non-negative integers', plain(shapeValue));
  const shape = shapeValue.map((d, i) => headerInteger(d, `shape[${i}] of ${what}`));
  const offsets = value.get('data_offsets');
  if (!Array.isArray(offsets)) throw invalidType(`the data_offsets of ${what}`, 'an array [begin, end]', plain(offsets));
  if (offsets.length !== 2) throw invalidRange(`the data_offsets of ${what}`, 'an array of 2 integers [begin, end]', offsets);
  const begin = headerInteger(offsets[0], `data_offsets[0] of ${what}`);
  const end = headerInteger(offsets[1], `data_offsets[1] of ${what}`);
  return { name, dtype, shape, begin, end };
}

function readMetadata(value: JsonValue): Record<string, string> | undefined {
  if (value === null) return undefined; // the reference reads "__metadata__": null as no metadata
  if (!(value instanceof Map)) throw invalidType('"__metadata__" in the safetensors header', 'an object of strings', plain(value));
  const out: Record<string, string> = {};
  for (const [k, v] of value) {
    if (typeof v !== 'string') throw invalidType(`"__metadata__"[${JSON.stringify(k)}] in the safetensors header`, 'a string (metadata values are strings)', plain(v));
    put(out, k, v);
  }
  return out;
}

/** Copies [begin, end) of the data buffer into a fresh, aligned array of the dtype. */
function readData(bytes: Uint8Array, at: number, dtype: SupportedDtype, count: number): Float32Array | Float64Array | BigInt64Array {
  const out = dtype === 'F32' ? new Float32Array(count) : dtype === 'F64' ? new Float64Array(count) : new BigInt64Array(count);
  if (HOST_LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes.subarray(at, at + out.byteLength));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, out.byteLength);
  if (out instanceof Float32Array) for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  else if (out instanceof Float64Array) for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
  else for (let i = 0; i < count; i++) out[i] = view.getBigInt64(i * 8, true);
  return out;
}

/**
 * Reads a .safetensors file (as written by PyTorch's safetensors, or by saveSafetensors): its tensors, in file
 * order, and its "__metadata__". F32 -> Float32Array, F64 -> Float64Array, I64 -> BigInt64Array; other dtypes
 * (BF16, F16, I32...) throw a TypeError naming the tensor and the dtype. Malformed input throws (TypeError for a
 * wrong kind of value, RangeError for sizes and offsets, Error for bytes that are not a JSON header) before
 * anything the size of a tensor is allocated.
 */
export function loadSafetensorsWithMetadata(bytes: Uint8Array): SafetensorsContents {
  if (!(bytes instanceof Uint8Array)) throw invalidType('safetensors bytes', 'a Uint8Array (or Buffer)', bytes);
  if (isDetached(bytes)) throw new TypeError('Expected an attached buffer for safetensors bytes but its ArrayBuffer is detached');
  const len = bytes.length;
  if (len < N_LEN) {
    throw new RangeError(`Invalid safetensors file: it holds ${len} bytes, too few for the 8-byte header length (header too small)`);
  }
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, N_LEN).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    throw new RangeError(`Invalid safetensors file: its header length is ${n64} bytes, more than the limit of ${MAX_HEADER_SIZE} (header too large)`);
  }
  const n = Number(n64);
  if (N_LEN + n > len) {
    throw new RangeError(`Invalid safetensors file: its header length is ${n} bytes but only ${len - N_LEN} bytes follow the length field (truncated file or invalid header length)`);
  }

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(N_LEN, N_LEN + n));
  } catch {
    throw headerError('it is not valid UTF-8');
  }
  const header = new HeaderParser(text).parseDocument();

  let metadata: Record<string, string> | undefined;
  const infos: TensorInfo[] = [];
  for (const [key, value] of header) {
    if (key === '__metadata__') metadata = readMetadata(value);
    else infos.push(tensorInfo(key, value));
  }

  // The reference's validation: by offsets, each tensor starts where the previous one ended, spans exactly
  // numel * bitsize / 8 bytes, and the last one ends at the end of the file.
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = len - N_LEN - n;
  let start = 0;
  const counts: number[] = [];
  for (const t of infos) {
    const what = `tensor ${JSON.stringify(t.name)}`;
    const inHeader = `${what} in the safetensors header`;
    if (t.begin !== start || t.end < t.begin) {
      throw new RangeError(`Invalid data_offsets [${t.begin}, ${t.end}] for ${inHeader}: expected it to begin at byte ${start} ` +
        `and not end before it begins (tensors must cover the data buffer contiguously, without gaps or overlaps)`);
    }
    start = t.end;
    let count = 1;
    for (const d of t.shape) {
      count *= d;
      if (count > Number.MAX_SAFE_INTEGER) throw new RangeError(`Invalid shape ${formatShape(t.shape)} for ${inHeader}: its number of elements overflows`);
    }
    const bits = DTYPE_BITS.get(t.dtype) ?? 0;
    if (count > Number.MAX_SAFE_INTEGER / bits) throw new RangeError(`Invalid shape ${formatShape(t.shape)} for ${what} of dtype ${t.dtype} in the safetensors header: its byte size overflows`);
    if ((count * bits) % 8 !== 0) {
      throw new RangeError(`Invalid shape ${formatShape(t.shape)} for ${what} of dtype ${t.dtype} in the safetensors header: ${count} elements of ${bits} bits do not end at a byte boundary`);
    }
    const size = (count * bits) / 8;
    if (t.end - t.begin !== size) {
      throw new RangeError(`Invalid safetensors header: ${what} of dtype ${t.dtype} and shape ${formatShape(t.shape)} needs ${size} bytes ` +
        `but its data_offsets [${t.begin}, ${t.end}] span ${t.end - t.begin}`);
    }
    counts.push(count);
  }
  if (start !== dataLength) {
    throw new RangeError(`Invalid safetensors file: the tensors' data_offsets cover ${start} bytes but the data buffer after the header holds ` +
      `${dataLength} (${start > dataLength ? 'truncated file' : 'trailing bytes'}; the offsets must cover the buffer exactly)`);
  }
  for (const t of infos) {
    if (!isSupported(t.dtype)) {
      throw new TypeError(`Unsupported dtype ${t.dtype} for tensor ${JSON.stringify(t.name)} in the safetensors file: normkit reads ${SUPPORTED.join(', ')}`);
    }
  }

  const stateDict: StateDict = {};
  const base = N_LEN + n;
  infos.forEach((t, i) => {
    const data = readData(bytes, base + t.begin, t.dtype as SupportedDtype, counts[i] ?? 0);
    // (two branches so each object literal has one typed-array type)
    put<Tensor | Int64Tensor>(stateDict, t.name, data instanceof BigInt64Array ? { data, shape: t.shape } : { data, shape: t.shape });
  });
  return { stateDict, tensors: stateDict, metadata };
}

/** Reads the tensors of a .safetensors file; see loadSafetensorsWithMetadata (which also returns the metadata). */
export function loadSafetensors(bytes: Uint8Array): StateDict {
  return loadSafetensorsWithMetadata(bytes).stateDict;
}

