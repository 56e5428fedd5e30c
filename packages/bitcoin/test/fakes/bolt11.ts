// Builds BOLT11 strings the clients can read (bech32 checksum, timestamp,
// payment hash, expiry, description). The signature is random bytes: the
// fakes never check it and neither do the clients.
import { bech32Encode } from '../../src/lightning/bolt11.js';
import { randomHex } from './server.js';

function toWords(bytes: Buffer): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push((acc >> bits) & 31);
    }
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31);
  return out;
}

function intWords(n: number, min = 1): number[] {
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 32)) out.unshift(v % 32);
  while (out.length < min) out.unshift(0);
  return out;
}

function tag(type: number, data: number[]): number[] {
  return [type, data.length >> 5, data.length & 31, ...data];
}

export function makeInvoice(q: { paymentHash: string; amountMsat: bigint; expirySec?: number; timestamp?: number; memo?: string }): string {
  const timestamp = q.timestamp ?? Math.floor(Date.now() / 1000);
  const words = [
    ...intWords(timestamp, 7),
    ...tag(1, toWords(Buffer.from(q.paymentHash, 'hex'))),
    ...tag(13, toWords(Buffer.from(q.memo ?? 'idlemesh', 'utf8'))),
    ...tag(6, intWords(q.expirySec ?? 3600)),
    ...toWords(Buffer.from(randomHex(65), 'hex')),
  ];
  // 1 msat = 10 pico-BTC.
  return bech32Encode(`lnbcrt${q.amountMsat * 10n}p`, words);
}
