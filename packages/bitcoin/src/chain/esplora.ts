// Blockstream / mempool.space Esplora REST (https://github.com/Blockstream/esplora/blob/master/API.md).
import { ImError } from '@idlemesh/protocol';
import { z } from 'zod';
import { badResponse, parseJson, satsFromJson, send } from './http.js';
import { TXID_RE } from './types.js';
import type { ChainBackend, ChainTx, ChainUtxo, TxStatus } from './types.js';

export interface EsploraOptions {
  /** e.g. https://blockstream.info/api or http://127.0.0.1:3002 — without a trailing slash. */
  baseUrl: string;
  timeoutMs?: number;
}

/** Esplora returns 25 confirmed transactions per page of address history. */
export const ESPLORA_CHAIN_PAGE = 25;

const heightRe = /^\d+$/;
const hash = z.string().regex(TXID_RE);
const statusSchema = z.object({
  confirmed: z.boolean(),
  block_height: z.number().int().nonnegative().optional(),
  block_hash: hash.optional(),
});
const txSchema = z.object({
  txid: hash,
  vout: z.array(z.object({ scriptpubkey_address: z.string().optional(), value: z.number() })),
  status: statusSchema,
});
const utxoSchema = z.object({ txid: hash, vout: z.number().int().nonnegative(), value: z.number(), status: statusSchema });
const feeSchema = z.record(z.string().regex(/^\d+$/), z.number().nonnegative());

export class EsploraBackend implements ChainBackend {
  readonly #base: string;
  readonly #timeoutMs: number;

  constructor(opts: EsploraOptions) {
    this.#base = opts.baseUrl.replace(/\/+$/, '');
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async tipHeight(): Promise<number> {
    const text = (await this.#get('/blocks/tip/height', 'tip height')).trim();
    if (!heightRe.test(text) || !Number.isSafeInteger(Number(text))) throw badResponse('tip height', { body: text.slice(0, 100) });
    return Number(text);
  }

  async addressTxs(address: string): Promise<ChainTx[]> {
    const path = `/address/${encodeURIComponent(address)}/txs`;
    const first = parseJson(await this.#get(path, 'address txs'), z.array(txSchema), 'address txs');
    const out = new Map<string, ChainTx>();
    for (const tx of first) out.set(tx.txid, toChainTx(tx));
    // The first page is up to 50 mempool + the newest 25 confirmed; older
    // confirmed ones come 25 at a time after the last confirmed txid seen.
    let page = first.filter((t) => t.status.confirmed);
    while (page.length >= ESPLORA_CHAIN_PAGE) {
      const last = page[page.length - 1];
      if (last === undefined) break;
      page = parseJson(await this.#get(`${path}/chain/${last.txid}`, 'address txs page'), z.array(txSchema), 'address txs page');
      let fresh = 0;
      for (const tx of page) {
        if (!out.has(tx.txid)) fresh++;
        out.set(tx.txid, toChainTx(tx));
      }
      // A page of nothing new would loop forever: the backend is not paging.
      if (page.length > 0 && fresh === 0) throw badResponse('address txs page', { reason: 'paging repeated itself', after: last.txid });
    }
    return [...out.values()];
  }

  async txStatus(txid: string): Promise<TxStatus> {
    checkTxid(txid);
    const ans = await send(`${this.#base}/tx/${txid}/status`, { timeoutMs: this.#timeoutMs }, 'tx status');
    if (ans.status === 404) return { found: false, confirmed: false };
    if (ans.status !== 200) throw badResponse('tx status', { status: ans.status, body: ans.text.slice(0, 200) });
    const s = parseJson(ans.text, statusSchema, 'tx status');
    return withBlock({ found: true, confirmed: s.confirmed }, s);
  }

  async utxos(address: string): Promise<ChainUtxo[]> {
    const list = parseJson(await this.#get(`/address/${encodeURIComponent(address)}/utxo`, 'utxos'), z.array(utxoSchema), 'utxos');
    return list.map((u) => withBlock({ txid: u.txid, vout: u.vout, valueSats: satsFromJson(u.value, 'utxos'), confirmed: u.status.confirmed }, u.status));
  }

  async feeRate(targetBlocks: number): Promise<number> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new ImError('IM_BAD_REQUEST', 'targetBlocks is a whole number ≥ 1');
    const est = parseJson(await this.#get('/fee-estimates', 'fee estimates'), feeSchema, 'fee estimates');
    const targets = Object.entries(est).map(([t, rate]) => ({ t: Number(t), rate })).sort((a, b) => a.t - b.t);
    if (targets.length === 0) throw badResponse('fee estimates', { reason: 'no estimates (backend has too little data)', noEstimate: true });
    const pick = targets.find((x) => x.t >= targetBlocks) ?? { rate: Math.min(...targets.map((x) => x.rate)) };
    return Math.max(1, pick.rate);
  }

  async broadcast(txHex: string): Promise<string> {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(txHex)) throw new ImError('IM_BAD_REQUEST', 'transaction must be hex');
    const ans = await send(`${this.#base}/tx`, { method: 'POST', body: txHex, headers: { 'content-type': 'text/plain' }, timeoutMs: this.#timeoutMs }, 'broadcast');
    if (ans.status === 400) {
      throw new ImError('IM_BTC_CHAIN_BAD_RESPONSE', `broadcast rejected by the node: ${ans.text.slice(0, 300)}`, {
        details: { rejected: true, message: ans.text.slice(0, 1000) },
      });
    }
    const txid = ans.text.trim();
    if (ans.status !== 200 || !TXID_RE.test(txid)) throw badResponse('broadcast', { status: ans.status, body: ans.text.slice(0, 200) });
    return txid;
  }

  async #get(path: string, what: string): Promise<string> {
    const ans = await send(`${this.#base}${path}`, { timeoutMs: this.#timeoutMs }, what);
    if (ans.status !== 200) throw badResponse(what, { status: ans.status, body: ans.text.slice(0, 200) });
    return ans.text;
  }
}

function toChainTx(tx: z.infer<typeof txSchema>): ChainTx {
  const outputs = tx.vout.map((o, vout) => {
    const valueSats = satsFromJson(o.value, 'address txs');
    return o.scriptpubkey_address === undefined ? { vout, valueSats } : { vout, address: o.scriptpubkey_address, valueSats };
  });
  return withBlock({ txid: tx.txid, confirmed: tx.status.confirmed, outputs }, tx.status);
}

function withBlock<T extends { confirmed: boolean }>(base: T, s: z.infer<typeof statusSchema>): T & { blockHeight?: number; blockHash?: string } {
  if (!s.confirmed) return base;
  if (s.block_height === undefined) throw badResponse('tx status', { reason: 'confirmed without block_height' });
  return s.block_hash === undefined ? { ...base, blockHeight: s.block_height } : { ...base, blockHeight: s.block_height, blockHash: s.block_hash };
}

export function checkTxid(txid: string): void {
  if (!TXID_RE.test(txid)) throw new ImError('IM_BAD_REQUEST', 'txid must be 64 lowercase hex characters', { details: { txid } });
}
