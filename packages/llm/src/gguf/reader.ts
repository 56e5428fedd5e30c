/**
 * Reading GGUF from bytes: the header (metadata and tensor infos) and the
 * decoding of one tensor's data to f32. Pure: the file side is file.ts, which
 * reads the header and then only the tensors a stage asks for.
 */
import { ImError } from '@idlemesh/protocol';
import { f16BitsToF32 } from './f16.js';
import { BLOCK, elementCount, GgmlType, GgufValueType, tensorBytes, type GgufHeader, type GgufScalar, type GgufTensorInfo, type GgufValue } from './types.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const DEFAULT_ALIGNMENT = 32;
/** Far above any real file; a bigger count is a corrupt header, not a reason to allocate. */
const MAX_COUNT = 1 << 24;
const MAX_DIMS = 4;

/** Thrown (internally) when the header runs past the bytes given: the file reader retries with more. */
export class GgufNeedMore extends Error {
  constructor(readonly needed: number) {
    super(`GGUF header needs more than ${needed} bytes`);
  }
}

function invalid(message: string): ImError {
  return new ImError('IM_GGUF_INVALID', message);
}

class Cursor {
  private pos = 0;
  private readonly view: DataView;
  private readonly text = new TextDecoder('utf-8', { fatal: false });

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  private take(n: number): number {
    const at = this.pos;
    if (at + n > this.bytes.length) throw new GgufNeedMore(at + n);
    this.pos += n;
    return at;
  }

  u8(): number { return this.view.getUint8(this.take(1)); }
  i8(): number { return this.view.getInt8(this.take(1)); }
  u16(): number { return this.view.getUint16(this.take(2), true); }
  i16(): number { return this.view.getInt16(this.take(2), true); }
  u32(): number { return this.view.getUint32(this.take(4), true); }
  i32(): number { return this.view.getInt32(this.take(4), true); }
  f32(): number { return this.view.getFloat32(this.take(4), true); }
  f64(): number { return this.view.getFloat64(this.take(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.take(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.take(8), true); }

  /** A u64 that must fit a JS number and stay under `max` (counts, lengths, offsets). */
  count(what: string, max: number): number {
    const v = this.u64();
    if (v > BigInt(max)) throw invalid(`${what} is ${v}, more than ${max}: the header is corrupt`);
    return Number(v);
  }

  string(what: string): string {
    const n = this.count(`the length of ${what}`, MAX_COUNT * 16);
    const at = this.take(n);
    return this.text.decode(this.bytes.subarray(at, at + n));
  }
}

function readScalar(c: Cursor, type: GgufValueType, what: string): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8: return c.u8();
    case GgufValueType.INT8: return c.i8();
    case GgufValueType.UINT16: return c.u16();
    case GgufValueType.INT16: return c.i16();
    case GgufValueType.UINT32: return c.u32();
    case GgufValueType.INT32: return c.i32();
    case GgufValueType.FLOAT32: return c.f32();
    case GgufValueType.FLOAT64: return c.f64();
    case GgufValueType.UINT64: return c.u64();
    case GgufValueType.INT64: return c.i64();
    case GgufValueType.BOOL: {
      const b = c.u8();
      if (b > 1) throw invalid(`${what}: a bool of value ${b}`);
      return b === 1;
    }
    case GgufValueType.STRING: return c.string(what);
    default: throw invalid(`${what}: unknown metadata type ${type}`);
  }
}

function readValue(c: Cursor, key: string): GgufValue {
  const type = c.u32() as GgufValueType;
  if (type !== GgufValueType.ARRAY) return { type, value: readScalar(c, type, key) } as GgufValue;
  const itemType = c.u32() as GgufValueType;
  if (itemType === GgufValueType.ARRAY) throw invalid(`${key}: nested arrays are not supported`);
  const n = c.count(`the length of ${key}`, MAX_COUNT);
  const value: GgufScalar[] = new Array<GgufScalar>(n);
  for (let i = 0; i < n; i++) value[i] = readScalar(c, itemType, key);
  return { type, itemType, value } as GgufValue;
}

/**
 * Parses the header from the start of a file. `fileSize` (when the bytes are
 * only a prefix of the file) is used to check that every tensor lies inside
 * the file; without it, the bytes are the whole file.
 */
