// clnrest (Core Lightning's REST plugin) for what ClnRest uses: POST
// /v1/<method> with a `Rune` header; success is HTTP 201 with the RPC
// result, an RPC error is HTTP 500 with { code, message }. msat amounts are
// JSON integers, as CLN prints them since v23.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { summarizeBolt11 } from '../../src/lightning/bolt11.js';
import { makeInvoice } from './bolt11.js';
import { FakeHttpServer, randomHex, sendJson } from './server.js';

interface Invoice {
  label: string;
  hash: string;
  preimage: string;
  bolt11: string;
  amountMsat: bigint;
  description: string;
  expiresAt: number;
  status: 'unpaid' | 'paid';
  payIndex?: number;
  receivedMsat?: bigint;
}

interface Pay {
  hash: string;
  bolt11: string;
  status: 'pending' | 'complete' | 'failed';
  amountMsat: bigint;
  sentMsat: bigint;
  preimage: string;
}

/** 'noroute': error 205 before any attempt; 'fail': 210 after failed attempts; 'pending': the call hangs until resolve(); 'drop': the connection is cut mid-call. */
export type ClnPayOutcome = 'succeed' | 'fail' | 'noroute' | 'pending' | 'drop';

class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export class FakeCln {
  readonly rune = Buffer.from(randomHex(24), 'hex').toString('base64url');
  readonly server: FakeHttpServer;
  readonly invoices: Invoice[] = [];
  readonly pays: Pay[] = [];
  payOutcome: ClnPayOutcome = 'succeed';
  feeMsat = 1_000n;
  /** The next waitanyinvoice answers the newest paid invoice again, whatever lastpay_index says. */
  replayNext = false;
  /** The next waitanyinvoice has its connection cut. */
  dropNextWait = false;
  readonly #waiters = new Set<() => void>();
  readonly #held = new Map<string, (res: Pay) => void>();
  #payIndex = 0;

