/**
 * Bitcoin out. A withdrawal moves its amount to payouts-in-flight at once.
 * On-chain withdrawals are batched into one unsigned PSBT for the treasury's
 * own signer; the signed PSBT is checked to pay exactly the approved payouts,
 * broadcast, and the payouts complete at confirmation. Lightning withdrawals
 * are paid through the node with a max fee; they return only when the node
 * says the payment finally failed, and a payment in an unknown state is
 * reconciled, never retried.
 *
 * At most once, whatever crashes: every step is a state change committed
 * (with its ledger transfers) only from the state before it; a withdrawal is
 * marked `paying` before the Lightning node is asked to pay, and a batch's
 * transaction is fixed (its txid) before it is signed, so the same coins can
 * only ever be sent by that one transaction.
 */
import { ImError, fromHex, generateNodeKey, importNodeKey, payoutApprovalBytes, sign, toHex } from '@idlemesh/protocol';
import type { NodeKeyPair } from '@idlemesh/protocol';
import {
  buildPayoutBatch, decodeInvoice, dustLimitSats, finalizeSignedPsbt, parseAddress, psbtTxid, verifyPayoutPsbt,
} from '@idlemesh/bitcoin';
import type { BatchOutput, ChainBackend, LightningNode, Utxo, WatchOnlyAccount } from '@idlemesh/bitcoin';
import type { AccountInput, LedgerEvent } from '../ledger/index.js';
import type { LedgerBatch } from '../ledger/persist.js';
import { ACCOUNTS, accountInput } from '../settlement/index.js';
import type { Logger } from '../core.js';
import type { Store } from '../store/index.js';
import type { AuditSink } from '../identity/sink.js';

export interface PayoutsDeps {
  store: Store;
  log: Logger;
  now: () => number;
  network: 'mainnet' | 'testnet' | 'signet' | 'regtest';
  account?: WatchOnlyAccount | undefined;
  chain?: ChainBackend | undefined;
  lightning?: LightningNode | undefined;
  minConf: number;
  minWithdrawalSats: number;
  lnMaxFeeBps: number;
  /** The audit log's latest checkpoint, to anchor in the batch's OP_RETURN (optional). */
  anchor?: (() => Promise<{ size: number; root: Uint8Array } | undefined>) | undefined;
}

export type WithdrawalState = 'queued' | 'batched' | 'paying' | 'completed' | 'failed';
export type BatchState = 'awaiting-signature' | 'signed' | 'broadcast' | 'confirmed' | 'rejected' | 'failed';

export interface Withdrawal {
  id: string;
  account: string;
  method: 'chain' | 'lightning';
  /** What left the account (msat): the on-chain amount, or the invoice plus the max routing fee. */
  amountMsat: bigint;
  address?: string;
  invoice?: string;
  paymentHash?: string;
  invoiceMsat?: bigint;
  maxFeeMsat?: bigint;
  batchId?: string;
  txid?: string;
  /** On chain: this withdrawal's share of the miner fee; Lightning: the routing fee paid. */
  feeMsat?: bigint;
  reason?: string;
  createdAt: number;
}

export interface Batch {
  id: string;
  txid: string;
  psbt: string;
  withdrawals: string[];
  approved: Array<{ id: string; address: string; valueSats: bigint }>;
  inputs: Utxo[];
  outputs: BatchOutput[];
  feeSats: bigint;
  treasuryFeeSats: bigint;
  feeShares: Record<string, bigint>;
  changeIndex?: number;
  txHex?: string;
  createdAt: number;
  reason?: string;
  /** The coordinator payout key's signature over {batch, txid, approved}. */
  approval?: { publicKey: string; sig: string };
  /** The audit checkpoint anchored in the batch's OP_RETURN output. */
  anchor?: { size: number; root: string };
}

export interface WithdrawRequest {
  account: string;
  sats?: number;
  address?: string;
  invoice?: string;
  idempotencyKey?: string;
}

const OPEN_BATCH: readonly BatchState[] = ['awaiting-signature', 'signed', 'broadcast', 'failed'];

export class Payouts {
  audit: AuditSink | undefined;
  private key: NodeKeyPair | undefined;

