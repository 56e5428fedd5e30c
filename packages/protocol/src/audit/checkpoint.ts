/**
 * c2sp.org/tlog-checkpoint note bodies:
 *
 *   <origin>\n<tree size, decimal>\n<base64 root hash>\n[<extension line>\n]*
 *
 * The body is what gets signed (see note.ts); these functions only format
 * and parse it, strictly, so one tree head has exactly one spelling.
 */

import { decodeBase64Strict, encodeBase64, isValidNoteText, malformed } from './encoding.js';
import { MERKLE_HASH_BYTES } from './merkle.js';

export interface Checkpoint {
  /** The log's identity, e.g. `coordinator.example.com/audit`; also the log's key name. */
  readonly origin: string;
  /** Number of leaves in the tree. */
  readonly size: number;
  /** RFC 6962 root hash at `size` (32 bytes). */
  readonly rootHash: Uint8Array;
  /** Opaque extra lines, signed with the rest. The spec advises against them. */
  readonly extensions?: readonly string[];
}

const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

function checkLine(line: string, what: string): void {
  if (line.length === 0) malformed(`checkpoint ${what} is empty`);
  if (line.includes('\n') || !isValidNoteText(line)) malformed(`checkpoint ${what} has a newline or control character`);
}

/** The checkpoint note body for a tree head. */
export function formatCheckpoint(cp: Checkpoint): string {
  checkLine(cp.origin, 'origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) malformed(`checkpoint size ${cp.size} is not a non-negative integer`);
  if (cp.rootHash.length !== MERKLE_HASH_BYTES) malformed('checkpoint root hash is not 32 bytes');
  const ext = cp.extensions ?? [];
  ext.forEach((line) => checkLine(line, 'extension line'));
  return [cp.origin, String(cp.size), encodeBase64(cp.rootHash), ...ext].join('\n') + '\n';
}

/**
 * Parse a checkpoint note body (the text of a signed note, not the whole
 * note). Throws IM_VALIDATION on anything but the canonical form.
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) malformed('checkpoint does not end with a newline');
  if (!isValidNoteText(text)) malformed('checkpoint has a control character or invalid Unicode');
  const lines = text.slice(0, -1).split('\n');
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin === undefined || sizeText === undefined || rootText === undefined) malformed('checkpoint has fewer than three lines');
  if (origin.length === 0) malformed('checkpoint origin is empty');
  if (!DECIMAL.test(sizeText)) malformed(`checkpoint size ${JSON.stringify(sizeText)} is not a canonical decimal`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) malformed(`checkpoint size ${sizeText} is too large`);
  const rootHash = decodeBase64Strict(rootText, 'checkpoint root hash');
  if (rootHash.length !== MERKLE_HASH_BYTES) malformed(`checkpoint root hash is ${rootHash.length} bytes, not 32`);
  if (extensions.some((l) => l.length === 0)) malformed('checkpoint has an empty extension line');
  return extensions.length > 0 ? { origin, size, rootHash, extensions } : { origin, size, rootHash };
}
