/**
 * Where a stage gets tensors from: the parsed header, and one tensor's bytes
 * on demand. In memory (ggufFromBytes) or from a file (file.ts).
 */
import { ImError } from '@idlemesh/protocol';
import { parseGgufHeader } from './reader.js';
import type { GgufHeader, GgufTensorInfo } from './types.js';

export interface GgufSource {
  readonly header: GgufHeader;
  tensorBytes(t: GgufTensorInfo): Promise<Uint8Array>;
}

export function ggufFromBytes(bytes: Uint8Array): GgufSource {
  const header = parseGgufHeader(bytes);
  return {
    header,
    async tensorBytes(t: GgufTensorInfo): Promise<Uint8Array> {
      if (t.bytes === undefined) throw new ImError('IM_GGUF_INVALID', `tensor ${t.name}: type ${t.type} has no known size`);
      const at = header.dataOffset + t.offset;
      return bytes.subarray(at, at + t.bytes);
    },
  };
}
