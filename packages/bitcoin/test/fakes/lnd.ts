// LND's REST gateway for what LndRest uses: AddInvoice, ListInvoices,
// SubscribeInvoices (newline-delimited {"result": Invoice}), SendPaymentV2
// and TrackPaymentV2 (streams of {"result": Payment}). int64 as strings,
// bytes as base64, errors as {"error": {code, message}} (streams) or
// {code, message} — the grpc-gateway conventions.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { summarizeBolt11 } from '../../src/lightning/bolt11.js';
import { makeInvoice } from './bolt11.js';
import { FakeHttpServer, randomHex, sendJson } from './server.js';

interface Invoice {
  hash: string;
  preimage: string;
  valueMsat: bigint;
  memo: string;
  expiry: number;
  paymentRequest: string;
  addIndex: number;
  settleIndex: number;
  amtPaidMsat: bigint;
  state: 'OPEN' | 'SETTLED' | 'CANCELED';
}

interface Payment {
  hash: string;
  status: 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED';
  valueMsat: bigint;
  feeMsat: bigint;
  preimage: string;
  failureReason: string;
  paymentRequest: string;
}

export type PayOutcome = 'succeed' | 'fail' | 'inflight';

export class FakeLnd {
  readonly macaroonHex = randomHex(40);
  readonly server: FakeHttpServer;
  readonly invoices = new Map<string, Invoice>();
  readonly payments = new Map<string, Payment>();
  /** How the next payments end; 'inflight' stays IN_FLIGHT until resolve(). */
  payOutcome: PayOutcome = 'succeed';
  /** For 'inflight': 'hold' keeps SendPaymentV2's stream open, 'end' closes it (as a restart would). */
  inflightStream: 'hold' | 'end' = 'end';
  feeMsat = 1_000n;
  /** Every settle event is written twice on each subscription. */
  duplicateEvents = false;
  /** Each subscription stream is cut (socket destroyed) after this many lines. */
  dropStreamAfter: number | undefined;
  readonly #subscribers = new Set<{ res: ServerResponse; written: number }>();
  readonly #tracking = new Map<string, Set<ServerResponse>>();
  #addIndex = 0;
  #settleIndex = 0;

