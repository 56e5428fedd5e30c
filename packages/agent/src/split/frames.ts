/**
 * Length-prefixed frames (u32 big-endian length, then the bytes): the
 * tunnel's unit on the wire. Pure: no I/O.
 */

/** One frame around `payload`. */
export function frame(payload: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(payload.length);
  return Buffer.concat([len, payload]);
}

/**
 * Reassembles frames from a byte stream cut anywhere. A length above
 * `maxLength` throws: the peer is not speaking this protocol, and buffering
 * an attacker-chosen length would be a memory hole.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxLength: number) {}

  /** Adds bytes without cutting frames (take() them later). */
  append(data: Buffer): void {
    this.chunks.push(data);
    this.buffered += data.length;
  }

  /** Adds bytes; returns every frame now complete. */
  push(data: Buffer): Buffer[] {
    this.append(data);
    const out: Buffer[] = [];
    for (;;) {
      const f = this.take();
      if (!f) return out;
      out.push(f);
    }
  }

  /** The next complete frame, if there is one. */
  take(): Buffer | undefined {
    if (this.buffered < 4) return undefined;
    const head = this.peek(4);
    const len = head.readUInt32BE(0);
    if (len > this.maxLength) throw new Error(`frame of ${len} bytes exceeds ${this.maxLength}`);
    if (this.buffered < 4 + len) return undefined;
    const all = this.peek(4 + len);
    this.consume(4 + len);
    return all.subarray(4);
  }

  /** The bytes not yet part of a complete frame. */
  rest(): Buffer {
    const r = Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return r;
  }

  private peek(n: number): Buffer {
    if ((this.chunks[0]?.length ?? 0) < n) this.chunks = [Buffer.concat(this.chunks)];
    return (this.chunks[0] as Buffer).subarray(0, n);
  }

  private consume(n: number): void {
    const first = this.chunks[0] as Buffer; // peek(n) left at least n bytes in chunks[0]
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
  }
}
