// Bitcoin Core's JSON-RPC 1.0 (HTTP basic auth, /wallet/<name> for wallet
// calls, errors as HTTP 500 with { result: null, error: { code, message } })
// over a FakeChain, for just the methods BitcoindBackend uses. The wallet
// watches the addresses of imported `addr(…)#checksum` descriptors.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeChain } from './chain.js';
import { FakeHttpServer, sendJson } from './server.js';

class RpcError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

const btc = (sats: bigint): number => Number(sats) / 1e8;

export class FakeBitcoind {
  readonly chain: FakeChain;
  readonly server: FakeHttpServer;
  readonly watched = new Set<string>();
  readonly descriptors: string[] = [];
  readonly calls: string[] = [];
  /** The next sendrawtransaction is refused with this message (code -26). */
  rejectBroadcast: string | undefined;
  readonly #auth: string;
  readonly #wallet: string;
  /** Wallet transactions ever seen, in arrival order (the wallet remembers vanished ones). */
  readonly #seen: string[] = [];

  constructor(opts: { user?: string; password?: string; wallet?: string; chain?: FakeChain } = {}) {
    this.chain = opts.chain ?? new FakeChain();
    this.#auth = `Basic ${Buffer.from(`${opts.user ?? 'rpc'}:${opts.password ?? 'secret'}`).toString('base64')}`;
    this.#wallet = opts.wallet ?? 'deposits';
    this.server = new FakeHttpServer((req, res, body) => this.#handle(req, res, body));
  }

  static async start(opts?: ConstructorParameters<typeof FakeBitcoind>[0]): Promise<FakeBitcoind> {
    const f = new FakeBitcoind(opts);
    await f.server.start();
    return f;
  }

  get url(): string {
    return this.server.url;
  }

  close(): Promise<void> {
    return this.server.close();
  }

  #handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    if (req.headers.authorization !== this.#auth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="jsonrpc"' });
      res.end();
      return;
    }
    let id: unknown = null;
    try {
      const call = JSON.parse(body) as { id?: unknown; method?: unknown; params?: unknown };
      id = call.id ?? null;
      if (typeof call.method !== 'string' || !Array.isArray(call.params)) throw new RpcError(-32600, 'Invalid Request object');
      this.calls.push(call.method);
      const wallet = (req.url ?? '/').startsWith('/wallet/') ? decodeURIComponent((req.url ?? '').slice('/wallet/'.length)) : undefined;
      const result = this.#call(call.method, call.params as unknown[], wallet);
      sendJson(res, 200, { result, error: null, id });
    } catch (err) {
      const e = err instanceof RpcError ? err : new RpcError(-32700, 'Parse error');
      sendJson(res, e.code === -32601 ? 404 : 500, { result: null, error: { code: e.code, message: e.message }, id });
    }
  }

  #walletTxids(): string[] {
    for (const t of this.chain.txs.keys()) {
      if (!this.#seen.includes(t) && (this.chain.txs.get(t) ?? []).some((o) => o.address !== undefined && this.watched.has(o.address))) this.#seen.push(t);
    }
    return this.#seen;
  }

  #confs(txid: string): number {
    const loc = this.chain.location(txid);
    if (loc.inChain && loc.height !== undefined) return this.chain.tip - loc.height + 1;
    return loc.inMempool ? 0 : -1; // gone: conflicted
  }

  #call(method: string, params: unknown[], wallet: string | undefined): unknown {
    const c = this.chain;
    const needWallet = (): void => {
      if (wallet === undefined) throw new RpcError(-19, 'Wallet file not specified (must request wallet RPC through /wallet/<filename> uri-path).');
      if (wallet !== this.#wallet) throw new RpcError(-18, 'Requested wallet does not exist or is not loaded');
    };
    switch (method) {
      case 'getblockcount':
        return c.tip;
      case 'listtransactions': {
        needWallet();
        const [, count = 10, skip = 0] = params as [string, number, number];
        const entries = this.#walletTxids().flatMap((txid) => (c.txs.get(txid) ?? []).flatMap((o, vout) => {
          if (o.address === undefined || !this.watched.has(o.address)) return [];
          const confs = this.#confs(txid);
          const loc = c.location(txid);
          return [{
            address: o.address, category: 'receive', amount: btc(o.valueSats), label: '', vout, confirmations: confs, txid,
            ...(loc.inChain ? { blockhash: loc.blockHash, blockheight: loc.height, blockindex: 1, blocktime: 1_700_000_000 } : { trusted: false }),
            time: 1_700_000_000, timereceived: 1_700_000_000, 'bip125-replaceable': 'no',
          }];
        }));
        // Newest `count` after skipping the newest `skip`, returned oldest first.
        return entries.slice(Math.max(0, entries.length - skip - count), Math.max(0, entries.length - skip));
      }
      case 'gettransaction': {
        needWallet();
        const txid = String(params[0]);
        if (!this.#walletTxids().includes(txid)) throw new RpcError(-5, 'Invalid or non-wallet transaction id');
        const loc = c.location(txid);
        return { txid, confirmations: this.#confs(txid), ...(loc.inChain ? { blockhash: loc.blockHash, blockheight: loc.height } : {}), details: [], hex: '' };
      }
      case 'getrawtransaction': {
        const txid = String(params[0]);
        const loc = c.location(txid);
        if (!loc.inChain && !loc.inMempool) throw new RpcError(-5, 'No such mempool or blockchain transaction. Use gettransaction for wallet transactions.');
        return { txid, hex: '', ...(loc.inChain ? { blockhash: loc.blockHash, confirmations: this.#confs(txid) } : {}) };
      }
      case 'listunspent': {
        needWallet();
        const addrs = (params[2] as string[] | undefined) ?? [...this.watched];
        return addrs.filter((a) => this.watched.has(a)).flatMap((a) => c.utxos(a).map((u) => ({
          txid: u.txid, vout: u.vout, address: a, amount: btc(u.valueSats), confirmations: this.#confs(u.txid), spendable: false, solvable: true, safe: u.confirmed,
        })));
      }
      case 'estimatesmartfee': {
        const target = Number(params[0]);
        const entries = Object.entries(c.fees).map(([t, r]) => [Number(t), r] as const).sort((x, y) => x[0] - y[0]);
        const pick = entries.find(([t]) => t >= target) ?? entries[entries.length - 1];
        if (pick === undefined) return { errors: ['Insufficient data or no feerate found'], blocks: 0 };
        return { feerate: pick[1] / 1e5, blocks: pick[0] };
      }
      case 'sendrawtransaction': {
        if (this.rejectBroadcast !== undefined) {
          const msg = this.rejectBroadcast;
          this.rejectBroadcast = undefined;
          throw new RpcError(-26, msg);
        }
        const hex = String(params[0]);
        if (!/^(?:[0-9a-f]{2})+$/i.test(hex)) throw new RpcError(-22, 'TX decode failed');
        const once = createHash('sha256').update(Buffer.from(hex, 'hex')).digest();
        const txid = Buffer.from(createHash('sha256').update(once).digest()).reverse().toString('hex');
        c.addTx([], txid);
        return txid;
      }
      case 'importdescriptors': {
        needWallet();
        const reqs = params[0] as Array<{ desc: string }>;
        return reqs.map(({ desc }) => {
          if (!/#[a-z0-9]{8}$/.test(desc)) return { success: false, error: { code: -5, message: 'Missing checksum' } };
          this.descriptors.push(desc);
          const addr = /^addr\(([^)]+)\)#/.exec(desc)?.[1];
          if (addr !== undefined) this.watched.add(addr);
          return { success: true };
        });
      }
      default:
        throw new RpcError(-32601, 'Method not found');
    }
  }
}