  constructor() {
    this.server = new FakeHttpServer((req, res, body) => this.#handle(req, res, body));
  }

  static async start(): Promise<FakeLnd> {
    const f = new FakeLnd();
    await f.server.start();
    return f;
  }

  get url(): string {
    return this.server.url;
  }

  goAway(): Promise<void> {
    this.#subscribers.clear();
    this.#tracking.clear();
    return this.server.goAway();
  }

  comeBack(): Promise<void> {
    return this.server.comeBack();
  }

  close(): Promise<void> {
    return this.goAway();
  }

  /** The payer's side: the invoice with this hash gets paid. */
  settle(hash: string, amountMsat?: bigint): void {
    const inv = this.invoices.get(hash);
    if (inv === undefined || inv.state !== 'OPEN') throw new Error(`no open invoice ${hash}`);
    inv.state = 'SETTLED';
    inv.settleIndex = ++this.#settleIndex;
    inv.amtPaidMsat = amountMsat ?? inv.valueMsat;
    for (const sub of [...this.#subscribers]) {
      this.#write(sub, inv);
      if (this.duplicateEvents) this.#write(sub, inv);
    }
  }

  /** Ends an in-flight outgoing payment. */
  resolve(hash: string, outcome: 'succeed' | 'fail'): void {
    const p = this.payments.get(hash);
    if (p === undefined) throw new Error(`no payment ${hash}`);
    p.status = outcome === 'succeed' ? 'SUCCEEDED' : 'FAILED';
    if (outcome === 'fail') p.failureReason = 'FAILURE_REASON_TIMEOUT';
    for (const res of this.#tracking.get(hash) ?? []) {
      res.write(JSON.stringify({ result: paymentJson(p) }) + '\n');
      res.end();
    }
    this.#tracking.delete(hash);
  }

  /** An invoice of someone else's, for pay() to pay. */
  foreignInvoice(amountMsat = 50_000n): { bolt11: string; paymentHash: string } {
    const paymentHash = randomHex();
    return { bolt11: makeInvoice({ paymentHash, amountMsat }), paymentHash };
  }

  #write(sub: { res: ServerResponse; written: number }, inv: Invoice): void {
    sub.written++;
    const cut = this.dropStreamAfter !== undefined && sub.written >= this.dropStreamAfter;
    if (cut) this.#subscribers.delete(sub);
    // Cut once the line is on the wire, as a crash right after sending would.
    sub.res.write(JSON.stringify({ result: invoiceJson(inv) }) + '\n', () => {
      if (cut) sub.res.socket?.destroy();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    if (req.headers['grpc-metadata-macaroon'] !== this.macaroonHex) {
      return sendJson(res, 500, { code: 2, message: 'verification failed: signature mismatch after caveat verification', details: [] });
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (req.method === 'POST' && path === '/v1/invoices') {
      const q = JSON.parse(body) as { value_msat: string; memo: string; expiry: string };
      const preimage = randomHex();
      const hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');
      const inv: Invoice = {
        hash, preimage, valueMsat: BigInt(q.value_msat), memo: q.memo, expiry: Number(q.expiry), addIndex: ++this.#addIndex, settleIndex: 0,
        amtPaidMsat: 0n, state: 'OPEN', paymentRequest: makeInvoice({ paymentHash: hash, amountMsat: BigInt(q.value_msat), expirySec: Number(q.expiry), memo: q.memo }),
      };
      this.invoices.set(hash, inv);
      for (const sub of this.#subscribers) sub.res.write(JSON.stringify({ result: invoiceJson(inv) }) + '\n'); // add event
      return sendJson(res, 200, { r_hash: b64(hash), payment_request: inv.paymentRequest, add_index: String(inv.addIndex), payment_addr: b64(randomHex()) });
    }
    if (req.method === 'GET' && path === '/v1/invoices') {
      const offset = Number(url.searchParams.get('index_offset') ?? '0');
      const max = Number(url.searchParams.get('num_max_invoices') ?? '100');
      const page = [...this.invoices.values()].filter((i) => i.addIndex > offset).slice(0, max);
      return sendJson(res, 200, {
        invoices: page.map(invoiceJson), first_index_offset: String(page[0]?.addIndex ?? 0), last_index_offset: String(page[page.length - 1]?.addIndex ?? 0),
      });
    }
    if (req.method === 'GET' && path === '/v1/invoices/subscribe') {
      const from = Number(url.searchParams.get('settle_index') ?? '0');
      res.writeHead(200, { 'content-type': 'application/json' });
      const sub = { res, written: 0 };
      this.#subscribers.add(sub);
      res.on('close', () => this.#subscribers.delete(sub));
      // settle_index 0 is "unset": no backlog.
      if (from > 0) {
        const backlog = [...this.invoices.values()].filter((i) => i.state === 'SETTLED' && i.settleIndex > from).sort((a, b) => a.settleIndex - b.settleIndex);
        for (const inv of backlog) if (this.#subscribers.has(sub)) this.#write(sub, inv);
      }
      return;
    }
    if (req.method === 'POST' && path === '/v2/router/send') return this.#send(JSON.parse(body) as { payment_request: string }, res);
    const track = /^\/v2\/router\/track\/([^/]+)$/.exec(path);
    if (req.method === 'GET' && track !== null) {
      const hash = Buffer.from(decodeURIComponent(track[1] ?? ''), 'base64url').toString('hex');
      const p = this.payments.get(hash);
      if (p === undefined) return sendJson(res, 500, { error: { code: 2, message: "payment isn't initiated", details: [] } });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ result: paymentJson(p) }) + '\n');
      if (p.status !== 'IN_FLIGHT') return void res.end();
      this.#hold(hash, res);
      return;
    }
    sendJson(res, 404, { code: 5, message: 'Not Found', details: [] });
  }

  #send(q: { payment_request: string }, res: ServerResponse): void {
    const { paymentHash: hash } = summarizeBolt11(q.payment_request);
    const prior = this.payments.get(hash);
    if (prior?.status === 'SUCCEEDED') return sendJson(res, 500, { error: { code: 2, message: 'invoice is already paid', details: [] } });
    if (prior?.status === 'IN_FLIGHT') return sendJson(res, 500, { error: { code: 2, message: 'payment is in transition', details: [] } });
    const p: Payment = {
      hash, status: 'IN_FLIGHT', valueMsat: 50_000n, feeMsat: this.feeMsat, preimage: randomHex(), failureReason: 'FAILURE_REASON_NONE', paymentRequest: q.payment_request,
    };
    this.payments.set(hash, p);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(JSON.stringify({ result: { ...paymentJson(p), status: 'INITIATED' } }) + '\n');
    res.write(JSON.stringify({ result: paymentJson(p) }) + '\n');
    if (this.payOutcome === 'inflight') {
      if (this.inflightStream === 'hold') this.#hold(hash, res);
      else res.end();
      return;
    }
    p.status = this.payOutcome === 'succeed' ? 'SUCCEEDED' : 'FAILED';
    if (p.status === 'FAILED') p.failureReason = 'FAILURE_REASON_NO_ROUTE';
    res.end(JSON.stringify({ result: paymentJson(p) }) + '\n');
  }

  #hold(hash: string, res: ServerResponse): void {
    const set = this.#tracking.get(hash) ?? new Set();
    set.add(res);
    this.#tracking.set(hash, set);
    res.on('close', () => set.delete(res));
  }
}

function b64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

function invoiceJson(i: Invoice): Record<string, unknown> {
  return {
    memo: i.memo, r_preimage: b64(i.preimage), r_hash: b64(i.hash), value: String(i.valueMsat / 1000n), value_msat: String(i.valueMsat),
    settled: i.state === 'SETTLED', creation_date: '1700000000', settle_date: i.state === 'SETTLED' ? '1700000100' : '0',
    payment_request: i.paymentRequest, description_hash: null, expiry: String(i.expiry), fallback_addr: '', cltv_expiry: '80', route_hints: [],
    private: false, add_index: String(i.addIndex), settle_index: String(i.settleIndex), amt_paid: String(i.amtPaidMsat / 1000n),
    amt_paid_sat: String(i.amtPaidMsat / 1000n), amt_paid_msat: String(i.amtPaidMsat), state: i.state, htlcs: [], features: {}, is_keysend: false,
    payment_addr: b64('00'.repeat(32)), is_amp: false,
  };
}

function paymentJson(p: Payment): Record<string, unknown> {
  const done = p.status === 'SUCCEEDED';
  return {
    payment_hash: p.hash, value: String(p.valueMsat / 1000n), creation_date: '1700000000', fee: '0',
    payment_preimage: done ? p.preimage : '0'.repeat(64), value_sat: String(p.valueMsat / 1000n), value_msat: String(p.valueMsat),
    payment_request: p.paymentRequest, status: p.status, fee_sat: String((done ? p.feeMsat : 0n) / 1000n), fee_msat: String(done ? p.feeMsat : 0n),
    creation_time_ns: '1700000000000000000', htlcs: [], payment_index: '1', failure_reason: p.failureReason,
  };
}
