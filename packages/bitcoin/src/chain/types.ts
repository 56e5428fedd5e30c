/**
 * What the settlement side needs from a view of the bitcoin chain. Amounts are
 * sats as bigint; heights are plain numbers (they stay far below 2^53).
 */
export interface ChainTxOutput {
  vout: number;
  /** Absent for outputs without an address (OP_RETURN, bare scripts). */
  address?: string;
  valueSats: bigint;
}

export interface ChainTx {
  txid: string;
  confirmed: boolean;
  blockHeight?: number;
  blockHash?: string;
  outputs: ChainTxOutput[];
}

export interface ChainUtxo {
  txid: string;
  vout: number;
  valueSats: bigint;
  confirmed: boolean;
  blockHeight?: number;
}

export interface TxStatus {
  /** false: neither in the best chain nor in the mempool (reorged out, replaced, never seen). */
  found: boolean;
  confirmed: boolean;
  blockHeight?: number;
  blockHash?: string;
}

export interface ChainBackend {
  tipHeight(): Promise<number>;
  /** Every transaction paying to or spending from the address, confirmed and mempool, fully paged. */
  addressTxs(address: string): Promise<ChainTx[]>;
  txStatus(txid: string): Promise<TxStatus>;
  utxos(address: string): Promise<ChainUtxo[]>;
  /** sat/vB, at least 1. */
  feeRate(targetBlocks: number): Promise<number>;
  /** Returns the txid. A transaction the node refuses is IM_BTC_CHAIN_BAD_RESPONSE with details.rejected = true. */
  broadcast(txHex: string): Promise<string>;
}

/** Confirmations of a transaction at the given tip: 0 while unconfirmed, never negative. */
export function confirmations(tx: { confirmed: boolean; blockHeight?: number }, tip: number): number {
  if (!tx.confirmed || tx.blockHeight === undefined) return 0;
  return Math.max(0, tip - tx.blockHeight + 1);
}

export const TXID_RE = /^[0-9a-f]{64}$/;
