// Bitcoin Core JSON-RPC 1.0 over HTTP basic auth, against a watch-only
// descriptor wallet. Address history comes from `listtransactions` (paged,
// watch-only included) filtered to the address: bitcoind has no address
// index, so the history is what the wallet itself sees — every transaction
// with an output to the address (a spend shows up as the missing utxo).
import { ImError } from '@idlemesh/protocol';
import { z } from 'zod';
import { badResponse, parseJson, satsFromBtc, send } from './http.js';
import { checkTxid } from './esplora.js';
import { TXID_RE } from './types.js';
import type { ChainBackend, ChainTx, ChainTxOutput, ChainUtxo, TxStatus } from './types.js';

export interface BitcoindOptions {
  /** e.g. http://127.0.0.1:8332 */
  url: string;
  wallet: string;
  /** rpcuser/rpcpassword, or the contents of the .cookie file ("__cookie__:…"). */
  username?: string;
  password?: string;
  cookie?: string;
  timeoutMs?: number;
}

export interface ImportDescriptorOptions {
  /** Rescan from this UNIX time, or 'now' for fresh addresses (no rescan). */
  timestamp?: number | 'now';
  /** Highest child index imported for ranged (…/*) descriptors. */
  rangeEnd?: number;
}

const PAGE = 1000;
const hash = z.string().regex(TXID_RE);
const rpcEnvelope = z.object({
  result: z.unknown(),
  error: z.object({ code: z.number(), message: z.string() }).nullable(),
});
const listTx = z.object({
  address: z.string().optional(),
  category: z.string(),
  amount: z.number(),
  vout: z.number().int().nonnegative(),
  confirmations: z.number().int(),
  blockhash: hash.optional(),
  blockheight: z.number().int().nonnegative().optional(),
  txid: hash,
});
const walletTx = z.object({ confirmations: z.number().int(), blockhash: hash.optional(), blockheight: z.number().int().optional() });
const rawTx = z.object({ confirmations: z.number().int().optional(), blockhash: hash.optional() });
const unspent = z.object({ txid: hash, vout: z.number().int().nonnegative(), amount: z.number(), confirmations: z.number().int() });
const smartFee = z.object({ feerate: z.number().positive().optional(), errors: z.array(z.string()).optional() });
const importResult = z.array(z.object({ success: z.boolean(), error: z.object({ code: z.number(), message: z.string() }).optional() }));
const RECEIVE = new Set(['receive', 'generate', 'immature']);
/** -5 RPC_INVALID_ADDRESS_OR_KEY: "No such mempool or blockchain transaction" / "Invalid or non-wallet transaction id". */
const NOT_FOUND = -5;
/** -28 RPC_IN_WARMUP: the node is starting. */
const WARMUP = -28;
/** Verify errors: -22 decode, -25 missing inputs / error, -26 rejected, -27 already in chain. */
const REJECTED = new Set([-22, -25, -26, -27]);

type RpcAnswer = { ok: true; result: unknown } | { ok: false; code: number; message: string };

export class BitcoindBackend implements ChainBackend {
  readonly #url: string;
  readonly #walletUrl: string;
  readonly #auth: string;
  readonly #timeoutMs: number;
  #id = 0;

  constructor(opts: BitcoindOptions) {
    const creds = opts.cookie?.trim() ?? `${opts.username ?? ''}:${opts.password ?? ''}`;
    if (creds === ':') throw new ImError('IM_BAD_REQUEST', 'bitcoind needs username/password or the cookie file contents');
    this.#url = opts.url.replace(/\/+$/, '');
    this.#walletUrl = `${this.#url}/wallet/${encodeURIComponent(opts.wallet)}`;
    this.#auth = `Basic ${Buffer.from(creds).toString('base64')}`;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async tipHeight(): Promise<number> {
    return this.#call('getblockcount', [], z.number().int().nonnegative(), false);
  }

  async addressTxs(address: string): Promise<ChainTx[]> {
    const byTxid = new Map<string, { entry: z.infer<typeof listTx>; outputs: Map<number, ChainTxOutput> }>();
    for (let skip = 0; ; skip += PAGE) {
      const page = await this.#call('listtransactions', ['*', PAGE, skip, true], z.array(listTx));
      for (const e of page) {
        // Negative confirmations: conflicted (double-spent), in neither chain nor mempool.
        if (e.address !== address || e.confirmations < 0 || !RECEIVE.has(e.category)) continue;
        const item = byTxid.get(e.txid) ?? { entry: e, outputs: new Map() };
        item.outputs.set(e.vout, { vout: e.vout, address, valueSats: satsFromBtc(e.amount, 'listtransactions') });
        byTxid.set(e.txid, item);
      }
      if (page.length < PAGE) break;
    }
    const needTip = [...byTxid.values()].some((x) => x.entry.confirmations > 0 && x.entry.blockheight === undefined);
    const tip = needTip ? await this.tipHeight() : 0;
    return [...byTxid.values()].map(({ entry, outputs }) => {
      const tx: ChainTx = { txid: entry.txid, confirmed: entry.confirmations > 0, outputs: [...outputs.values()].sort((a, b) => a.vout - b.vout) };
      return entry.confirmations > 0 ? withBlock(tx, entry.blockheight ?? tip - entry.confirmations + 1, entry.blockhash) : tx;
    });
  }

