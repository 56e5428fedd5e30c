// Core Lightning through the clnrest plugin (v23.08+): POST /v1/<method>
// with a `Rune` header and the params as a JSON object. Success is HTTP 201
// (200 accepted) with the RPC result; an RPC error is HTTP 500 with
// `{ code, message, data? }`.
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { summarizeBolt11 } from './bolt11.js';
import { checkHash, checkInvoiceRequest, checkPayRequest, lnError, open, parseIndex, parseJsonText, readText, unavailable } from './http.js';
import type { CreatedInvoice, InvoiceRequest, LightningNode, PaymentStatus, PayRequest, SettledInvoice } from './types.js';

export interface ClnOptions {
  /** e.g. https://127.0.0.1:3010 */
  url: string;
  rune: string;
  /** clnrest's certificate, to trust it when self-signed. */
  tlsCertPem?: string;
  timeoutMs?: number;
}

const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
/** msat: an integer (v23.05+) or the older "1234msat" string. */
const msat = z.union([z.number(), z.string().regex(/^\d+msat$/)]).transform((v, ctx) => {
  if (typeof v === 'string') return BigInt(v.slice(0, -4));
  if (Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  ctx.addIssue({ code: 'custom', message: 'msat amount is not a safe integer' });
  return z.NEVER;
});
const rpcError = z.object({ code: z.number(), message: z.string(), data: z.unknown().optional() });
const invoiceRes = z.object({ payment_hash: hex32, bolt11: z.string(), expires_at: z.number().int().nonnegative() });
const listInvoicesRes = z.object({
  invoices: z.array(z.object({ payment_hash: hex32, bolt11: z.string().optional(), expires_at: z.number().int(), amount_msat: msat.optional(), status: z.string() })),
});
const paidInvoice = z.object({ payment_hash: hex32, status: z.string(), pay_index: z.number().int().positive().optional(), amount_received_msat: msat.optional() });
const payRes = z.object({
  payment_hash: hex32, status: z.enum(['complete', 'pending', 'failed']), amount_msat: msat, amount_sent_msat: msat, payment_preimage: z.string().optional(),
});
const listPaysRes = z.object({
  pays: z.array(z.object({
    payment_hash: hex32, status: z.enum(['pending', 'complete', 'failed']), amount_msat: msat.optional(), amount_sent_msat: msat.optional(), preimage: z.string().optional(),
  })),
});

/** waitanyinvoice timed out. */
const TIMED_OUT = 904;
/** invoice: label already used. */
const LABEL_EXISTS = 900;
/** pay: permanent failure at destination, no route, too expensive, expired, timed out with nothing in flight. */
const FINAL_PAY = new Set([203, 205, 206, 207, 210]);
const MAX_DRAIN = 200;

type Rpc = { ok: true; result: unknown } | { ok: false; code: number; message: string; data?: unknown };

export class ClnRest implements LightningNode {
  readonly kind = 'cln' as const;
  readonly #base: string;
  readonly #rune: string;
  readonly #ca: string | undefined;
  readonly #timeoutMs: number;

  constructor(opts: ClnOptions) {
    this.#base = opts.url.replace(/\/+$/, '');
    this.#rune = opts.rune;
    this.#ca = opts.tlsCertPem;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async createInvoice(q: InvoiceRequest): Promise<CreatedInvoice> {
    checkInvoiceRequest(q);
    const a = await this.#rpc('invoice', { amount_msat: `${q.amountMsat}msat`, label: q.label, description: q.memo, expiry: q.expirySec });
    if (a.ok) {
      const r = parse(invoiceRes, a.result, 'invoice');
      return { paymentHash: r.payment_hash, bolt11: r.bolt11, expiresAt: r.expires_at * 1000 };
    }
    if (a.code !== LABEL_EXISTS) throw lnError('invoice', { clnCode: a.code, message: a.message });
    // Retried creation: the label names the invoice made the first time.
    const prior = parse(listInvoicesRes, await this.#ok('listinvoices', { label: q.label }), 'listinvoices').invoices[0];
    if (prior === undefined || prior.bolt11 === undefined || prior.amount_msat !== q.amountMsat) {
      throw lnError('invoice', { clnCode: a.code, message: `label ${q.label} is already used by a different invoice` });
    }
    return { paymentHash: prior.payment_hash, bolt11: prior.bolt11, expiresAt: prior.expires_at * 1000 };
  }

  async settledSince(cursor: string, waitMs: number): Promise<{ settled: SettledInvoice[]; cursor: string }> {
    let last = parseIndex(cursor, 'cursor');
    const settled: SettledInvoice[] = [];
    // Wait for the first, then drain what is already paid with timeout 0.
    let timeout = Math.max(0, Math.floor(waitMs / 1000));
    for (let i = 0; i < MAX_DRAIN; i++) {
      let a: Rpc;
      try {
        a = await this.#rpc('waitanyinvoice', { lastpay_index: Number(last), timeout }, (timeout + 1) * 1000 + this.#timeoutMs);
      } catch (err) {
        if (settled.length > 0) break; // keep what was read; the cursor resumes after it
        throw err;
      }
      if (!a.ok) {
        if (a.code === TIMED_OUT || settled.length > 0) break;
        throw lnError('waitanyinvoice', { clnCode: a.code, message: a.message });
      }
      const inv = parse(paidInvoice, a.result, 'waitanyinvoice');
      if (inv.pay_index === undefined || inv.status !== 'paid' || BigInt(inv.pay_index) <= last) break; // a replay: nothing new
      last = BigInt(inv.pay_index);
      settled.push({ paymentHash: inv.payment_hash, amountMsat: inv.amount_received_msat ?? 0n, settleIndex: last.toString() });
      timeout = 0;
    }
    return { settled, cursor: last.toString() };
  }

  async pay(q: PayRequest): Promise<PaymentStatus> {
    checkPayRequest(q);
    const { paymentHash } = summarizeBolt11(q.bolt11);
    let a: Rpc;
    try {
      a = await this.#rpc('pay', { bolt11: q.bolt11, maxfee: `${q.maxFeeMsat}msat`, retry_for: q.timeoutSec }, q.timeoutSec * 1000 + 2 * this.#timeoutMs);
    } catch {
      return { state: 'unknown', paymentHash };
    }
    if (a.ok) {
      const r = parse(payRes, a.result, 'pay');
      if (r.status === 'complete') {
        const s: PaymentStatus = { state: 'succeeded', paymentHash: r.payment_hash, feeMsat: r.amount_sent_msat - r.amount_msat };
        if (r.payment_preimage !== undefined) s.preimage = r.payment_preimage;
        return s;
      }
      return r.status === 'pending' ? { state: 'in-flight', paymentHash } : { state: 'failed', paymentHash, failureReason: 'failed' };
    }
    // An error from pay: what listpays records for the hash is the truth.
    let known: PaymentStatus;
    try {
      known = await this.paymentStatus(paymentHash);
    } catch {
      return { state: 'unknown', paymentHash };
    }
    if (known.state !== 'unknown') return known.state === 'failed' ? { ...known, failureReason: `${a.code}: ${a.message}` } : known;
    if (FINAL_PAY.has(a.code)) return { state: 'failed', paymentHash, failureReason: `${a.code}: ${a.message}` };
    throw lnError('pay', { clnCode: a.code, message: a.message });
  }

  async paymentStatus(paymentHash: string): Promise<PaymentStatus> {
    checkHash(paymentHash);
    const { pays } = parse(listPaysRes, await this.#ok('listpays', { payment_hash: paymentHash }), 'listpays');
    const done = pays.find((p) => p.status === 'complete');
    if (done !== undefined) {
      const s: PaymentStatus = { state: 'succeeded', paymentHash };
      if (done.amount_sent_msat !== undefined && done.amount_msat !== undefined) s.feeMsat = done.amount_sent_msat - done.amount_msat;
      if (done.preimage !== undefined) s.preimage = done.preimage;
      return s;
    }
    if (pays.some((p) => p.status === 'pending')) return { state: 'in-flight', paymentHash };
    if (pays.length > 0) return { state: 'failed', paymentHash, failureReason: 'failed' };
    return { state: 'unknown', paymentHash };
  }

  async #ok(method: string, params: Record<string, unknown>): Promise<unknown> {
    const a = await this.#rpc(method, params);
    if (!a.ok) throw lnError(method, { clnCode: a.code, message: a.message });
    return a.result;
  }

  async #rpc(method: string, params: Record<string, unknown>, timeoutMs = this.#timeoutMs): Promise<Rpc> {
    const req = {
      base: this.#base, method: 'POST' as const, path: `/v1/${method}`, body: params,
      headers: { Rune: this.#rune }, signal: AbortSignal.timeout(timeoutMs),
    };
    const res: IncomingMessage = await open(this.#ca === undefined ? req : { ...req, ca: this.#ca });
    const status = res.statusCode ?? 0;
    const text = await readText(res, method);
    if (status === 502 || status === 503 || status === 504) throw unavailable(`${method}: HTTP ${status}`);
    if (status === 200 || status === 201) return { ok: true, result: parseJsonText(text, method) };
    if (status === 401 || status === 403) throw lnError(method, { status, message: 'clnrest refused the rune', body: text.slice(0, 200) });
    const err = rpcError.safeParse(parseJsonText(text, method));
    if (!err.success) throw lnError(method, { status, reason: 'error outside the API', body: text.slice(0, 200) });
    return { ok: false, ...err.data };
  }
}

function parse<T>(schema: z.ZodType<T, unknown>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw lnError(what, { reason: 'answer outside the API', issues: r.error.issues.slice(0, 5) });
  return r.data;
}
