// LND REST (grpc-gateway): https://lightning.engineering/api-docs/api/lnd/
// Streams are newline-delimited `{"result": …}` / `{"error": …}` objects;
// int64 fields are JSON strings; bytes fields are base64.
import type { IncomingMessage } from 'node:http';
import { ImError } from '@idlemesh/protocol';
import { z } from 'zod';
import { summarizeBolt11 } from './bolt11.js';
import {
  checkHash, checkInvoiceRequest, checkPayRequest, consumeLines, lnError, open, parseIndex, parseJsonText, readText, unavailable,
} from './http.js';
import type { CreatedInvoice, InvoiceRequest, LightningNode, PaymentStatus, PayRequest, SettledInvoice } from './types.js';

export interface LndOptions {
  /** e.g. https://127.0.0.1:8080 */
  url: string;
  macaroonHex: string;
  /** LND's tls.cert, to trust its self-signed certificate. */
  tlsCertPem?: string;
  timeoutMs?: number;
}

const u64 = z.string().regex(/^\d{1,20}$/);
const b64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/);
const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
const rpcStatus = z.object({ code: z.number().optional(), message: z.string().optional() });
const errorBody = z.union([z.object({ error: rpcStatus }), rpcStatus]);
const addInvoiceRes = z.object({ r_hash: b64, payment_request: z.string(), add_index: u64 });
const invoice = z.object({ r_hash: b64, state: z.string(), settle_index: u64, amt_paid_msat: u64, add_index: u64 });
const listInvoicesRes = z.object({ invoices: z.array(invoice), last_index_offset: u64 });
const payment = z.object({
  payment_hash: hex32,
  status: z.enum(['UNKNOWN', 'IN_FLIGHT', 'SUCCEEDED', 'FAILED', 'INITIATED']),
  fee_msat: u64.optional(),
  payment_preimage: z.string().optional(),
  failure_reason: z.string().optional(),
});
const streamLine = <T>(result: z.ZodType<T>) => z.union([z.object({ result }), z.object({ error: rpcStatus })]);