  constructor() {
    this.server = new FakeHttpServer((req, res, body) => this.#handle(req, res, body));
  }

  static async start(): Promise<FakeCln> {
    const f = new FakeCln();
    await f.server.start();
    return f;
  }

  get url(): string {
    return this.server.url;
  }

  goAway(): Promise<void> {
    return this.server.goAway();
  }

  comeBack(): Promise<void> {
    return this.server.comeBack();
  }

  close(): Promise<void> {
    for (const w of this.#waiters) w();
    return this.server.close();
  }

  settle(hash: string, amountMsat?: bigint): void {
    const inv = this.invoices.find((i) => i.hash === hash && i.status === 'unpaid');
    if (inv === undefined) throw new Error(`no unpaid invoice ${hash}`);
    inv.status = 'paid';
    inv.payIndex = ++this.#payIndex;
    inv.receivedMsat = amountMsat ?? inv.amountMsat;
    for (const w of [...this.#waiters]) w();
  }

  /** Ends a 'pending' payment. */
  resolve(hash: string, outcome: 'succeed' | 'fail'): void {
    const p = this.pays.find((x) => x.hash === hash && x.status === 'pending');
    if (p === undefined) throw new Error(`no pending pay ${hash}`);
    p.status = outcome === 'succeed' ? 'complete' : 'failed';
    this.#held.get(hash)?.(p);
    this.#held.delete(hash);
  }

  foreignInvoice(amountMsat = 50_000n): { bolt11: string; paymentHash: string } {
    const paymentHash = randomHex();
    return { bolt11: makeInvoice({ paymentHash, amountMsat }), paymentHash };
  }

  async #handle(req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
    if (req.headers.rune !== this.rune) return sendJson(res, 401, { code: 1501, message: 'Not authorized: Invalid rune' });
    const method = /^\/v1\/([a-z-]+)$/.exec(req.url ?? '')?.[1];
    const params = (body === '' ? {} : JSON.parse(body)) as Record<string, unknown>;
    try {
      if (method === 'waitanyinvoice' && this.dropNextWait) {
        this.dropNextWait = false;
        req.socket.destroy();
        return;
      }
      if (method === 'pay' && this.payOutcome === 'drop') {
        this.#startPay(String(params['bolt11']));
        req.socket.destroy();
        return;
      }
      const result = await this.#call(method ?? '', params);
      sendJson(res, 201, result);
    } catch (err) {
      const e = err instanceof RpcError ? err : new RpcError(-32602, String(err));
      if (!res.destroyed) sendJson(res, e.code === -32601 ? 404 : 500, { code: e.code, message: e.message });
    }
  }

  async #call(method: string, p: Record<string, unknown>): Promise<unknown> {
    switch (method) {
      case 'invoice': {
        const label = String(p['label']);
        if (this.invoices.some((i) => i.label === label)) throw new RpcError(900, `Duplicate label '${label}'`);
        const amountMsat = BigInt(String(p['amount_msat']).replace(/msat$/, ''));
        const preimage = randomHex();
        const hash = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex');
        const expiry = Number(p['expiry'] ?? 604800);
        const timestamp = Math.floor(Date.now() / 1000);
        const inv: Invoice = {
          label, hash, preimage, amountMsat, description: String(p['description']), expiresAt: timestamp + expiry, status: 'unpaid',
          bolt11: makeInvoice({ paymentHash: hash, amountMsat, expirySec: expiry, timestamp }),
        };
        this.invoices.push(inv);
        return { payment_hash: hash, expires_at: inv.expiresAt, bolt11: inv.bolt11, payment_secret: randomHex(), created_index: this.invoices.length };
      }
      case 'listinvoices':
        return { invoices: this.invoices.filter((i) => p['label'] === undefined || i.label === p['label']).map(invoiceJson) };
      case 'waitanyinvoice':
        return this.#waitAny(Number(p['lastpay_index'] ?? 0), p['timeout'] === undefined ? undefined : Number(p['timeout']));
      case 'pay':
        return this.#pay(String(p['bolt11']));
      case 'listpays':
        return { pays: this.pays.filter((x) => (p['payment_hash'] === undefined || x.hash === p['payment_hash']) && (p['bolt11'] === undefined || x.bolt11 === p['bolt11'])).map(payJson) };
      default:
        throw new RpcError(-32601, `Unknown command '${method}'`);
    }
  }

  async #waitAny(last: number, timeout: number | undefined): Promise<unknown> {
    const paid = (): Invoice | undefined => this.invoices.filter((i) => i.payIndex !== undefined && i.payIndex > last).sort((a, b) => (a.payIndex ?? 0) - (b.payIndex ?? 0))[0];
    if (this.replayNext) {
      this.replayNext = false;
      const newest = this.invoices.filter((i) => i.payIndex !== undefined).sort((a, b) => (b.payIndex ?? 0) - (a.payIndex ?? 0))[0];
      if (newest !== undefined) return invoiceJson(newest);
    }
    let found = paid();
    if (found === undefined && timeout !== 0) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, (timeout ?? 3600) * 1000);
        this.#waiters.add(wake);
      });
      found = paid();
    }
    if (found === undefined) throw new RpcError(904, 'Timed out');
    return invoiceJson(found);
  }

  #startPay(bolt11: string): Pay {
    const hash = summarizeBolt11(bolt11).paymentHash;
    const p: Pay = { hash, bolt11, status: 'pending', amountMsat: 50_000n, sentMsat: 50_000n + this.feeMsat, preimage: randomHex() };
    this.pays.push(p);
    return p;
  }

  async #pay(bolt11: string): Promise<unknown> {
    const hash = summarizeBolt11(bolt11).paymentHash;
    const done = this.pays.find((x) => x.hash === hash && x.status === 'complete');
    if (done !== undefined) return payResult(done); // paying a paid invoice again succeeds at once
    if (this.payOutcome === 'noroute') throw new RpcError(205, 'Could not find a route');
    const p = this.#startPay(bolt11);
    if (this.payOutcome === 'pending') await new Promise<Pay>((resolve) => this.#held.set(hash, resolve));
    else p.status = this.payOutcome === 'succeed' ? 'complete' : 'failed';
    if (p.status === 'failed') throw new RpcError(210, 'Ran out of routes to try after 3 attempts: see `paystatus`');
    return payResult(p);
  }
}

function invoiceJson(i: Invoice): Record<string, unknown> {
  return {
    label: i.label, bolt11: i.bolt11, payment_hash: i.hash, amount_msat: Number(i.amountMsat), status: i.status, description: i.description,
    expires_at: i.expiresAt, created_index: 1,
    ...(i.status === 'paid' ? { pay_index: i.payIndex, amount_received_msat: Number(i.receivedMsat), paid_at: i.expiresAt - 1, payment_preimage: i.preimage } : {}),
  };
}

function payJson(p: Pay): Record<string, unknown> {
  return {
    bolt11: p.bolt11, payment_hash: p.hash, status: p.status, created_at: 1_700_000_000, destination: '02' + '11'.repeat(32),
    ...(p.status === 'complete' ? { preimage: p.preimage, amount_msat: Number(p.amountMsat), amount_sent_msat: Number(p.sentMsat), number_of_parts: 1 } : {}),
  };
}

function payResult(p: Pay): Record<string, unknown> {
  return {
    destination: '02' + '11'.repeat(32), payment_hash: p.hash, created_at: 1_700_000_000, parts: 1, amount_msat: Number(p.amountMsat),
    amount_sent_msat: Number(p.sentMsat), payment_preimage: p.preimage, status: 'complete',
  };
}
