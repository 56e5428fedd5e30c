import { decode } from 'light-bolt11-decoder';
import { ImError } from '@idlemesh/protocol';
import type { BitcoinNetwork } from './network.js';

/** What idlemesh needs from a BOLT11 invoice to pay a Lightning withdrawal. */
export interface DecodedInvoice {
  /** The invoice as given, lower-cased and without a `lightning:` prefix. */
  invoice: string;
  /** 32-byte payment hash, hex. */
  paymentHash: string;
  /** Absent for "any amount" invoices. */
  amountMsat?: bigint;
  /** Unix ms. */
  createdAt: number;
  /** Unix ms; BOLT11's default expiry is one hour. */
  expiresAt: number;
  description?: string;
  network: BitcoinNetwork;
}

// BOLT11 currency prefixes; signet invoices use lntbs, regtest lnbcrt.
const PREFIXES: Record<string, BitcoinNetwork> = { bc: 'mainnet', tb: 'testnet', tbs: 'signet', bcrt: 'regtest' };
const DEFAULT_EXPIRY_SECONDS = 3600;

function invalid(message: string, details?: unknown): ImError {
  return new ImError('IM_LN_INVALID_INVOICE', message, details === undefined ? {} : { details });
}

/**
 * Decodes a BOLT11 invoice and checks it is for `network` (IM_BTC_WRONG_NETWORK) and still open at `nowMs`
 * (IM_LN_INVALID_INVOICE, "expired"). The signature is not verified: the Lightning node paying it does that.
 */
export function decodeInvoice(bolt11: string, network: BitcoinNetwork, nowMs: number): DecodedInvoice {
  if (typeof bolt11 !== 'string') throw invalid('the invoice must be a string');
  if (!Number.isFinite(nowMs)) throw new ImError('IM_VALIDATION', `nowMs ${nowMs} is not a time in ms`);
  const invoice = bolt11.trim().replace(/^lightning:/i, '').toLowerCase();
  let sections: ReturnType<typeof decode>['sections'];
  try {
    sections = decode(invoice).sections;
  } catch (err) {
    throw invalid(`not a BOLT11 invoice: ${err instanceof Error ? err.message : String(err)}`);
  }
  const value = (name: string): unknown => {
    for (const s of sections) if (s.name === name && 'value' in s) return s.value;
    return undefined;
  };
  const prefix = sections.find((s) => s.name === 'coin_network')?.letters ?? '';
  const invoiceNetwork = PREFIXES[prefix];
  if (invoiceNetwork === undefined) throw invalid(`invoice currency prefix "ln${prefix}" is not bitcoin's`);
  if (invoiceNetwork !== network) {
    throw new ImError('IM_BTC_WRONG_NETWORK', `this is a ${invoiceNetwork} invoice (ln${prefix}…); this coordinator pays on ${network}`, {
      details: { expected: network, actual: invoiceNetwork },
    });
  }
  const paymentHash = value('payment_hash');
  if (typeof paymentHash !== 'string' || !/^[0-9a-f]{64}$/.test(paymentHash)) throw invalid('the invoice has no 32-byte payment hash');
  const timestamp = value('timestamp');
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) throw invalid('the invoice has no timestamp');
  const expiry = value('expiry') ?? DEFAULT_EXPIRY_SECONDS;
  if (typeof expiry !== 'number' || !Number.isSafeInteger(expiry)) throw invalid('the invoice expiry does not decode');
  const createdAt = timestamp * 1000;
  const expiresAt = (timestamp + expiry) * 1000;
  if (nowMs >= expiresAt) {
    throw invalid(`the invoice expired at ${new Date(expiresAt).toISOString()}; ask for a fresh one`, { expiresAt, nowMs });
  }
  const out: DecodedInvoice = { invoice, paymentHash, createdAt, expiresAt, network: invoiceNetwork };
  const amount = value('amount');
  if (amount !== undefined) {
    if (typeof amount !== 'string' || !/^\d+$/.test(amount) || BigInt(amount) <= 0n) throw invalid('the invoice amount does not decode');
    out.amountMsat = BigInt(amount);
  }
  const description = value('description');
  if (typeof description === 'string') out.description = description;
  return out;
}
