// node:http(s) rather than fetch: LND and clnrest serve self-signed
// certificates that must be pinned (`ca`), and their streams are read line
// by line.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { ImError } from '@idlemesh/protocol';

export interface OpenRequest {
  base: string;
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: unknown;
  ca?: string;
  signal: AbortSignal;
}

export function open(r: OpenRequest): Promise<IncomingMessage> {
  const url = new URL(r.path, r.base);
  const body = r.body === undefined ? undefined : JSON.stringify(r.body);
  const headers = body === undefined ? r.headers : { ...r.headers, 'content-type': 'application/json' };
  return new Promise((resolve, reject) => {
    // One connection per request: streams are cut by aborting, and an aborted
    // request must not leave anything behind in a keep-alive pool.
    const opts: https.RequestOptions = { method: r.method, headers, signal: r.signal, agent: false };
    if (r.ca !== undefined) opts.ca = r.ca;
    const req = (url.protocol === 'https:' ? https : http).request(url, opts, (res) => {
      // Aborting a finished or abandoned read surfaces here; readers see the end of the stream instead.
      res.on('error', () => undefined);
      resolve(res);
    });
    req.on('error', (cause) => reject(unavailable(`${r.method} ${url.pathname}`, cause)));
    req.end(body);
  });
}

export function unavailable(what: string, cause?: unknown): ImError {
  return new ImError('IM_LN_UNAVAILABLE', `${what}: Lightning node unreachable`, cause === undefined ? {} : { cause });
}

export function lnError(what: string, details: Record<string, unknown>): ImError {
  const msg = typeof details['message'] === 'string' ? `: ${details['message']}` : '';
  return new ImError('IM_LN_ERROR', `${what}${msg}`, { details });
}

export async function readText(res: IncomingMessage, what: string): Promise<string> {
  try {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (cause) {
    throw unavailable(what, cause);
  }
}

export function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw lnError(what, { reason: 'answer is not JSON', body: text.slice(0, 200) });
  }
}

export type LineVerdict = 'more' | 'stop' | 'soon';
export type StreamEnd = 'stop' | 'eof' | 'deadline' | 'broken';

/** After a 'soon' verdict, how long to keep reading for a backlog that arrives in one burst. */
export const QUIET_MS = 100;

/**
 * Reads newline-delimited JSON until the handler says stop, the stream ends
 * or breaks, or `waitMs` passes. Errors thrown by the handler propagate.
 */
export async function consumeLines(res: IncomingMessage, ctl: AbortController, waitMs: number, onLine: (line: string) => LineVerdict): Promise<StreamEnd> {
  let ours: StreamEnd | undefined;
  const stopAt = (end: StreamEnd, ms: number): NodeJS.Timeout => setTimeout(() => { ours = end; ctl.abort(); }, ms);
  let timer = stopAt('deadline', waitMs);
  let soon = false;
  let buf = '';
  try {
    for await (const chunk of res) {
      buf += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line === '') continue;
        const v = onLine(line);
        if (v === 'stop') {
          ours = 'stop';
          ctl.abort();
          return 'stop';
        }
        if (v === 'soon' && !soon) {
          soon = true;
          clearTimeout(timer);
          timer = stopAt('deadline', QUIET_MS);
        }
      }
    }
    return ours ?? 'eof';
  } catch (err) {
    if (ours !== undefined) return ours;
    if (err instanceof ImError) {
      ctl.abort();
      throw err;
    }
    return 'broken';
  } finally {
    clearTimeout(timer);
  }
}

/** Positive integers as decimal strings: cursors and indexes. */
export function parseIndex(s: string, what: string): bigint {
  if (!/^\d{1,20}$/.test(s)) throw new ImError('IM_BAD_REQUEST', `${what} must be a decimal index`, { details: { value: s } });
  return BigInt(s);
}

export function checkHash(hash: string): void {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new ImError('IM_BAD_REQUEST', 'payment hash must be 64 lowercase hex characters', { details: { hash } });
}

export function checkInvoiceRequest(q: { amountMsat: bigint; expirySec: number }): void {
  if (typeof q.amountMsat !== 'bigint' || q.amountMsat <= 0n || q.amountMsat >= 2n ** 63n) {
    throw new ImError('IM_BTC_INVALID_AMOUNT', 'invoice amount must be a positive whole number of msat');
  }
  if (!Number.isSafeInteger(q.expirySec) || q.expirySec < 1) throw new ImError('IM_BAD_REQUEST', 'expirySec must be a whole number ≥ 1');
}

export function checkPayRequest(q: { maxFeeMsat: bigint; timeoutSec: number }): void {
  if (typeof q.maxFeeMsat !== 'bigint' || q.maxFeeMsat < 0n) throw new ImError('IM_BTC_INVALID_AMOUNT', 'maxFeeMsat must be a whole number of msat ≥ 0');
  if (!Number.isSafeInteger(q.timeoutSec) || q.timeoutSec < 1) throw new ImError('IM_BAD_REQUEST', 'timeoutSec must be a whole number ≥ 1');
}