export function parseGgufHeader(bytes: Uint8Array, fileSize: number = bytes.length): GgufHeader {
  const c = new Cursor(bytes);
  if (bytes.length >= 4 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) !== GGUF_MAGIC) {
    throw invalid(`not a GGUF file: it starts with ${JSON.stringify(new TextDecoder().decode(bytes.subarray(0, 4)))}, not "GGUF"`);
  }
  try {
    c.u32();
    const version = c.u32();
    if (version !== 2 && version !== 3) throw invalid(`GGUF version ${version} is not supported (2 and 3 are)`);
    const tensorCount = c.count('the tensor count', MAX_COUNT);
    const kvCount = c.count('the metadata count', MAX_COUNT);
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string(`metadata key ${i}`);
      metadata.set(key, readValue(c, key));
    }
    const align = metadata.get('general.alignment');
    const alignment = align === undefined ? DEFAULT_ALIGNMENT : Number(align.value);
    if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw invalid(`general.alignment ${String(align?.value)} is not a positive multiple of 8`);
    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string(`tensor name ${i}`);
      if (names.has(name)) throw invalid(`tensor ${name} appears twice`);
      names.add(name);
      const nDims = c.u32();
      if (nDims < 1 || nDims > MAX_DIMS) throw invalid(`tensor ${name} has ${nDims} dimensions (1 to ${MAX_DIMS} allowed)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const n = c.count(`dimension ${d} of ${name}`, Number.MAX_SAFE_INTEGER);
        if (n < 1) throw invalid(`tensor ${name} has an empty dimension`);
        dims.push(n);
      }
      if (elementCount(dims) > Number.MAX_SAFE_INTEGER) throw invalid(`tensor ${name} is too large`);
      const type = c.u32() as GgmlType;
      const offset = c.count(`the offset of ${name}`, Number.MAX_SAFE_INTEGER);
      if (offset % alignment !== 0) throw invalid(`tensor ${name} starts at ${offset}, not a multiple of the alignment ${alignment}`);
      const block = BLOCK[type];
      if (block && dims[0]! % block[0] !== 0) throw invalid(`tensor ${name}: a row of ${dims[0]} is not a whole number of ${GgmlType[type] ?? type} blocks (${block[0]})`);
      tensors.push({ name, dims, type, offset, bytes: tensorBytes(type, dims) });
    }
    const dataOffset = Math.ceil(c.offset / alignment) * alignment;
    for (const t of tensors) {
      if (t.bytes !== undefined && dataOffset + t.offset + t.bytes > fileSize) {
        throw invalid(`tensor ${t.name} (${t.dims.join('×')} ${GgmlType[t.type] ?? t.type}, ${t.bytes} bytes at ${dataOffset + t.offset}) ends past the end of the file (${fileSize} bytes): truncated or a wrong tensor size`);
      }
    }
    return { version, metadata, tensors, alignment, dataOffset };
  } catch (err) {
    // A prefix that ends inside the header: the caller may read more; the whole file ending there is truncation.
    if (err instanceof GgufNeedMore && bytes.length >= fileSize) throw invalid(`the file ends inside the GGUF header (${fileSize} bytes, needs more than ${err.needed}): truncated`);
    throw err;
  }
}

/** Decodes a tensor's raw bytes to f32 (F32, F16, BF16, Q8_0). */
export function decodeTensor(info: GgufTensorInfo, raw: Uint8Array): Float32Array {
  const n = elementCount(info.dims);
  if (info.bytes === undefined || raw.length !== info.bytes) throw invalid(`tensor ${info.name}: ${raw.length} bytes, expected ${String(info.bytes)}`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  switch (info.type) {
    case GgmlType.F32:
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[i] = f16BitsToF32(view.getUint16(i * 2, true));
      return out;
    case GgmlType.BF16: {
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) {
        u[0] = view.getUint16(i * 2, true) << 16;
        out[i] = f[0]!;
      }
      return out;
    }
    case GgmlType.Q8_0:
      // Blocks of 32: an f16 scale d, then 32 int8 q; value = d·q.
      for (let b = 0; b < n / 32; b++) {
        const d = f16BitsToF32(view.getUint16(b * 34, true));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * view.getInt8(b * 34 + 2 + j);
      }
      return out;
    default:
      throw invalid(`tensor ${info.name} is ${GgmlType[info.type] ?? `type ${info.type}`}; this reader decodes F32, F16, BF16 and Q8_0`);
  }
}

/** Typed metadata getters: a missing or mistyped key is IM_GGUF_INVALID naming it. */
export function metaNumber(h: GgufHeader, key: string, fallback?: number): number {
  const v = h.metadata.get(key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw invalid(`the GGUF has no ${key}`);
  }
  if (v.type === GgufValueType.ARRAY || (typeof v.value !== 'number' && typeof v.value !== 'bigint')) throw invalid(`${key} is not a number`);
  return Number(v.value);
}

export function metaString(h: GgufHeader, key: string): string | undefined {
  const v = h.metadata.get(key);
  if (v === undefined) return undefined;
  if (v.type !== GgufValueType.STRING) throw invalid(`${key} is not a string`);
  return v.value as string;
}
