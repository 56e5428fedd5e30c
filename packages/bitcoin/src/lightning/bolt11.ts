// Just enough BOLT11 to know which payment an invoice is for and when it
// expires: the bech32 checksum, the timestamp, the `p` (payment hash) and `x`
// (expiry) fields. The signature is not checked — the paying node does that.
import { ImError } from '@idlemesh/protocol';

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

export interface Bolt11Summary {
  paymentHash: string;
  /** UNIX seconds. */
  timestamp: number;
  expirySec: number;
  /** ms since the epoch. */
  expiresAt: number;
}

function polymod(values: number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i] as number;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (const c of hrp) out.push(c.charCodeAt(0) >> 5);
  out.push(0);
  for (const c of hrp) out.push(c.charCodeAt(0) & 31);
  return out;
}

/** bech32 (not bech32m) without the 90-character limit, as BOLT11 uses it. */
export function bech32Decode(s: string): { hrp: string; words: number[] } | undefined {
  if (s !== s.toLowerCase() && s !== s.toUpperCase()) return undefined;
  const lower = s.toLowerCase();
  const sep = lower.lastIndexOf('1');
  if (sep < 1 || sep + 7 > lower.length) return undefined;
  const hrp = lower.slice(0, sep);
  const words: number[] = [];
  for (const c of lower.slice(sep + 1)) {
    const v = CHARSET.indexOf(c);
    if (v < 0) return undefined;
    words.push(v);
  }
  if (polymod([...hrpExpand(hrp), ...words]) !== 1) return undefined;
  return { hrp, words: words.slice(0, -6) };
}

export function bech32Encode(hrp: string, words: number[]): string {
  const mod = polymod([...hrpExpand(hrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (mod >>> (5 * (5 - i))) & 31);
  return `${hrp}1${[...words, ...checksum].map((w) => CHARSET[w]).join('')}`;
}

function wordsToInt(words: number[]): number {
  return words.reduce((acc, w) => acc * 32 + w, 0);
}

function wordsToHex(words: number[], bytes: number): string {
  let acc = 0n;
  for (const w of words) acc = (acc << 5n) | BigInt(w);
  const extra = BigInt(words.length * 5 - bytes * 8);
  return (acc >> extra).toString(16).padStart(bytes * 2, '0');
}

/** Throws IM_LN_INVALID_INVOICE for anything that is not a well-formed BOLT11 with a payment hash. */
export function summarizeBolt11(invoice: string): Bolt11Summary {
  const bad = (why: string): ImError => new ImError('IM_LN_INVALID_INVOICE', `not a valid BOLT11 invoice: ${why}`);
  const d = bech32Decode(invoice.trim());
  if (d === undefined) throw bad('bech32 encoding or checksum');
  if (!d.hrp.startsWith('ln')) throw bad('prefix is not ln…');
  const SIG = 104; // 65-byte signature
  if (d.words.length < 7 + SIG) throw bad('too short');
  const timestamp = wordsToInt(d.words.slice(0, 7));
  let paymentHash: string | undefined;
  let expirySec = 3600; // BOLT11 default
  const tagged = d.words.slice(7, d.words.length - SIG);
  for (let i = 0; i + 3 <= tagged.length;) {
    const type = tagged[i] as number;
    const len = (tagged[i + 1] as number) * 32 + (tagged[i + 2] as number);
    const data = tagged.slice(i + 3, i + 3 + len);
    if (data.length !== len) throw bad('truncated field');
    if (type === 1 && len === 52) paymentHash = wordsToHex(data, 32); // 'p'
    if (type === 6) expirySec = wordsToInt(data); // 'x'
    i += 3 + len;
  }
  if (paymentHash === undefined) throw bad('no payment hash');
  return { paymentHash, timestamp, expirySec, expiresAt: (timestamp + expirySec) * 1000 };
}
