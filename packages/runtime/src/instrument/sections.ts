/**
 * Drops every custom section (id 0) from a module's bytes. Names, producers
 * and debug info are useless to a metered run, and stripping them means the
 * memory gets binaryen's default internal name and no user section can pose
 * as the runtime's own metadata section.
 */
export function stripCustomSections(bytes: Uint8Array): Uint8Array {
  const keep: Uint8Array[] = [bytes.subarray(0, 8)];
  let pos = 8;
  while (pos < bytes.length) {
    const start = pos;
    const id = bytes[pos++];
    let size = 0;
    let shift = 0;
    for (;;) {
      const b = bytes[pos++];
      if (b === undefined) throw new Error('truncated section header');
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    const end = pos + size;
    if (end > bytes.length) throw new Error('section extends beyond end of module');
    if (id !== 0) keep.push(bytes.subarray(start, end));
    pos = end;
  }
  const out = new Uint8Array(keep.reduce((n, s) => n + s.length, 0));
  let o = 0;
  for (const s of keep) {
    out.set(s, o);
    o += s.length;
  }
  return out;
}
