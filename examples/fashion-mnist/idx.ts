// The IDX file format of (Fashion-)MNIST, http://yann.lecun.com/exdb/mnist/ :
//
//   bytes 0-1  zero
//   byte  2    element type: 0x08 = unsigned byte (the only type (Fashion-)MNIST uses, so the only one read here)
//   byte  3    number of dimensions d
//   then d big-endian uint32 sizes, then the elements, row-major.
//
// Labels are idx1 (magic 0x00000801, one dimension: count), images idx3 (magic 0x00000803: count, rows, cols).
// Files are usually gzipped; `readIdxFile` gunzips when the bytes start with gzip's magic, so both forms work.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  /** The magic number, e.g. 0x00000803 for an idx3 file of unsigned bytes. */
  readonly magic: number;
  /** The sizes of the dimensions, e.g. [60000, 28, 28]. */
  readonly dims: readonly number[];
  /** The elements, row-major; a view into the file's bytes, not a copy. */
  readonly data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;

/** Parses IDX bytes (already gunzipped). Throws an Error naming `source` on anything malformed. */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (bytes.length < 4) throw new Error(`${source}: ${bytes.length} bytes is too short for an IDX header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== UNSIGNED_BYTE) {
    throw new Error(`${source}: not an IDX file of unsigned bytes (magic 0x${magic.toString(16).padStart(8, '0')})`);
  }
  const rank = bytes[3] ?? 0;
  const headerLength = 4 + 4 * rank;
  if (rank === 0 || bytes.length < headerLength) throw new Error(`${source}: truncated IDX header (rank ${rank})`);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerLength + count) {
    throw new Error(`${source}: header says ${dims.join('x')} = ${count} elements but the file holds ${bytes.length - headerLength}`);
  }
  return { magic, dims, data: bytes.subarray(headerLength) };
}

/** Reads an IDX file, gunzipping it first when it is gzipped (gzip's magic bytes 1f 8b). */
export function readIdxFile(path: string): IdxArray {
  const raw = readFileSync(path);
  const bytes = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/** Serializes unsigned bytes as IDX (used to cut the shipped subset out of the full files). */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`encodeIdx: ${dims.join('x')} needs ${count} bytes, got ${data.length}`);
  const out = new Uint8Array(4 + 4 * dims.length + count);
  const view = new DataView(out.buffer);
  out[2] = UNSIGNED_BYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
