import { Base64, ImError, base64ToBytes, fromHex, utf8 } from '@idlemesh/protocol';

/**
 * Parses a JSON-lines inputs file into one byte array per task. Each non-empty
 * line is a JSON value:
 * - a string: its UTF-8 bytes (`"hello"` → `hello`);
 * - `{"base64": "…"}` or `{"hex": "…"}`: those bytes;
 * - anything else (number, array, other object): the UTF-8 bytes of the
 *   line's JSON text, so a module that reads JSON gets it verbatim.
 * Throws IM_INPUT_INVALID naming the (1-based) line on the first bad line.
 */
export function parseInputsJsonl(text: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    out.push(parseInputLine(line, i + 1));
  }
  return out;
}

function parseInputLine(line: string, lineNo: number): Uint8Array {
  const bad = (why: string): ImError => new ImError('IM_INPUT_INVALID', `line ${lineNo}: ${why}`, { details: { line: lineNo } });
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof value === 'string') return utf8(value);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const obj = value as Record<string, unknown>;
    if (keys.length === 1 && keys[0] === 'base64') {
      const b64 = obj.base64;
      if (typeof b64 !== 'string' || !Base64.safeParse(b64).success || b64.length % 4 === 1) throw bad('"base64" must be a base64 string');
      return base64ToBytes(b64);
    }
    if (keys.length === 1 && keys[0] === 'hex') {
      const hex = obj.hex;
      if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw bad('"hex" must be a string of hex digit pairs');
      return fromHex(hex);
    }
  }
  return utf8(line);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A task output (base64) as text when it is valid UTF-8, else null. */
export function decodeUtf8(b64: string): string | null {
  try {
    return strictUtf8.decode(base64ToBytes(b64));
  } catch {
    return null;
  }
}

/** A task output (base64) for display: its UTF-8 text, or `base64:<…>` when it is not text. */
export function decodeOutput(b64: string): string {
  return decodeUtf8(b64) ?? `base64:${b64}`;
}