  private readonly broadcasting = new Map<string, Promise<void>>();

  constructor(private readonly d: PayoutsDeps) {}

  /**
   * The coordinator's payout key: made once and kept in the store, so every
   * coordinator sharing it signs with the same key the treasury signer pins.
   */
  async payoutKey(): Promise<NodeKeyPair> {
    if (this.key) return this.key;
    for (let i = 0; i < 2; i++) {
      const [r] = await this.d.store.records('key', { ids: ['payout-approval'], limit: 1 });
      if (r) return (this.key = await importNodeKey(fromHex((r.doc as { pkcs8: string }).pkcs8)));
      const k = await generateNodeKey();
      try {
        await this.d.store.commitRecords({ expect: [{ kind: 'key', id: 'payout-approval', states: ['absent'] }], records: [{ kind: 'key', id: 'payout-approval', state: 'active', doc: { pkcs8: toHex(k.pkcs8), publicKey: k.publicKeyHex } }] }, this.d.now());
        return (this.key = k);
      } catch (err) {
        if (!(err instanceof ImError && err.code === 'IM_CONFLICT')) throw err; // another coordinator made it first: read theirs
      }
    }
    throw new ImError('IM_INTERNAL', 'could not create or read the payout approval key');
  }

  /** Checks everything before anything moves; then account → payouts-in-flight with the record, in one transaction. */
  async withdraw(req: WithdrawRequest): Promise<Withdrawal> {
    const now = this.d.now();
    const input = accountInput(req.account);
    if (!input || (input.kind !== 'buyer' && input.kind !== 'operator')) throw new ImError('IM_VALIDATION', `withdrawals come from buyer:… or operator:… accounts, not ${JSON.stringify(req.account)}`);
    if ((req.address === undefined) === (req.invoice === undefined)) throw new ImError('IM_VALIDATION', 'give exactly one of address (on chain) or invoice (Lightning)');
    const id = req.idempotencyKey !== undefined ? `wd_${await digest(`${req.account}\u0000${req.idempotencyKey}`)}` : `wd_${now.toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    const [prior] = await this.d.store.records('withdrawal', { ids: [id], limit: 1 });
    if (prior) return prior.doc as Withdrawal;
    let w: Withdrawal;
    if (req.address !== undefined) {
      if (!this.d.account) throw new ImError('IM_SETTLEMENT_DISABLED', 'this coordinator has no treasury key: on-chain withdrawals are off');
      if (req.sats === undefined) throw new ImError('IM_VALIDATION', 'an on-chain withdrawal needs sats');
      const parsed = parseAddress(req.address, this.d.network);
      const min = BigInt(Math.max(this.d.minWithdrawalSats, Number(dustLimitSats(parsed.type)) + 1));
      if (BigInt(req.sats) < min) throw new ImError('IM_BTC_BELOW_DUST', `the minimum withdrawal is ${min} sats (the miner fee share comes out of it)`, { details: { minSats: min.toString() } });
      w = { id, account: req.account, method: 'chain', amountMsat: BigInt(req.sats) * 1000n, address: parsed.address, createdAt: now };
    } else {
      if (!this.d.lightning) throw new ImError('IM_SETTLEMENT_DISABLED', 'this coordinator has no Lightning node: Lightning withdrawals are off');
      const inv = decodeInvoice(req.invoice!, this.d.network, now);
      if (inv.amountMsat === undefined) throw new ImError('IM_LN_INVALID_INVOICE', 'the invoice has no amount; ask for an invoice with an amount');
      if (req.sats !== undefined && BigInt(req.sats) * 1000n !== inv.amountMsat) throw new ImError('IM_VALIDATION', `sats (${req.sats}) differs from the invoice amount (${inv.amountMsat} msat)`);
      const maxFee = maxFeeMsat(inv.amountMsat, this.d.lnMaxFeeBps);
      w = {
        id, account: req.account, method: 'lightning', amountMsat: inv.amountMsat + maxFee, invoice: inv.invoice, paymentHash: inv.paymentHash,
        invoiceMsat: inv.amountMsat, maxFeeMsat: maxFee, createdAt: now,
      };
    }
    try {
      await this.d.store.commitRecords({
        // One withdrawal per invoice (a failed one frees it again, see settleLightning): checked in the same transaction.
        expect: [{ kind: 'withdrawal', id, states: ['absent'] }, ...(w.paymentHash ? [{ kind: 'ln-invoice', id: w.paymentHash, states: ['absent', 'free'] }] : [])],
        records: [{ kind: 'withdrawal', id, state: 'queued', doc: w }, ...(w.paymentHash ? [{ kind: 'ln-invoice', id: w.paymentHash, state: 'taken', doc: { withdrawal: id } }] : [])],
        batch: { accounts: [payoutsAccount(), input], events: [{ id: `wd:${id}`, debitAccount: req.account, creditAccount: ACCOUNTS.payoutsInFlight, amount: w.amountMsat, code: 'payout', ref: id }] },
      }, now);
    } catch (err) {
      if (err instanceof ImError && err.code === 'IM_CONFLICT' && w.paymentHash) throw new ImError('IM_CONFLICT', 'this invoice is already being paid or was paid');
      if (err instanceof ImError && (err.code === 'IM_LEDGER_INSUFFICIENT_FUNDS' || err.code === 'IM_LEDGER_ACCOUNT_NOT_FOUND')) {
        const [b] = await this.d.store.ledgerBalances({ ids: [req.account], limit: 1 });
        const available = b?.available ?? 0n;
        throw new ImError('IM_INSUFFICIENT_BALANCE', `the withdrawal needs ${w.amountMsat} msat but ${req.account} has ${available} msat available`,
          { details: { account: req.account, neededMsat: w.amountMsat.toString(), availableMsat: available.toString(), shortfallMsat: (w.amountMsat - available).toString() } });
      }
      throw err;
    }
    this.d.log.info({ withdrawal: id, account: req.account, method: w.method, msat: w.amountMsat.toString() }, 'withdrawal queued');
    return w;
  }

  async withdrawals(account?: string): Promise<Array<Withdrawal & { state: string }>> {
    const rows = await this.d.store.records('withdrawal', { limit: 10_000 });
    return rows.map((r) => ({ ...(r.doc as Withdrawal), state: r.state })).filter((w) => account === undefined || w.account === account);
  }

  async batches(): Promise<Array<Batch & { state: string }>> {
    return (await this.d.store.records('payout-batch', { limit: 10_000 })).map((r) => ({ ...(r.doc as Batch), state: r.state }));
  }

  async batch(id: string): Promise<Batch & { state: string }> {
    const [r] = await this.d.store.records('payout-batch', { ids: [id], limit: 1 });
    if (!r) throw new ImError('IM_NOT_FOUND', `no payout batch ${id}`);
    return { ...(r.doc as Batch), state: r.state };
  }

  /** Batches every queued on-chain withdrawal into one unsigned PSBT; undefined if there is nothing to pay. */
  async buildBatch(): Promise<(Batch & { state: string }) | undefined> {
    const { account, chain } = this.need();
    const queued = (await this.d.store.records('withdrawal', { states: ['queued'], limit: 1000 })).map((r) => r.doc as Withdrawal).filter((w) => w.method === 'chain');
    if (queued.length === 0) return undefined;
    const [cursor] = await this.d.store.records('cursor', { ids: ['change-index'], limit: 1 });
    const changeIndex = (cursor?.doc as { next?: number } | undefined)?.next ?? 0;
    const utxos = await this.utxos(account, chain, changeIndex);
    const feeRate = await chain.feeRate(6);
    const anchor = await this.d.anchor?.();
    const built = buildPayoutBatch({
      account, network: this.d.network, utxos, feeRateSatVb: Math.max(1, feeRate), changeIndex,
      ...(anchor && anchor.size > 0 ? { anchor: anchor.root } : {}),
      payouts: queued.map((w) => ({ id: w.id, address: w.address!, amountSats: w.amountMsat / 1000n })),
    });
    const id = `batch_${built.txid.slice(0, 16)}`;
    const approved = built.outputs.filter((o) => o.payoutId !== undefined).map((o) => ({ id: o.payoutId!, address: o.address, valueSats: o.valueSats }));
    const key = await this.payoutKey();
    const sig = await sign(key.privateKey, payoutApprovalBytes({ batch: id, txid: built.txid, approved: approved.map((a) => ({ ...a, valueSats: a.valueSats.toString() })) }));
    const b: Batch = {
      approval: { publicKey: key.publicKeyHex, sig },
      id, txid: built.txid, psbt: built.psbt, withdrawals: queued.map((w) => w.id),
      approved,
      inputs: built.inputs, outputs: built.outputs, feeSats: built.feeSats, treasuryFeeSats: built.treasuryFeeSats, feeShares: built.feeShares,
      createdAt: this.d.now(), ...(built.changeIndex !== undefined ? { changeIndex: built.changeIndex } : {}),
      ...(anchor && anchor.size > 0 ? { anchor: { size: anchor.size, root: Buffer.from(anchor.root).toString('hex') } } : {}),
    };
    await this.d.store.commitRecords({
      expect: queued.map((w) => ({ kind: 'withdrawal', id: w.id, states: ['queued'] })),
      records: [
        { kind: 'payout-batch', id, state: 'awaiting-signature', doc: b },
        ...queued.map((w) => ({ kind: 'withdrawal', id: w.id, state: 'batched', doc: { ...w, batchId: id, txid: built.txid, feeMsat: (built.feeShares[w.id] ?? 0n) * 1000n } })),
        ...(built.changeIndex !== undefined ? [{ kind: 'cursor', id: 'change-index', state: 'ok', doc: { next: built.changeIndex + 1 } }] : []),
      ],
    }, this.d.now());
    this.d.log.info({ batch: id, payouts: queued.length, feeSats: built.feeSats.toString() }, 'payout batch built; awaiting the treasury signature');
    await this.audit?.record({ type: 'payout.batch', subject: id, data: { state: 'awaiting-signature', txid: built.txid, approved: approved.map((a) => ({ id: a.id, address: a.address, valueSats: a.valueSats.toString() })), feeSats: built.feeSats.toString() } });
    return { ...b, state: 'awaiting-signature' };
  }

  /** The treasury's signed PSBT: checked against the approved payouts, finalized, broadcast. */
  async importSigned(batchId: string, psbt: string): Promise<Batch & { state: string }> {
    const { account, chain } = this.need();
    const b = await this.batch(batchId);
    if (b.state === 'signed' || b.state === 'broadcast' || b.state === 'confirmed') {
      if (psbtTxid(psbt) !== b.txid) throw new ImError('IM_BTC_PSBT_MISMATCH', 'this batch was already signed with another transaction');
      return b;
    }
    if (b.state !== 'awaiting-signature') throw new ImError('IM_WITHDRAWAL_STATE', `batch ${batchId} is ${b.state}`);
    if (psbtTxid(psbt) !== b.txid) throw new ImError('IM_BTC_PSBT_MISMATCH', `the PSBT spends or pays something else than batch ${batchId} (txid differs)`);
    verifyPayoutPsbt({
      psbt, account, network: this.d.network, approved: b.approved, maxFeeSats: b.feeSats + b.treasuryFeeSats,
      ...(b.anchor ? { anchor: new Uint8Array(Buffer.from(b.anchor.root, 'hex')) } : {}),
    });
    const fin = finalizeSignedPsbt(psbt);
    await this.d.store.commitRecords({ expect: [{ kind: 'payout-batch', id: batchId, states: ['awaiting-signature'] }], records: [{ kind: 'payout-batch', id: batchId, state: 'signed', doc: { ...stripState(b), txHex: fin.txHex } }] }, this.d.now());
    this.d.log.info({ batch: batchId, txid: fin.txid }, 'payout batch signed; broadcasting');
    await this.audit?.record({ type: 'payout.batch', subject: batchId, data: { state: 'signed', txid: fin.txid } });
    await this.broadcast({ ...stripState(b), txHex: fin.txHex }, chain);
    return this.batch(batchId);
  }

  /** Refuses a batch that was never broadcast (or whose broadcast failed): its withdrawals' funds return. */
  async reject(batchId: string, reason: string): Promise<Batch & { state: string }> {
    const b = await this.batch(batchId);
    if (b.state !== 'awaiting-signature' && b.state !== 'failed') throw new ImError('IM_WITHDRAWAL_STATE', `batch ${batchId} is ${b.state}: only an unsigned or failed batch can be rejected`);
    const ws = await this.d.store.records('withdrawal', { ids: b.withdrawals, limit: b.withdrawals.length });
    await this.d.store.commitRecords({
      expect: [{ kind: 'payout-batch', id: batchId, states: [b.state] }],
      records: [{ kind: 'payout-batch', id: batchId, state: 'rejected', doc: { ...stripState(b), reason } }, ...ws.map((r) => ({ kind: 'withdrawal', id: r.id, state: 'failed', doc: { ...(r.doc as Withdrawal), reason } }))],
      batch: refunds(ws.map((r) => r.doc as Withdrawal)),
    }, this.d.now());
    this.d.log.warn({ batch: batchId, reason }, 'payout batch rejected; funds returned');
    await this.audit?.record({ type: 'payout.batch', subject: batchId, data: { state: 'rejected', reason } });
    return this.batch(batchId);
  }

  /** Leader work: (re)broadcast signed batches, complete confirmed ones, pay and reconcile Lightning withdrawals. */
  async sweep(): Promise<void> {
    if (this.d.chain) {
      for (const r of await this.d.store.records('payout-batch', { states: ['signed', 'broadcast'], limit: 100 })) {
        const b = r.doc as Batch;
        if (r.state === 'signed') await this.broadcast(b, this.d.chain);
        else await this.confirm(b, this.d.chain);
      }
    }
    if (this.d.lightning) await this.payLightning(this.d.lightning);
  }

  private async broadcast(b: Batch, chain: ChainBackend): Promise<void> {
    // importSigned and the sweep both broadcast a signed batch; one at a time here. (Another coordinator may still send
    // the same transaction: harmless, it has one txid.)
    const running = this.broadcasting.get(b.id);
    if (running) return running;
    const p = this.broadcastOnce(b, chain).finally(() => this.broadcasting.delete(b.id));
    this.broadcasting.set(b.id, p);
    return p;
  }

  private async broadcastOnce(b: Batch, chain: ChainBackend): Promise<void> {
    if ((await this.batch(b.id)).state !== 'signed') return; // the sweep read it before another broadcast finished
    try {
      await chain.broadcast(b.txHex!);
    } catch (err) {
      if (!(err instanceof ImError) || err.code !== 'IM_BTC_CHAIN_BAD_RESPONSE') throw err; // unreachable: stays signed, retried
      const status = await chain.txStatus(b.txid);
      if (!status.found) {
        // Refused and nowhere to be seen. It could still be broadcast by whoever holds the signed tx, so no automatic
        // refund: an operator checks, then `idlemesh treasury reject` returns the funds.
        await this.d.store.commitRecords({ expect: [{ kind: 'payout-batch', id: b.id, states: ['signed'] }], records: [{ kind: 'payout-batch', id: b.id, state: 'failed', doc: { ...b, reason: err.message } }] }, this.d.now());
        this.d.log.error({ batch: b.id, err: err.toWire() }, 'payout broadcast refused; the batch needs an operator (idlemesh treasury reject once the tx cannot confirm)');
        return;
      }
    }
    await this.d.store.commitRecords({ expect: [{ kind: 'payout-batch', id: b.id, states: ['signed', 'broadcast'] }], records: [{ kind: 'payout-batch', id: b.id, state: 'broadcast', doc: b }] }, this.d.now());
  }

  private async confirm(b: Batch, chain: ChainBackend): Promise<void> {
    const status = await chain.txStatus(b.txid);
    if (!status.confirmed || status.blockHeight === undefined) return;
    const tip = await chain.tipHeight();
    if (tip - status.blockHeight + 1 < this.d.minConf) return;
    const ws = (await this.d.store.records('withdrawal', { ids: b.withdrawals, limit: b.withdrawals.length })).map((r) => r.doc as Withdrawal);
    const events: LedgerEvent[] = ws.map((w) => ({ id: `wd:${w.id}:sent`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: ACCOUNTS.treasury, amount: w.amountMsat, code: 'payout', ref: w.id, meta: { txid: b.txid } }));
    await this.d.store.commitRecords({
      expect: [{ kind: 'payout-batch', id: b.id, states: ['broadcast'] }],
      records: [{ kind: 'payout-batch', id: b.id, state: 'confirmed', doc: b }, ...ws.map((w) => ({ kind: 'withdrawal', id: w.id, state: 'completed', doc: w }))],
      batch: { accounts: [payoutsAccount(), { id: ACCOUNTS.treasury, kind: 'treasury' }], events },
    }, this.d.now());
    this.d.log.info({ batch: b.id, txid: b.txid, payouts: ws.length }, 'payout batch confirmed');
    await this.audit?.record({ type: 'payout.batch', subject: b.id, data: { state: 'confirmed', txid: b.txid } });
    if (b.treasuryFeeSats > 0n) await this.treasuryFee(b);
  }

  /**
   * Change below dust went to the miners: coins the treasury no longer holds
   * and no withdrawer paid. The coordinator's fees carry it, so the ledger
   * keeps matching the chain; if they cannot, a flag asks the operator.
   */
  private async treasuryFee(b: Batch): Promise<void> {
    const amount = b.treasuryFeeSats * 1000n;
    const id = `batch:${b.id}:treasury-fee`;
    const r = await this.d.store.ledgerApply({
      accounts: [{ id: ACCOUNTS.coordinatorFee, kind: 'coordinator-fee' }, { id: ACCOUNTS.treasury, kind: 'treasury' }],
      events: [{ id, debitAccount: ACCOUNTS.coordinatorFee, creditAccount: ACCOUNTS.treasury, amount, code: 'fee', ref: b.id, meta: { txid: b.txid, reason: 'change below dust went to the miners' } }],
    }, this.d.now());
    if (r.results[0]?.status === 'error') {
      await this.d.store.commitRecords({ records: [{ kind: 'flag', id, state: 'open', doc: { batch: b.id, txid: b.txid, shortfallMsat: amount, reason: 'extra miner fee (sub-dust change) not covered by coordinator fees' } }] }, this.d.now());
      this.d.log.error({ batch: b.id, msat: amount.toString() }, 'extra miner fee could not be charged to coordinator fees; flagged');
    }
  }

  private async payLightning(ln: LightningNode): Promise<void> {
    // In-flight first: reconcile what the node already has, never pay twice.
    for (const r of await this.d.store.records('withdrawal', { states: ['paying'], limit: 100 })) {
      const w = r.doc as Withdrawal;
      await this.settleLightning(w, await ln.paymentStatus(w.paymentHash!));
    }
    for (const r of await this.d.store.records('withdrawal', { states: ['queued'], limit: 100 })) {
      const w = r.doc as Withdrawal;
      if (w.method !== 'lightning') continue;
      await this.d.store.commitRecords({ expect: [{ kind: 'withdrawal', id: w.id, states: ['queued'] }], records: [{ kind: 'withdrawal', id: w.id, state: 'paying', doc: w }] }, this.d.now());
      let status;
      try {
        status = await ln.pay({ bolt11: w.invoice!, maxFeeMsat: w.maxFeeMsat!, timeoutSec: 60 });
      } catch (err) {
        // Refused before anything was in flight (e.g. an expired invoice): final for this request.
        if (err instanceof ImError && err.code === 'IM_LN_ERROR') status = { state: 'failed' as const, paymentHash: w.paymentHash!, failureReason: err.message };
        else {
          this.d.log.warn({ withdrawal: w.id, err: err instanceof ImError ? err.toWire() : String(err) }, 'lightning payment state unknown; reconciling later');
          continue;
        }
      }
      await this.settleLightning(w, status);
    }
  }

  private async settleLightning(w: Withdrawal, s: { state: string; feeMsat?: bigint; failureReason?: string }): Promise<void> {
    if (s.state === 'succeeded') {
      const fee = s.feeMsat ?? 0n;
      const sent = w.invoiceMsat! + (fee < w.maxFeeMsat! ? fee : w.maxFeeMsat!);
      const events: LedgerEvent[] = [{ id: `wd:${w.id}:sent`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: ACCOUNTS.treasury, amount: sent, code: 'payout', ref: w.id }];
      if (w.amountMsat > sent) events.push({ id: `wd:${w.id}:fee-back`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: w.account, amount: w.amountMsat - sent, code: 'refund', ref: w.id });
      await this.d.store.commitRecords({
        expect: [{ kind: 'withdrawal', id: w.id, states: ['paying'] }],
        records: [{ kind: 'withdrawal', id: w.id, state: 'completed', doc: { ...w, feeMsat: sent - w.invoiceMsat! } }],
        batch: { accounts: [payoutsAccount(), { id: ACCOUNTS.treasury, kind: 'treasury' }, ...accountsOf([w])], events },
      }, this.d.now());
      this.d.log.info({ withdrawal: w.id, feeMsat: (sent - w.invoiceMsat!).toString() }, 'lightning withdrawal paid');
    } else if (s.state === 'failed') {
      await this.d.store.commitRecords({
        expect: [{ kind: 'withdrawal', id: w.id, states: ['paying'] }],
        records: [
          { kind: 'withdrawal', id: w.id, state: 'failed', doc: { ...w, reason: s.failureReason ?? 'payment failed' } },
          { kind: 'ln-invoice', id: w.paymentHash!, state: 'free', doc: { withdrawal: w.id } },
        ],
        batch: refunds([w]),
      }, this.d.now());
      this.d.log.warn({ withdrawal: w.id, reason: s.failureReason }, 'lightning withdrawal failed; funds returned');
    }
    // in-flight / unknown: stays `paying`, reconciled on the next sweep
  }

  private need(): { account: WatchOnlyAccount; chain: ChainBackend } {
    if (!this.d.account || !this.d.chain) throw new ImError('IM_SETTLEMENT_DISABLED', 'on-chain payouts need a treasury key and a chain backend');
    return { account: this.d.account, chain: this.d.chain };
  }

  /** Confirmed coins of the treasury's receive and change addresses, minus those an open batch already spends. */
  private async utxos(account: WatchOnlyAccount, chain: ChainBackend, changeIndex: number): Promise<Utxo[]> {
    const reserved = new Set<string>();
    for (const r of await this.d.store.records('payout-batch', { states: [...OPEN_BATCH], limit: 10_000 })) {
      for (const u of (r.doc as Batch).inputs) reserved.add(`${u.txid}:${u.vout}`);
    }
    const where: Array<{ address: string; branch: 0 | 1; index: number }> = [
      ...(await this.d.store.depositAddresses()).map((a) => ({ address: a.address, branch: 0 as const, index: a.index })),
      ...Array.from({ length: changeIndex }, (_, i) => ({ address: account.change(i).address, branch: 1 as const, index: i })),
    ];
    const out: Utxo[] = [];
    for (const w of where) {
      for (const u of await chain.utxos(w.address)) {
        if (u.confirmed && !reserved.has(`${u.txid}:${u.vout}`)) out.push({ txid: u.txid, vout: u.vout, valueSats: u.valueSats, branch: w.branch, index: w.index });
      }
    }
    return out;
  }
}

export function maxFeeMsat(amountMsat: bigint, bps: number): bigint {
  const pct = (amountMsat * BigInt(bps)) / 10_000n;
  return pct > 10_000n ? pct : 10_000n; // at least 10 sats of routing budget
}

function payoutsAccount(): AccountInput {
  return { id: ACCOUNTS.payoutsInFlight, kind: 'payouts-in-flight' };
}

function accountsOf(ws: readonly Withdrawal[]): AccountInput[] {
  return ws.map((w) => accountInput(w.account)).filter((a): a is AccountInput => a !== undefined);
}

function refunds(ws: readonly Withdrawal[]): LedgerBatch {
  return {
    accounts: [payoutsAccount(), ...accountsOf(ws)],
    events: ws.map((w) => ({ id: `wd:${w.id}:refund`, debitAccount: ACCOUNTS.payoutsInFlight, creditAccount: w.account, amount: w.amountMsat, code: 'refund', ref: w.id })),
  };
}

function stripState(b: Batch & { state?: string }): Batch {
  const { state: _s, ...rest } = b;
  return rest;
}

async function digest(text: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(text).digest('hex').slice(0, 24);
}

