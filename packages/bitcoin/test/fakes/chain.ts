// A tiny in-memory chain: blocks of txids, a mempool, reorgs. FakeEsplora and
// FakeBitcoind serve it over HTTP; asBackend() serves it directly (for
// property tests that run thousands of steps).
import type { ChainBackend, ChainTx, ChainUtxo, TxStatus } from '../../src/chain/types.js';
import { randomHex } from './server.js';

export interface FakeOutput {
  address?: string;
  valueSats: bigint;
}

interface Block {
  hash: string;
  txids: string[];
}

export interface TxLocation {
  inChain: boolean;
  inMempool: boolean;
  height?: number;
  blockHash?: string;
}

export class FakeChain {
  readonly blocks: Block[] = [{ hash: randomHex(), txids: [] }];
  readonly mempool: string[] = [];
  readonly txs = new Map<string, FakeOutput[]>();
  /** Outpoints (txid:vout) spent by broadcast transactions; no longer unspent. */
  readonly spent = new Set<string>();
  /** Raw transactions broadcast, in order. */
  readonly broadcasts: string[] = [];
  /** target blocks → sat/vB, as Esplora's /fee-estimates. */
  fees: Record<string, number> = { '1': 25.5, '3': 12.1, '6': 8, '144': 1.2 };

  get tip(): number {
    return this.blocks.length - 1;
  }

  /** A mempool transaction paying `sats` to `address` (plus `extra` outputs). Returns its txid. */
  pay(address: string, sats: bigint, extra: FakeOutput[] = []): string {
    return this.addTx([{ address, valueSats: sats }, ...extra]);
  }

  addTx(outputs: FakeOutput[], txid = randomHex()): string {
    this.txs.set(txid, outputs);
    if (!this.mempool.includes(txid) && !this.location(txid).inChain) this.mempool.push(txid);
    return txid;
  }

  /** Mines n blocks; the first takes the whole mempool unless include is 'none'. */
  mine(n = 1, include: 'mempool' | 'none' = 'mempool'): string[] {
    const hashes: string[] = [];
    for (let i = 0; i < n; i++) {
      const txids = include === 'mempool' ? this.mempool.splice(0) : [];
      const block = { hash: randomHex(), txids };
      this.blocks.push(block);
      hashes.push(block.hash);
    }
    return hashes;
  }

  /**
   * Disconnects the top `depth` blocks; their txs go back to the mempool
   * except `drop` (double-spent away). Then mines `newBlocks` (default
   * depth + 1) so the new branch is longer, re-mining the mempool unless
   * include is 'none'.
   */
  reorg(depth: number, opts: { drop?: string[]; newBlocks?: number; include?: 'mempool' | 'none' } = {}): void {
    if (depth < 1 || depth >= this.blocks.length) throw new Error(`cannot reorg ${depth} blocks`);
    const gone = this.blocks.splice(this.blocks.length - depth, depth);
    const drop = new Set(opts.drop ?? []);
    const back = gone.flatMap((b) => b.txids).filter((t) => !drop.has(t));
    this.mempool.unshift(...back);
    for (const t of drop) this.vanish(t);
    this.mine(opts.newBlocks ?? depth + 1, opts.include ?? 'mempool');
  }

  /** Takes a mempool tx away (replaced by fee, evicted). */
  vanish(txid: string): void {
    const i = this.mempool.indexOf(txid);
    if (i >= 0) this.mempool.splice(i, 1);
  }

  location(txid: string): TxLocation {
    for (let h = 0; h < this.blocks.length; h++) {
      const b = this.blocks[h] as Block;
      if (b.txids.includes(txid)) return { inChain: true, inMempool: false, height: h, blockHash: b.hash };
    }
    return { inChain: false, inMempool: this.mempool.includes(txid) };
  }

  /** Esplora's order: mempool newest first, then confirmed newest first. */
  addressHistory(address: string): { mempool: string[]; confirmed: string[] } {
    const pays = (t: string): boolean => (this.txs.get(t) ?? []).some((o) => o.address === address);
    const confirmed = this.blocks.flatMap((b) => b.txids).filter(pays).reverse();
    return { mempool: this.mempool.filter(pays).reverse(), confirmed };
  }

  chainTx(txid: string): ChainTx {
    const loc = this.location(txid);
    const outputs = (this.txs.get(txid) ?? []).map((o, vout) => (o.address === undefined ? { vout, valueSats: o.valueSats } : { vout, address: o.address, valueSats: o.valueSats }));
    const tx: ChainTx = { txid, confirmed: loc.inChain, outputs };
    if (loc.height !== undefined) tx.blockHeight = loc.height;
    if (loc.blockHash !== undefined) tx.blockHash = loc.blockHash;
    return tx;
  }

  status(txid: string): TxStatus {
    const loc = this.location(txid);
    const s: TxStatus = { found: loc.inChain || loc.inMempool, confirmed: loc.inChain };
    if (loc.height !== undefined) s.blockHeight = loc.height;
    if (loc.blockHash !== undefined) s.blockHash = loc.blockHash;
    return s;
  }

  utxos(address: string): ChainUtxo[] {
    const h = this.addressHistory(address);
    return [...h.mempool, ...h.confirmed].flatMap((txid) => {
      const tx = this.chainTx(txid);
      return tx.outputs.filter((o) => o.address === address && !this.spent.has(`${txid}:${o.vout}`)).map((o) => {
        const u: ChainUtxo = { txid, vout: o.vout, valueSats: o.valueSats, confirmed: tx.confirmed };
        if (tx.blockHeight !== undefined) u.blockHeight = tx.blockHeight;
        return u;
      });
    });
  }

  /** The same chain as a ChainBackend, without HTTP. */
  asBackend(): ChainBackend {
    return {
      tipHeight: async () => this.tip,
      addressTxs: async (a) => {
        const h = this.addressHistory(a);
        return [...h.mempool, ...h.confirmed].map((t) => this.chainTx(t));
      },
      txStatus: async (t) => this.status(t),
      utxos: async (a) => this.utxos(a),
      feeRate: async () => 1,
      broadcast: async () => randomHex(),
    };
  }
}
