/**
 * GGUF from a file: reads the header (growing the read until it parses) and
 * then only the byte ranges of the tensors asked for, so a pipeline stage
 * touches only its own layers of a model that may not fit in memory whole.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ImError } from '@idlemesh/protocol';
import { GgufNeedMore, parseGgufHeader } from './reader.js';
import type { GgufSource } from './source.js';
import type { GgufHeader, GgufTensorInfo } from './types.js';

export interface GgufFile extends GgufSource {
  readonly path: string;
  readonly size: number;
  close(): Promise<void>;
}

export async function openGgufFile(path: string): Promise<GgufFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    const size = (await fh.stat()).size;
    let want = Math.min(size, 1 << 20);
    let header: GgufHeader | undefined;
    while (!header) {
      const buf = new Uint8Array(want);
      const { bytesRead } = await fh.read(buf, 0, want, 0);
      try {
        header = parseGgufHeader(buf.subarray(0, bytesRead), size);
      } catch (err) {
        if (!(err instanceof GgufNeedMore)) throw err;
        if (err.needed > size) throw new ImError('IM_GGUF_INVALID', `${path}: the GGUF header runs past the end of the file (${size} bytes): truncated or corrupt`);
        want = Math.min(size, Math.max(want * 2, err.needed));
      }
    }
    const h = header;
    return {
      path,
      size,
      header: h,
      async tensorBytes(t: GgufTensorInfo): Promise<Uint8Array> {
        if (t.bytes === undefined) throw new ImError('IM_GGUF_INVALID', `tensor ${t.name}: type ${t.type} has no known size`);
        const buf = new Uint8Array(t.bytes);
        const { bytesRead } = await fh.read(buf, 0, t.bytes, h.dataOffset + t.offset);
        if (bytesRead !== t.bytes) throw new ImError('IM_GGUF_INVALID', `${path}: tensor ${t.name} is cut short (${bytesRead} of ${t.bytes} bytes)`);
        return buf;
      },
      close: () => fh.close(),
    };
  } catch (err) {
    await fh.close();
    throw err;
  }
}
