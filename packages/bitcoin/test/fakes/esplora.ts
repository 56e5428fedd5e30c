// Esplora's REST API over a FakeChain, paging address history the way
// Esplora does: /txs = up to 50 mempool + newest 25 confirmed,
// /txs/chain/:last_seen_txid = the next 25 confirmed.
import { createHash } from 'node:crypto';
import { Transaction } from '@scure/btc-signer';
import { hex as hexCodec } from '@scure/base';
import { scriptToAddress } from '../../src/wallet/address.js';
import type { BitcoinNetwork } from '../../src/wallet/network.js';
import type { ServerResponse } from 'node:http';
import { FakeChain } from './chain.js';
import { FakeHttpServer, sendJson, sendText } from './server.js';

const MEMPOOL_PAGE = 50;
const CHAIN_PAGE = 25;

export class FakeEsplora {
  readonly chain: FakeChain;
  readonly server: FakeHttpServer;
  /** Every request path, in order. */
  readonly requests: string[] = [];
  /** Answer every request with this HTTP status (e.g. 503) while set. */
  failWith: number | undefined;
  /** Answer JSON endpoints with something that is not the API while set. */
  corrupt = false;
  /** The next broadcast is refused with this bitcoind message. */
  rejectBroadcast: string | undefined;
  /** Broadcast transactions are decoded for this network's addresses. */
  network: BitcoinNetwork = 'regtest';

  constructor(chain = new FakeChain()) {
    this.chain = chain;
    this.server = new FakeHttpServer((req, res, body) => this.#handle(req.method ?? 'GET', req.url ?? '/', body, res));
  }

  static async start(chain?: FakeChain): Promise<FakeEsplora> {
    const f = new FakeEsplora(chain);
    await f.server.start();
    return f;
  }

  get url(): string {
    return this.server.url;
  }

  pay(address: string, sats: bigint): string {
    return this.chain.pay(address, sats);
  }

  mine(n = 1): string[] {
    return this.chain.mine(n);
  }

  reorg(depth: number, opts?: { drop?: string[]; newBlocks?: number; include?: 'mempool' | 'none' }): void {
    this.chain.reorg(depth, opts);
  }

  goAway(): Promise<void> {
    return this.server.goAway();
  }

  comeBack(): Promise<void> {
    return this.server.comeBack();
  }

  close(): Promise<void> {
    return this.server.close();
  }

  #handle(method: string, url: string, body: string, res: ServerResponse): void {
    this.requests.push(`${method} ${url}`);
    if (this.failWith !== undefined) return sendText(res, this.failWith, 'unavailable');
    const c = this.chain;
    const json = (v: unknown): void => (this.corrupt ? sendText(res, 200, '{"txid": [') : sendJson(res, 200, v));
    const parts = url.split('?')[0]?.split('/').filter((p) => p !== '') ?? [];
    const [a, b, d, e, f] = parts;
    if (method === 'GET' && a === 'blocks' && b === 'tip' && d === 'height') return sendText(res, 200, this.corrupt ? 'tip' : String(c.tip));
    if (method === 'GET' && a === 'fee-estimates') return json(c.fees);
    if (method === 'GET' && a === 'tx' && b !== undefined && d === 'status') {
      const s = c.status(b);
      if (!s.found) return sendText(res, 404, 'Transaction not found');
      return json({ confirmed: s.confirmed, ...(s.confirmed ? { block_height: s.blockHeight, block_hash: s.blockHash, block_time: 1_700_000_000 } : {}) });
    }
    if (method === 'GET' && a === 'address' && b !== undefined) {
      const addr = decodeURIComponent(b);
      const h = c.addressHistory(addr);
      if (d === 'utxo') {
        return json(c.utxos(addr).map((u) => ({ txid: u.txid, vout: u.vout, value: Number(u.valueSats), status: this.#status(u.txid) })));
      }
      if (d === 'txs' && e === undefined) return json([...h.mempool.slice(0, MEMPOOL_PAGE), ...h.confirmed.slice(0, CHAIN_PAGE)].map((t) => this.#tx(t)));
      if (d === 'txs' && e === 'mempool') return json(h.mempool.slice(0, MEMPOOL_PAGE).map((t) => this.#tx(t)));
      if (d === 'txs' && e === 'chain') {
        const start = f === undefined ? 0 : h.confirmed.indexOf(f) + 1;
        if (f !== undefined && start === 0) return sendText(res, 400, 'Invalid last_seen_txid');
        return json(h.confirmed.slice(start, start + CHAIN_PAGE).map((t) => this.#tx(t)));
      }
    }
    if (method === 'POST' && a === 'tx' && b === undefined) {
      if (this.rejectBroadcast !== undefined) {
        const msg = this.rejectBroadcast;
        this.rejectBroadcast = undefined;
        return sendText(res, 400, `sendrawtransaction RPC error: {"code":-26,"message":"${msg}"}`);
      }
      const hex = body.trim();
      if (!/^(?:[0-9a-f]{2})+$/i.test(hex)) return sendText(res, 400, 'sendrawtransaction RPC error: {"code":-22,"message":"TX decode failed"}');
      // A real transaction is decoded: its txid, outputs and the coins it spends, as a node would see them.
      let decoded: Transaction | undefined;
      try {
        decoded = Transaction.fromRaw(hexCodec.decode(hex.toLowerCase()), { allowUnknownOutputs: true });
      } catch {
        decoded = undefined;
      }
      if (decoded === undefined) {
        // sha256d of the raw bytes: the real txid for non-segwit transactions.
        const once = createHash('sha256').update(Buffer.from(hex, 'hex')).digest();
        const txid = Buffer.from(createHash('sha256').update(once).digest()).reverse().toString('hex');
        c.addTx([], txid);
        return sendText(res, 200, txid);
      }
      const outputs = Array.from({ length: decoded.outputsLength }, (_, i) => {
        const o = decoded.getOutput(i);
        return { address: scriptToAddress(o.script ?? new Uint8Array(), this.network), valueSats: o.amount ?? 0n };
      });
      for (let i = 0; i < decoded.inputsLength; i++) {
        const input = decoded.getInput(i);
        if (input.txid) c.spent.add(`${hexCodec.encode(input.txid)}:${input.index ?? 0}`);
      }
      c.broadcasts.push(hex);
      c.addTx(outputs, decoded.id);
      return sendText(res, 200, decoded.id);
    }
    sendText(res, 404, 'Not found');
  }

  #status(txid: string): Record<string, unknown> {
    const s = this.chain.status(txid);
    return s.confirmed ? { confirmed: true, block_height: s.blockHeight, block_hash: s.blockHash, block_time: 1_700_000_000 } : { confirmed: false };
  }

  #tx(txid: string): Record<string, unknown> {
    const outs = this.chain.txs.get(txid) ?? [];
    return {
      txid, version: 2, locktime: 0, vin: [], size: 200, weight: 800, fee: 500,
      vout: outs.map((o) => ({
        scriptpubkey: '0014' + '00'.repeat(20), scriptpubkey_type: o.address === undefined ? 'op_return' : 'v0_p2wpkh',
        ...(o.address === undefined ? {} : { scriptpubkey_address: o.address }), value: Number(o.valueSats),
      })),
      status: this.#status(txid),
    };
  }
}
