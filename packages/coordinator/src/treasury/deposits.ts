/**
 * Bitcoin in: fresh BIP84 receive addresses from the treasury's watch-only
 * account key, a chain watcher that credits each (txid, vout) once after N
 * confirmations and reverses it once if a reorg takes it away, and Lightning
 * invoices credited once when settled. Every credit is a ledger transfer
 * with a deterministic id, committed with the deposit's record in one
 * transaction, so a crash or a double-delivered event credits nothing twice.
 */
import { ImError } from '@idlemesh/protocol';
import { DepositWatcher } from '@idlemesh/bitcoin';
import type { ChainBackend, DepositAction, DepositRecord, LightningNode, WatchOnlyAccount } from '@idlemesh/bitcoin';
import type { AccountInput, LedgerEvent } from '../ledger/index.js';
import type { LedgerBatch } from '../ledger/persist.js';
import { ACCOUNTS, accountInput } from '../settlement/index.js';
import type { Logger } from '../core.js';
import type { Store } from '../store/index.js';

export interface DepositsDeps {
  store: Store;
  log: Logger;
  now: () => number;
  account?: WatchOnlyAccount | undefined;
  chain?: ChainBackend | undefined;
  lightning?: LightningNode | undefined;
  minConf: number;
  gap: number;
  network: string;
}

const LN_CURSOR = 'lightning-settles';

export class Deposits {
  private watcher: DepositWatcher | undefined;

  constructor(private readonly d: DepositsDeps) {
    if (d.chain && d.account) {
      this.watcher = new DepositWatcher({
        backend: d.chain,
        minConf: d.minConf,
        addresses: async () => (await d.store.depositAddresses()).map((a) => a.address),
        store: {
          load: async () => (await d.store.records('deposit', { limit: 1_000_000 })).map((r) => r.doc as DepositRecord),
          save: (records, actions) => this.save(records, actions),
        },
      });
    }
  }

  get onChain(): boolean {
    return this.watcher !== undefined;
  }

  /** A fresh receive address for an account (within the gap limit). */
  async address(account: string): Promise<{ address: string; index: number; account: string; reused: boolean; network: string; minConf: number }> {
    const key = this.d.account;
    if (!key) throw new ImError('IM_SETTLEMENT_DISABLED', 'this coordinator has no treasury account key (--treasury-key): on-chain deposits are off');
    checkAccount(account);
    const a = await this.d.store.issueDepositAddress(account, (i) => key.receive(i).address, this.d.gap, this.d.now());
    return { address: a.address, index: a.index, account: a.account, reused: a.reused, network: this.d.network, minConf: this.d.minConf };
  }

  /** One poll of the chain (leader only). */
  async pollChain(): Promise<{ credited: number; reversed: number }> {
    if (!this.watcher) return { credited: 0, reversed: 0 };
    const r = await this.watcher.pollOnce();
    return { credited: r.actions.filter((a) => a.type === 'credit').length, reversed: r.actions.filter((a) => a.type === 'reverse').length };
  }

  /** Records and ledger transfers of one reconcile, in one transaction. */
  private async save(records: DepositRecord[], actions: DepositAction[]): Promise<void> {
    const owners = new Map((await this.d.store.depositAddresses()).map((a) => [a.address, a.account]));
    const accounts: AccountInput[] = [{ id: ACCOUNTS.treasury, kind: 'treasury' }];
    const events: LedgerEvent[] = [];
    const freeze: Array<{ accountId: string; frozen: boolean }> = [];
    const flags: Array<{ kind: string; id: string; state: string; doc: unknown }> = [];
    for (const a of actions) {
      const owner = owners.get(a.address);
      if (owner === undefined) {
        this.d.log.error({ outpoint: a.outpoint, address: a.address }, 'deposit to an address no account owns; not credited');
        continue;
      }
      const input = accountInput(owner);
      if (input) accounts.push(input);
      // The how-many-th credit or reversal of this outpoint, from the log: ids stay unique and deterministic.
      const history = await this.d.store.ledgerTransfers({ ref: a.outpoint, limit: 1000 });
      const n = history.filter((t) => t.code === (a.type === 'credit' ? 'deposit' : 'correction')).length;
      const amount = a.valueSats * 1000n;
      const meta = { outpoint: a.outpoint, address: a.address };
      if (a.type === 'credit') {
        events.push({ id: `deposit:${a.outpoint}:${n}`, debitAccount: ACCOUNTS.treasury, creditAccount: owner, amount, code: 'deposit', ref: a.outpoint, meta });
        this.d.log.info({ account: owner, outpoint: a.outpoint, sats: a.valueSats.toString() }, 'deposit credited');
        continue;
      }
      const [bal] = await this.d.store.ledgerBalances({ ids: [owner], limit: 1 });
      const available = bal?.available ?? 0n;
      const take = available < amount ? (available > 0n ? available : 0n) : amount;
      if (take > 0n) events.push({ id: `reverse:${a.outpoint}:${n}`, debitAccount: owner, creditAccount: ACCOUNTS.treasury, amount: take, code: 'correction', ref: a.outpoint, meta });
      if (take < amount) {
        // The money was already spent: take what is there, freeze the account, and flag it for the operator.
        freeze.push({ accountId: owner, frozen: true });
        flags.push({ kind: 'flag', id: `reorg:${a.outpoint}:${n}`, state: 'open', doc: { account: owner, outpoint: a.outpoint, shortfallMsat: amount - take, reason: 'deposit reversed by a reorg after it was spent' } });
        this.d.log.error({ account: owner, outpoint: a.outpoint, shortfallMsat: (amount - take).toString() }, 'REORG: a credited deposit vanished and the account cannot cover it; account frozen and flagged');
      } else {
        this.d.log.warn({ account: owner, outpoint: a.outpoint }, 'deposit reversed: its transaction left the best chain');
      }
    }
    const batch: LedgerBatch | undefined = events.length + freeze.length > 0 ? { accounts, events, freeze } : undefined;
    await this.d.store.commitRecords({
      records: [...records.map((r) => ({ kind: 'deposit', id: r.outpoint, state: r.state, doc: r })), ...flags],
      usedAddresses: [...new Set(records.map((r) => r.address))],
      ...(batch ? { batch } : {}),
    }, this.d.now());
  }

