/**
 * A stream capture that keeps the first `limit` bytes (UTF-8) and drops the
 * rest, cutting on a character boundary so the kept text decodes cleanly.
 */
const encoder = new TextEncoder();

export class CappedText {
  private parts: string[] = [];
  private bytes = 0;
  private full = false;

  constructor(private readonly limit: number) {}

  write(text: string): void {
    if (this.full || text.length === 0) return;
    const room = this.limit - this.bytes;
    // A UTF-16 unit is at most 3 UTF-8 bytes, so short texts skip the encoding.
    if (text.length * 3 <= room) {
      this.parts.push(text);
      this.bytes += encoder.encode(text).length;
      return;
    }
    const size = encoder.encode(text).length;
    if (size <= room) {
      this.parts.push(text);
      this.bytes += size;
      return;
    }
    this.parts.push(cut(text, room));
    this.bytes = this.limit;
    this.full = true;
  }

  text(): string {
    return this.parts.join('');
  }
}

/** The longest prefix of `text` that encodes to at most `maxBytes` bytes. */
function cut(text: string, maxBytes: number): string {
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const cp = text.codePointAt(i) as number;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > maxBytes) break;
    bytes += n;
    i += cp > 0xffff ? 2 : 1;
  }
  return text.slice(0, i);
}
