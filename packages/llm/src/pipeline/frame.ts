/**
 * Frames between pipeline stages: token ids into the first stage, hidden
 * states (f16) from stage to stage, logits (f32) out of the last. Rows are
 * consecutive positions [position, position + count).
 *
 * Wire format, version 1, little-endian, 24-byte header then the payload:
 *
 *   0  "IMPF"      magic
 *   4  u8 version  1
 *   5  u8 kind     1 tokens, 2 hidden, 3 logits
 *   6  u8 dtype    1 u32 (tokens), 2 f16 (hidden), 3 f32 (hidden or logits)
 *   7  u8 flags    bit 0: the last stage returns logits for every row, else only the last row; other bits 0
 *   8  u32 position
 *   12 u32 count   rows (≥ 1)
 *   16 u32 width   values per row (1 for tokens, hidden size, vocabulary size)
 *   20 u32 bytes   payload length = count × width × size of dtype = frame length − 24
 *
 * A frame that breaks any of this is IM_PIPELINE_FRAME, never a guess.
 * Hidden states are f16 on the wire: the forward pass rounds the residual
 * stream to f16 after every block (see stage.ts), so the conversion is exact.
 */
import { ImError } from '@idlemesh/protocol';
import { decodeF16, encodeF16 } from '../gguf/f16.js';

export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 24;
const MAGIC = 0x46504d49; // "IMPF"
/** Caps that keep a corrupt header from asking for absurd allocations. */
const MAX_ROWS = 1 << 20;
const MAX_WIDTH = 1 << 22;
const MAX_PAYLOAD = 1 << 30;

export type Frame =
  | { kind: 'tokens'; position: number; tokens: Uint32Array; allLogits: boolean }
  | { kind: 'hidden'; position: number; count: number; width: number; hidden: Float32Array; allLogits: boolean }
  | { kind: 'logits'; position: number; count: number; width: number; logits: Float32Array };

const KIND = { tokens: 1, hidden: 2, logits: 3 } as const;
const DTYPE = { u32: 1, f16: 2, f32: 3 } as const;

function bad(message: string): ImError {
  return new ImError('IM_PIPELINE_FRAME', message);
}

export function frameRows(f: Frame): number {
  return f.kind === 'tokens' ? f.tokens.length : f.count;
}

export interface EncodeOptions {
  /** Hidden states as f16 (default, exact for the pipeline's residual stream) or f32. */
  hiddenType?: 'f16' | 'f32';
}

export function encodeFrame(f: Frame, opts: EncodeOptions = {}): Uint8Array {
  let kind: number, dtype: number, count: number, width: number, payload: Uint8Array;
  switch (f.kind) {
    case 'tokens':
      kind = KIND.tokens; dtype = DTYPE.u32; count = f.tokens.length; width = 1;
      payload = new Uint8Array(f.tokens.buffer, f.tokens.byteOffset, f.tokens.byteLength);
      break;
    case 'hidden': {
      kind = KIND.hidden; count = f.count; width = f.width;
      if (f.hidden.length !== count * width) throw bad(`hidden frame: ${f.hidden.length} values for ${count}×${width}`);
      if (opts.hiddenType === 'f32') {
        dtype = DTYPE.f32;
        payload = new Uint8Array(f.hidden.buffer, f.hidden.byteOffset, f.hidden.byteLength);
      } else {
        dtype = DTYPE.f16;
        const h = encodeF16(f.hidden);
        payload = new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
      }
      break;
    }
    case 'logits':
      kind = KIND.logits; dtype = DTYPE.f32; count = f.count; width = f.width;
      if (f.logits.length !== count * width) throw bad(`logits frame: ${f.logits.length} values for ${count}×${width}`);
      payload = new Uint8Array(f.logits.buffer, f.logits.byteOffset, f.logits.byteLength);
      break;
  }
  checkSizes(count, width, f.position);
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, FRAME_VERSION);
  v.setUint8(5, kind);
  v.setUint8(6, dtype);
  v.setUint8(7, f.kind !== 'logits' && f.allLogits ? 1 : 0);
  v.setUint32(8, f.position, true);
  v.setUint32(12, count, true);
  v.setUint32(16, width, true);
  v.setUint32(20, payload.length, true);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

function checkSizes(count: number, width: number, position: number): void {
  if (!Number.isInteger(position) || position < 0 || position > 0xffffffff) throw bad(`position ${position} is not a u32`);
  if (!Number.isInteger(count) || count < 1 || count > MAX_ROWS) throw bad(`${count} rows (1 to ${MAX_ROWS})`);
  if (!Number.isInteger(width) || width < 1 || width > MAX_WIDTH) throw bad(`width ${width} (1 to ${MAX_WIDTH})`);
}

export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length < FRAME_HEADER_BYTES) throw bad(`a frame of ${bytes.length} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0, true) !== MAGIC) throw bad('not a pipeline frame (bad magic)');
  const version = v.getUint8(4);
  if (version !== FRAME_VERSION) throw bad(`frame version ${version}; this stage speaks ${FRAME_VERSION}`);
  const kind = v.getUint8(5);
  const dtype = v.getUint8(6);
  const flags = v.getUint8(7);
  const position = v.getUint32(8, true);
  const count = v.getUint32(12, true);
  const width = v.getUint32(16, true);
  const payloadBytes = v.getUint32(20, true);
  if ((flags & ~1) !== 0) throw bad(`unknown frame flags ${flags}`);
  checkSizes(count, width, position);
  const size = dtype === DTYPE.u32 || dtype === DTYPE.f32 ? 4 : dtype === DTYPE.f16 ? 2 : 0;
  const ok = (kind === KIND.tokens && dtype === DTYPE.u32 && width === 1)
    || (kind === KIND.hidden && (dtype === DTYPE.f16 || dtype === DTYPE.f32))
    || (kind === KIND.logits && dtype === DTYPE.f32 && flags === 0);
  if (!ok) throw bad(`frame kind ${kind} with dtype ${dtype}, width ${width} and flags ${flags} is not a valid combination`);
  const expected = count * width * size;
  if (expected > MAX_PAYLOAD) throw bad(`a payload of ${expected} bytes is over the ${MAX_PAYLOAD}-byte limit`);
  if (payloadBytes !== expected) throw bad(`the header says ${payloadBytes} payload bytes; ${count}×${width} values need ${expected}`);
  if (bytes.length !== FRAME_HEADER_BYTES + expected) throw bad(`the frame is ${bytes.length} bytes; its header says ${FRAME_HEADER_BYTES + expected} (cut or padded)`);
  // Copy: the payload may sit at an offset that a typed array cannot view, and the caller may reuse its buffer.
  const payload = bytes.slice(FRAME_HEADER_BYTES);
  const allLogits = (flags & 1) === 1;
  if (kind === KIND.tokens) return { kind: 'tokens', position, tokens: new Uint32Array(payload.buffer), allLogits };
  if (kind === KIND.logits) return { kind: 'logits', position, count, width, logits: new Float32Array(payload.buffer) };
  const hidden = dtype === DTYPE.f32 ? new Float32Array(payload.buffer) : decodeF16(new Uint16Array(payload.buffer));
  return { kind: 'hidden', position, count, width, hidden, allLogits };
}