/** Errors LND gives when a payment for the hash already exists; its real status comes from TrackPaymentV2. */
const ALREADY = /already paid|in transition|already (exists|succeeded)|in flight/i;
/** TrackPaymentV2 for a hash LND never paid. */
const NOT_PAID = /(isn't|not) initiated|not found|unknown payment/i;
const SCAN_PAGE = 1000;

export class LndRest implements LightningNode {
  readonly kind = 'lnd' as const;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  readonly #ca: string | undefined;
  readonly #timeoutMs: number;

  constructor(opts: LndOptions) {
    if (!/^[0-9a-fA-F]+$/.test(opts.macaroonHex)) throw new ImError('IM_BAD_REQUEST', 'macaroonHex must be hex');
    this.#base = opts.url.replace(/\/+$/, '');
    this.#headers = { 'Grpc-Metadata-macaroon': opts.macaroonHex };
    this.#ca = opts.tlsCertPem;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async createInvoice(q: InvoiceRequest): Promise<CreatedInvoice> {
    checkInvoiceRequest(q);
    // LND has no invoice label: `label` cannot make this idempotent here.
    const res = await this.#unary('POST', '/v1/invoices', addInvoiceRes, {
      value_msat: q.amountMsat.toString(), memo: q.memo, expiry: String(q.expirySec),
    });
    const paymentHash = hexOfBase64(res.r_hash, 'AddInvoice r_hash');
    const summary = summarizeBolt11(res.payment_request);
    if (summary.paymentHash !== paymentHash) throw lnError('AddInvoice', { reason: 'payment_request does not match r_hash' });
    return { paymentHash, bolt11: res.payment_request, expiresAt: summary.expiresAt };
  }

  async settledSince(cursor: string, waitMs: number): Promise<{ settled: SettledInvoice[]; cursor: string }> {
    const from = parseIndex(cursor, 'cursor');
    // settle_index=0 means "not set" to SubscribeInvoices: it would send no
    // backlog. From the start, scan ListInvoices (paged by add_index, which
    // is unrelated to settle order) for settled invoices instead.
    if (from === 0n) {
      const back = await this.#scanSettled();
      if (back.length > 0) return finish(back, from);
    }
    // grpc-gateway sends the response headers with the first event: a quiet
    // long-poll has no response at all until the wait is over.
    const ctl = new AbortController();
    const started = Date.now();
    let quiet = false;
    const timer = setTimeout(() => { quiet = true; ctl.abort(); }, waitMs);
    let res: IncomingMessage;
    try {
      res = await this.#open('GET', `/v1/invoices/subscribe?settle_index=${from}`, undefined, ctl, waitMs + this.#timeoutMs);
    } catch (err) {
      if (quiet) return finish([], from);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    if (res.statusCode !== 200) throw await this.#httpError(res, 'SubscribeInvoices');
    const got = new Map<string, SettledInvoice>();
    const end = await consumeLines(res, ctl, Math.max(0, started + waitMs - Date.now()), (line) => {
      const inv = resultOf(line, invoice, 'SubscribeInvoices');
      const idx = BigInt(inv.settle_index);
      // Adds and duplicates come down the same stream: only new settles count.
      if (inv.state !== 'SETTLED' || idx <= from || got.has(inv.settle_index)) return 'more';
      got.set(inv.settle_index, { paymentHash: hexOfBase64(inv.r_hash, 'invoice r_hash'), amountMsat: BigInt(inv.amt_paid_msat), settleIndex: inv.settle_index });
      return 'soon';
    });
    if ((end === 'broken' || end === 'eof') && got.size === 0) throw unavailable('SubscribeInvoices stream ended');
    return finish([...got.values()], from);
  }

  async pay(q: PayRequest): Promise<PaymentStatus> {
    checkPayRequest(q);
    const { paymentHash } = summarizeBolt11(q.bolt11);
    const unknown: PaymentStatus = { state: 'unknown', paymentHash };
    const ctl = new AbortController();
    const deadline = q.timeoutSec * 1000 + this.#timeoutMs;
    let res: IncomingMessage;
    try {
      res = await this.#open('POST', '/v2/router/send', {
        payment_request: q.bolt11, fee_limit_msat: q.maxFeeMsat.toString(), timeout_seconds: q.timeoutSec, no_inflight_updates: false,
      }, ctl, deadline + this.#timeoutMs);
    } catch {
      return unknown; // the request may or may not have reached LND
    }
    if (res.statusCode !== 200) return this.#afterSendError(paymentHash, await this.#httpError(res, 'SendPaymentV2').catch((e: unknown) => e));
    let last: PaymentStatus | undefined;
    let refused: unknown;
    try {
      await consumeLines(res, ctl, deadline, (line) => {
        const msg = parseJsonText(line, 'SendPaymentV2');
        const parsed = streamLine(payment).safeParse(msg);
        if (!parsed.success) return 'stop';
        if ('error' in parsed.data) {
          refused = lnError('SendPaymentV2', { ...parsed.data.error });
          return 'stop';
        }
        if (parsed.data.result.payment_hash !== paymentHash) return 'more';
        last = toStatus(parsed.data.result);
        return last.state === 'succeeded' || last.state === 'failed' ? 'stop' : 'more';
      });
    } catch {
      // A line outside the API mid-payment: what we knew so far stands.
    }
    if (refused !== undefined) return this.#afterSendError(paymentHash, refused);
    if (last === undefined) return unknown;
    if (last.state === 'succeeded' || last.state === 'failed') return last;
    return { ...last, state: 'in-flight' };
  }

  async paymentStatus(paymentHash: string): Promise<PaymentStatus> {
    checkHash(paymentHash);
    // Path bytes are base64 (grpc-gateway accepts the URL-safe alphabet, with padding).
    const id = Buffer.from(paymentHash, 'hex').toString('base64url') + '=';
    const ctl = new AbortController();
    const res = await this.#open('GET', `/v2/router/track/${id}?no_inflight_updates=false`, undefined, ctl, 2 * this.#timeoutMs);
    if (res.statusCode !== 200) {
      const err = await this.#httpError(res, 'TrackPaymentV2');
      if (notPaid(err)) return { state: 'unknown', paymentHash };
      throw err;
    }
    let found: PaymentStatus | undefined;
    let failure: ImError | undefined;
    const end = await consumeLines(res, ctl, this.#timeoutMs, (line) => {
      const parsed = streamLine(payment).safeParse(parseJsonText(line, 'TrackPaymentV2'));
      if (!parsed.success) throw lnError('TrackPaymentV2', { reason: 'line outside the API', line: line.slice(0, 200) });
      if ('error' in parsed.data) failure = lnError('TrackPaymentV2', { ...parsed.data.error });
      else found = toStatus(parsed.data.result);
      return 'stop'; // the first update is the current state
    });
    if (failure !== undefined) {
      if (notPaid(failure)) return { state: 'unknown', paymentHash };
      throw failure;
    }
    if (found === undefined) throw unavailable(`TrackPaymentV2 (${end})`);
    return found;
  }

  /** SendPaymentV2 refused: if LND knows a payment for the hash, that payment's status is the answer. */
  async #afterSendError(paymentHash: string, err: unknown): Promise<PaymentStatus> {
    if (!(err instanceof ImError) || err.code === 'IM_LN_UNAVAILABLE') return { state: 'unknown', paymentHash };
    let known: PaymentStatus;
    try {
      known = await this.paymentStatus(paymentHash);
    } catch {
      return { state: 'unknown', paymentHash };
    }
    if (known.state !== 'unknown' || ALREADY.test(err.message)) return known;
    throw err; // LND refused and has no payment for this hash: nothing is in flight
  }

  async #scanSettled(): Promise<SettledInvoice[]> {
    const out: SettledInvoice[] = [];
    for (let offset = '0'; ;) {
      const page = await this.#unary('GET', `/v1/invoices?index_offset=${offset}&num_max_invoices=${SCAN_PAGE}&reversed=false`, listInvoicesRes);
      for (const inv of page.invoices) {
        if (inv.state === 'SETTLED' && inv.settle_index !== '0') {
          out.push({ paymentHash: hexOfBase64(inv.r_hash, 'invoice r_hash'), amountMsat: BigInt(inv.amt_paid_msat), settleIndex: inv.settle_index });
        }
      }
      if (page.invoices.length < SCAN_PAGE || BigInt(page.last_index_offset) <= BigInt(offset)) return out;
      offset = page.last_index_offset;
    }
  }

  async #unary<T>(method: 'GET' | 'POST', path: string, schema: z.ZodType<T>, body?: unknown): Promise<T> {
    const ctl = new AbortController();
    const res = await this.#open(method, path, body, ctl, this.#timeoutMs);
    if (res.statusCode !== 200) throw await this.#httpError(res, path);
    const parsed = schema.safeParse(parseJsonText(await readText(res, path), path));
    if (!parsed.success) throw lnError(path, { reason: 'answer outside the API', issues: parsed.error.issues.slice(0, 5) });
    return parsed.data;
  }

  #open(method: 'GET' | 'POST', path: string, body: unknown, ctl: AbortController, timeoutMs: number): Promise<IncomingMessage> {
    const signal = AbortSignal.any([ctl.signal, AbortSignal.timeout(timeoutMs)]);
    const req = { base: this.#base, method, path, headers: this.#headers, signal, ...(body === undefined ? {} : { body }) };
    return open(this.#ca === undefined ? req : { ...req, ca: this.#ca });
  }

  async #httpError(res: IncomingMessage, what: string): Promise<ImError> {
    const status = res.statusCode ?? 0;
    const text = await readText(res, what);
    // grpc-gateway maps Unavailable to 503; proxies say 502/504.
    if (status === 502 || status === 503 || status === 504) return unavailable(`${what}: HTTP ${status}`);
    let body: z.infer<typeof rpcStatus> = {};
    try {
      const parsed = errorBody.safeParse(JSON.parse(text));
      if (parsed.success) body = 'error' in parsed.data ? parsed.data.error : parsed.data;
    } catch { /* not JSON: keep the raw text below */ }
    return lnError(what, { status, lndCode: body.code, message: body.message ?? text.slice(0, 300) });
  }
}

