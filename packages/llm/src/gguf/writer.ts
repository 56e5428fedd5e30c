/**
 * Writing GGUF v3: metadata with explicit types, tensors given as raw bytes
 * in their ggml type (encodeTensor makes them from f32). The inverse of
 * reader.ts; used to make test and bench models, not to convert real ones.
 */
import { ImError } from '@idlemesh/protocol';
import { f32ToF16Bits } from './f16.js';
import { GgmlType, GgufValueType, tensorBytes, type GgufScalar, type GgufValue } from './types.js';
import { GGUF_MAGIC } from './reader.js';

export interface GgufTensorInput {
  name: string;
  /** Innermost first. */
  dims: number[];
  type: GgmlType;
  data: Uint8Array;
}

export interface GgufWriteInput {
  metadata: Iterable<readonly [string, GgufValue]>;
  tensors: readonly GgufTensorInput[];
  /** Default 32 (written as general.alignment only when it differs). */
  alignment?: number;
}

/** A growable little-endian byte buffer. */
class Out {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly text = new TextEncoder();

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.length + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // room() may replace the buffer: take the offset before touching this.view or this.buf.
  u8(v: number): void { const at = this.room(1); this.view.setUint8(at, v); }
  i8(v: number): void { const at = this.room(1); this.view.setInt8(at, v); }
  u16(v: number): void { const at = this.room(2); this.view.setUint16(at, v, true); }
  i16(v: number): void { const at = this.room(2); this.view.setInt16(at, v, true); }
  u32(v: number): void { const at = this.room(4); this.view.setUint32(at, v, true); }
  i32(v: number): void { const at = this.room(4); this.view.setInt32(at, v, true); }
  f32(v: number): void { const at = this.room(4); this.view.setFloat32(at, v, true); }
  f64(v: number): void { const at = this.room(8); this.view.setFloat64(at, v, true); }
  u64(v: number | bigint): void { const at = this.room(8); this.view.setBigUint64(at, BigInt(v), true); }
  i64(v: number | bigint): void { const at = this.room(8); this.view.setBigInt64(at, BigInt(v), true); }
  bytes(b: Uint8Array): void { const at = this.room(b.length); this.buf.set(b, at); }
  string(s: string): void {
    const b = this.text.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.room(n);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeScalar(o: Out, type: GgufValueType, v: GgufScalar, key: string): void {
  const num = (): number => {
    if (typeof v !== 'number') throw new ImError('IM_VALIDATION', `${key}: ${GgufValueType[type]} needs a number`);
    return v;
  };
  switch (type) {
    case GgufValueType.UINT8: return o.u8(num());
    case GgufValueType.INT8: return o.i8(num());
    case GgufValueType.UINT16: return o.u16(num());
    case GgufValueType.INT16: return o.i16(num());
    case GgufValueType.UINT32: return o.u32(num());
    case GgufValueType.INT32: return o.i32(num());
    case GgufValueType.FLOAT32: return o.f32(num());
    case GgufValueType.FLOAT64: return o.f64(num());
    case GgufValueType.UINT64: return o.u64(typeof v === 'bigint' ? v : num());
    case GgufValueType.INT64: return o.i64(typeof v === 'bigint' ? v : num());
    case GgufValueType.BOOL: return o.u8(v === true ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw new ImError('IM_VALIDATION', `${key}: STRING needs a string`);
      return o.string(v);
    default: throw new ImError('IM_VALIDATION', `${key}: unknown metadata type ${String(type)}`);
  }
}

export function writeGguf(input: GgufWriteInput): Uint8Array {
  const alignment = input.alignment ?? 32;
  const metadata = new Map(input.metadata);
  if (alignment !== 32) metadata.set('general.alignment', { type: GgufValueType.UINT32, value: alignment });
  const o = new Out();
  o.u32(GGUF_MAGIC);
  o.u32(3);
  o.u64(input.tensors.length);
  o.u64(metadata.size);
  for (const [key, v] of metadata) {
    o.string(key);
    o.u32(v.type);
    if (v.type === GgufValueType.ARRAY) {
      o.u32(v.itemType);
      o.u64(v.value.length);
      for (const x of v.value) writeScalar(o, v.itemType, x, key);
    } else {
      writeScalar(o, v.type, v.value, key);
    }
  }
  let offset = 0;
  for (const t of input.tensors) {
    const expected = tensorBytes(t.type, t.dims);
    if (expected !== t.data.length) throw new ImError('IM_VALIDATION', `tensor ${t.name}: ${t.data.length} bytes of data for ${t.dims.join('×')} ${GgmlType[t.type] ?? t.type} (${String(expected)} expected)`);
    o.string(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(d);
    o.u32(t.type);
    o.u64(offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  o.pad(alignment);
  for (const t of input.tensors) {
    o.bytes(t.data);
    o.pad(alignment);
  }
  return o.result();
}

/** f32 values as the bytes of a tensor of the given type (F32, F16, Q8_0). */
export function encodeTensor(values: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(values.slice().buffer);
    case GgmlType.F16: {
      const out = new Uint8Array(values.length * 2);
      const v = new DataView(out.buffer);
      for (let i = 0; i < values.length; i++) v.setUint16(i * 2, f32ToF16Bits(values[i]!), true);
      return out;
    }
    case GgmlType.Q8_0: {
      if (values.length % 32 !== 0) throw new ImError('IM_VALIDATION', 'Q8_0 needs a multiple of 32 values');
      const out = new Uint8Array((values.length / 32) * 34);
      const v = new DataView(out.buffer);
      for (let b = 0; b < values.length / 32; b++) {
        let amax = 0;
        for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]!));
        // As ggml's quantize_row_q8_0: d = amax/127, q = round(x/d).
        const d = amax / 127;
        const inv = d === 0 ? 0 : 1 / d;
        v.setUint16(b * 34, f32ToF16Bits(d), true);
        for (let j = 0; j < 32; j++) {
          // roundf: halves away from zero.
          const x = values[b * 32 + j]! * inv;
          v.setInt8(b * 34 + 2 + j, Math.sign(x) * Math.round(Math.abs(x)));
        }
      }
      return out;
    }
    default:
      throw new ImError('IM_VALIDATION', `encodeTensor writes F32, F16 and Q8_0, not ${GgmlType[type] ?? type}`);
  }
}

