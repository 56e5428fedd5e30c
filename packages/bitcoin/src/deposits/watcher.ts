// The I/O driver around reconcileDeposits: reads the chain, reconciles,
// hands the changes to the store. Nothing is saved unless every read
// succeeded, so a backend failure leaves the state exactly as it was.
import { ImError } from '@idlemesh/protocol';
import type { ChainBackend } from '../chain/types.js';
import { DEFAULT_MIN_CONF, reconcileDeposits, statusesNeeded } from './reconcile.js';
import type { DepositAction, DepositRecord, ObservedOutput, ObservedStatus } from './reconcile.js';

export interface DepositStore {
  load(): Promise<DepositRecord[]>;
  /** Upserts the records by outpoint; the caller applies the ledger transfers for `actions` in the same transaction. */
  save(records: DepositRecord[], actions: DepositAction[]): Promise<void>;
}

export interface DepositWatcherOptions {
  backend: ChainBackend;
  store: DepositStore;
  /** The deposit addresses to watch, read at every poll. */
  addresses: () => string[] | Promise<string[]>;
  minConf?: number;
  /** Credited deposits this deep are final and no longer re-checked. Default 100. */
  finalDepth?: number;
  /** Backend requests in flight at once. Default 4. */
  concurrency?: number;
}

export interface PollResult {
  tip: number;
  records: DepositRecord[];
  actions: DepositAction[];
}

export class DepositWatcher {
  readonly #o: Required<DepositWatcherOptions>;

  constructor(opts: DepositWatcherOptions) {
    this.#o = { minConf: DEFAULT_MIN_CONF, finalDepth: 100, concurrency: 4, ...opts };
  }

  async pollOnce(): Promise<PollResult> {
    const { backend, store, minConf, finalDepth, concurrency } = this.#o;
    const known = await store.load();
    const addresses = [...new Set(await this.#o.addresses())];
    // Tip first: heights read afterwards can only be newer, so confirmations
    // are never overstated by a block that arrives mid-poll.
    const tip = await chainRead(() => backend.tipHeight());
    const observed: ObservedOutput[] = [];
    await eachLimit(addresses, concurrency, async (address) => {
      for (const tx of await chainRead(() => backend.addressTxs(address))) {
        for (const o of tx.outputs) {
          if (o.address !== address) continue;
          const out: ObservedOutput = { txid: tx.txid, vout: o.vout, address, valueSats: o.valueSats, confirmed: tx.confirmed };
          if (tx.blockHeight !== undefined) out.blockHeight = tx.blockHeight;
          if (tx.blockHash !== undefined) out.blockHash = tx.blockHash;
          observed.push(out);
        }
      }
    });
    const statuses = new Map<string, ObservedStatus>();
    await eachLimit(statusesNeeded(known, tip, finalDepth), concurrency, async (txid) => {
      statuses.set(txid, await chainRead(() => backend.txStatus(txid)));
    });
    const { records, actions } = reconcileDeposits({ known, observed, statuses, tip, minConf });
    if (records.length > 0 || actions.length > 0) await store.save(records, actions);
    return { tip, records, actions };
  }
}

/** Backend errors keep their code; anything else thrown by a backend counts as unavailability. */
async function chainRead<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof ImError) throw err;
    throw new ImError('IM_BTC_CHAIN_UNAVAILABLE', 'chain backend failed', { cause: err });
  }
}

async function eachLimit<T>(items: T[], limit: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await f(item);
      } catch (err) {
        failed = true; // the other workers stop taking items
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