function resultOf<T>(line: string, schema: z.ZodType<T>, what: string): T {
  const parsed = streamLine(schema).safeParse(parseJsonText(line, what));
  if (!parsed.success) throw lnError(what, { reason: 'line outside the API', line: line.slice(0, 200) });
  if ('error' in parsed.data) {
    const e = parsed.data.error;
    // 14 Unavailable, 1 Canceled: LND going down.
    if (e.code === 14 || e.code === 1) throw unavailable(`${what}: ${e.message ?? 'stream closed'}`);
    throw lnError(what, { ...e });
  }
  return parsed.data.result;
}

function toStatus(p: z.infer<typeof payment>): PaymentStatus {
  const s: PaymentStatus = { state: 'in-flight', paymentHash: p.payment_hash };
  if (p.status === 'SUCCEEDED') {
    s.state = 'succeeded';
    if (p.fee_msat !== undefined) s.feeMsat = BigInt(p.fee_msat);
    if (p.payment_preimage !== undefined && /^[0-9a-f]{64}$/.test(p.payment_preimage)) s.preimage = p.payment_preimage;
  } else if (p.status === 'FAILED') {
    s.state = 'failed';
    s.failureReason = p.failure_reason ?? 'FAILURE_REASON_NONE';
  } else if (p.status === 'UNKNOWN') {
    s.state = 'unknown';
  }
  return s;
}

function notPaid(err: ImError): boolean {
  return NOT_PAID.test(err.message);
}

function hexOfBase64(s: string, what: string): string {
  const bytes = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
  if (bytes.length !== 32) throw lnError(what, { reason: 'not a 32-byte hash' });
  return bytes.toString('hex');
}

function finish(settled: SettledInvoice[], from: bigint): { settled: SettledInvoice[]; cursor: string } {
  settled.sort((a, b) => (BigInt(a.settleIndex) < BigInt(b.settleIndex) ? -1 : 1));
  const last = settled[settled.length - 1];
  return { settled, cursor: last === undefined ? from.toString() : last.settleIndex };
}