  /** A Lightning invoice that credits `account` once it is paid. */
  async invoice(account: string, sats: number): Promise<{ bolt11: string; paymentHash: string; expiresAt: number; account: string; amountMsat: string }> {
    const ln = this.d.lightning;
    if (!ln) throw new ImError('IM_SETTLEMENT_DISABLED', 'this coordinator has no Lightning node (--lightning): Lightning deposits are off');
    checkAccount(account);
    const amountMsat = BigInt(sats) * 1000n;
    const label = `idlemesh:${this.d.now().toString(36)}:${Math.random().toString(36).slice(2, 10)}`;
    const inv = await ln.createInvoice({ amountMsat, memo: `idlemesh deposit to ${account}`, expirySec: 3600, label });
    await this.d.store.commitRecords({ records: [{ kind: 'invoice', id: inv.paymentHash, state: 'open', doc: { account, amountMsat, bolt11: inv.bolt11, expiresAt: inv.expiresAt } }] }, this.d.now());
    return { bolt11: inv.bolt11, paymentHash: inv.paymentHash, expiresAt: inv.expiresAt, account, amountMsat: amountMsat.toString() };
  }

  /** Follows settled invoices from the stored cursor (leader only); each credits once. */
  async pollLightning(waitMs: number): Promise<number> {
    const ln = this.d.lightning;
    if (!ln) return 0;
    const [cur] = await this.d.store.records('cursor', { ids: [LN_CURSOR], limit: 1 });
    const cursor = (cur?.doc as { cursor?: string } | undefined)?.cursor ?? '0';
    const r = await ln.settledSince(cursor, waitMs);
    if (r.settled.length === 0 && r.cursor === cursor) return 0;
    const invoices = new Map((await this.d.store.records('invoice', { ids: r.settled.map((s) => s.paymentHash), limit: r.settled.length + 1 })).map((x) => [x.id, x]));
    const accounts: AccountInput[] = [{ id: ACCOUNTS.treasury, kind: 'treasury' }];
    const events: LedgerEvent[] = [];
    const records: Array<{ kind: string; id: string; state: string; doc: unknown }> = [{ kind: 'cursor', id: LN_CURSOR, state: 'ok', doc: { cursor: r.cursor } }];
    const seen = new Set<string>();
    for (const s of r.settled) {
      const inv = invoices.get(s.paymentHash);
      if (!inv || seen.has(s.paymentHash)) continue; // not ours (the node has other invoices), or delivered twice
      seen.add(s.paymentHash);
      const doc = inv.doc as { account: string };
      const input = accountInput(doc.account);
      if (input) accounts.push(input);
      events.push({ id: `ln:${s.paymentHash}`, debitAccount: ACCOUNTS.treasury, creditAccount: doc.account, amount: s.amountMsat, code: 'deposit', ref: `ln:${s.paymentHash}`, meta: { paymentHash: s.paymentHash } });
      records.push({ kind: 'invoice', id: s.paymentHash, state: 'settled', doc: { ...doc, receivedMsat: s.amountMsat, settleIndex: s.settleIndex } });
    }
    await this.d.store.commitRecords({ records, ...(events.length > 0 ? { batch: { accounts, events } } : {}) }, this.d.now());
    if (events.length > 0) this.d.log.info({ credited: events.length }, 'lightning deposits credited');
    return events.length;
  }
}

function checkAccount(account: string): void {
  const input = accountInput(account);
  if (!input || (input.kind !== 'buyer' && input.kind !== 'operator')) {
    throw new ImError('IM_VALIDATION', `deposits go to buyer:<caller> or operator:<node id> accounts, not ${JSON.stringify(account)}`);
  }
}