  async txStatus(txid: string): Promise<TxStatus> {
    checkTxid(txid);
    const w = await this.#rpc('gettransaction', [txid, true], true);
    if (w.ok) {
      const t = parseResult(walletTx, w.result, 'gettransaction');
      if (t.confirmations < 0) return { found: false, confirmed: false };
      if (t.confirmations === 0) return { found: true, confirmed: false };
      const height = t.blockheight ?? (await this.tipHeight()) - t.confirmations + 1;
      return withBlock({ found: true, confirmed: true }, height, t.blockhash);
    }
    if (w.code !== NOT_FOUND) throw rpcFailure('gettransaction', w);
    // Not a wallet transaction: the mempool (and the chain, with -txindex) may still know it.
    const r = await this.#rpc('getrawtransaction', [txid, true], false);
    if (!r.ok) {
      if (r.code === NOT_FOUND) return { found: false, confirmed: false };
      throw rpcFailure('getrawtransaction', r);
    }
    const t = parseResult(rawTx, r.result, 'getrawtransaction');
    if (t.confirmations === undefined || t.confirmations <= 0) return { found: true, confirmed: false };
    return withBlock({ found: true, confirmed: true }, (await this.tipHeight()) - t.confirmations + 1, t.blockhash);
  }

  async utxos(address: string): Promise<ChainUtxo[]> {
    const list = await this.#call('listunspent', [0, 9_999_999, [address], true], z.array(unspent));
    const tip = list.some((u) => u.confirmations > 0) ? await this.tipHeight() : 0;
    return list.map((u) => {
      const base: ChainUtxo = { txid: u.txid, vout: u.vout, valueSats: satsFromBtc(u.amount, 'listunspent'), confirmed: u.confirmations > 0 };
      return u.confirmations > 0 ? { ...base, blockHeight: tip - u.confirmations + 1 } : base;
    });
  }

  async feeRate(targetBlocks: number): Promise<number> {
    if (!Number.isSafeInteger(targetBlocks) || targetBlocks < 1) throw new ImError('IM_BAD_REQUEST', 'targetBlocks is a whole number ≥ 1');
    const est = await this.#call('estimatesmartfee', [targetBlocks], smartFee, false);
    if (est.feerate === undefined) throw badResponse('estimatesmartfee', { reason: 'no estimate', noEstimate: true, errors: est.errors ?? [] });
    // BTC/kvB → sat/vB: × 1e8 sat/BTC ÷ 1000 vB/kvB.
    return Math.max(1, Math.round(est.feerate * 1e8) / 1000);
  }

  async broadcast(txHex: string): Promise<string> {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(txHex)) throw new ImError('IM_BAD_REQUEST', 'transaction must be hex');
    const a = await this.#rpc('sendrawtransaction', [txHex], false);
    if (!a.ok) {
      if (REJECTED.has(a.code)) {
        throw new ImError('IM_BTC_CHAIN_BAD_RESPONSE', `broadcast rejected by the node: ${a.message}`, { details: { rejected: true, rpcCode: a.code, message: a.message } });
      }
      throw rpcFailure('sendrawtransaction', a);
    }
    return parseResult(hash, a.result, 'sendrawtransaction');
  }

  /** Adds descriptors (each with its #checksum) to the watch-only wallet. */
  async importDescriptors(descriptors: string[], opts: ImportDescriptorOptions = {}): Promise<void> {
    const requests = descriptors.map((desc) => ({
      desc,
      timestamp: opts.timestamp ?? 'now',
      ...(desc.includes('*') ? { range: [0, opts.rangeEnd ?? 999] } : {}),
    }));
    const results = await this.#call('importdescriptors', [requests], importResult);
    const failed = results.flatMap((r, i) => (r.success ? [] : [{ desc: descriptors[i], error: r.error }]));
    if (failed.length > 0 || results.length !== descriptors.length) {
      throw new ImError('IM_BTC_CHAIN_BAD_RESPONSE', 'bitcoind refused some descriptors', { details: { rejected: true, failed } });
    }
  }

  async #call<T>(method: string, params: unknown[], schema: z.ZodType<T>, wallet = true): Promise<T> {
    const a = await this.#rpc(method, params, wallet);
    if (!a.ok) throw rpcFailure(method, a);
    return parseResult(schema, a.result, method);
  }

  async #rpc(method: string, params: unknown[], wallet: boolean): Promise<RpcAnswer> {
    const body = JSON.stringify({ jsonrpc: '1.0', id: ++this.#id, method, params });
    const ans = await send(wallet ? this.#walletUrl : this.#url, {
      method: 'POST', body, timeoutMs: this.#timeoutMs, passStatus: [500],
      headers: { authorization: this.#auth, 'content-type': 'application/json' },
    }, method);
    if (ans.status === 401 || ans.status === 403) throw badResponse(method, { status: ans.status, reason: 'bitcoind refused the credentials' });
    // 404 carries a JSON-RPC error too (method or wallet not found).
    if (ans.status !== 200 && ans.status !== 500 && ans.status !== 404) throw badResponse(method, { status: ans.status, body: ans.text.slice(0, 200) });
    const env = parseJson(ans.text, rpcEnvelope, method);
    if (env.error !== null) {
      if (env.error.code === WARMUP) throw new ImError('IM_BTC_CHAIN_UNAVAILABLE', `bitcoind is starting: ${env.error.message}`);
      return { ok: false, code: env.error.code, message: env.error.message };
    }
    return { ok: true, result: env.result };
  }
}

function parseResult<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw badResponse(what, { issues: r.error.issues.slice(0, 5) });
  return r.data;
}

function rpcFailure(method: string, a: { code: number; message: string }): ImError {
  return badResponse(method, { rpcCode: a.code, message: a.message });
}

function withBlock<T extends object>(base: T, height: number, blockHash: string | undefined): T & { blockHeight: number; blockHash?: string } {
  return blockHash === undefined ? { ...base, blockHeight: height } : { ...base, blockHeight: height, blockHash };
}
