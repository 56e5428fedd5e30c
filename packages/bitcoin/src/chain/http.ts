// One place that turns fetch outcomes into the chain error codes: anything
// that says "could not reach / overloaded" is IM_BTC_CHAIN_UNAVAILABLE
// (retryable), anything that answered but outside the API is
// IM_BTC_CHAIN_BAD_RESPONSE.
import { ImError } from '@idlemesh/protocol';
import type { z } from 'zod';

export interface HttpAnswer {
  status: number;
  text: string;
}

/**
 * `passStatus` lists statuses the caller interprets itself (bitcoind answers
 * RPC errors with HTTP 500 and a JSON-RPC error body).
 */
export async function send(url: string, init: RequestInit & { timeoutMs: number; passStatus?: number[] }, what: string): Promise<HttpAnswer> {
  const { timeoutMs, passStatus, ...rest } = init;
  let res: Response;
  try {
    res = await fetch(url, { ...rest, signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new ImError('IM_BTC_CHAIN_UNAVAILABLE', `${what}: chain backend unreachable`, { details: { url: redact(url) }, cause });
  }
  let text: string;
  try {
    text = await res.text();
  } catch (cause) {
    throw new ImError('IM_BTC_CHAIN_UNAVAILABLE', `${what}: connection lost while reading the answer`, { details: { url: redact(url) }, cause });
  }
  // 429 and 5xx are the backend's own way of saying "later".
  if ((res.status >= 500 || res.status === 429) && !(passStatus ?? []).includes(res.status)) {
    throw new ImError('IM_BTC_CHAIN_UNAVAILABLE', `${what}: backend answered HTTP ${res.status}`, {
      details: { url: redact(url), status: res.status, body: text.slice(0, 500) },
    });
  }
  return { status: res.status, text };
}

export function badResponse(what: string, details: Record<string, unknown>, cause?: unknown): ImError {
  return new ImError('IM_BTC_CHAIN_BAD_RESPONSE', `${what}: answer does not follow the API`, cause === undefined ? { details } : { details, cause });
}

export function parseJson<T>(text: string, schema: z.ZodType<T>, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw badResponse(what, { reason: 'not JSON', body: text.slice(0, 200) }, cause);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw badResponse(what, { issues: parsed.error.issues.slice(0, 5) });
  return parsed.data;
}

/** Sats from an Esplora JSON integer: refuses anything that is not a safe non-negative integer. */
export function satsFromJson(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw badResponse(what, { reason: 'value is not a whole number of sats', value: n });
  return BigInt(n);
}

/**
 * Sats from bitcoind's BTC amounts (JSON numbers with up to 8 decimals).
 * toFixed(8) rounds the parsed double back to the decimal bitcoind printed:
 * exact for every amount below 21e6 BTC, where a double's error is far under
 * half a sat.
 */
export function satsFromBtc(n: number, what: string): bigint {
  if (!Number.isFinite(n) || Math.abs(n) > 21e6) throw badResponse(what, { reason: 'amount out of range', value: n });
  const fixed = Math.abs(n).toFixed(8).replace('.', '');
  const sats = BigInt(fixed);
  return n < 0 ? -sats : sats;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
