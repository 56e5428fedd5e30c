/**
 * The coordinator's money service: escrow holds at submit, settlement of
 * finished jobs, pending expiry, balances, the market view, audits and the
 * dev faucet. Rules are in ledger/, pricing/ and settlement/ (pure); this
 * wires them to the store. Periodic work runs on the sweep leader only.
 */
import { setImmediate as breath } from 'node:timers/promises';
import { FUEL_PER_EU, ImError, MAX_CLOCK_SKEW_MS, verifyRequest } from '@idlemesh/protocol';
import type { AccountView, BondView, LedgerCheckView, MarketView, SignedRequest, StakeOp, StakeView, TransferView } from '@idlemesh/protocol';
import { bond as bondEvents, getBond, release as releaseEvents, slash as slashEvents, unbond as unbondEvents } from './ledger/index.js';
import type { AccountBalance, Bond, LedgerEvent, Transfer } from './ledger/index.js';
import { auditLog, hydrate } from './ledger/persist.js';
import type { FeeSchedule } from './pricing/index.js';
import { ACCOUNTS, accountInput, depositPlan, finalizePlan, holdPlan, settlementPlanner, spotMarket } from './settlement/index.js';
import type { HoldInput } from './settlement/index.js';
import type { CoordinatorOptions } from './config.js';
import type { Logger } from './core.js';
import type { Metrics } from './metrics.js';
import type { Store } from './store/index.js';
import type { AuditSink } from './identity/sink.js';

export const MARKET_WINDOW_MS = 3_600_000;

export class Money {
  audit: AuditSink | undefined;

  constructor(
    private readonly store: Store,
    private readonly opts: CoordinatorOptions,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly metrics?: Metrics,
  ) {}

  get fees(): FeeSchedule {
    return { coordinatorFeeBps: this.opts.coordinatorFeeBps, poolFeeBps: this.opts.poolFeeBps };
  }

  hold(input: Omit<HoldInput, 'fees'>): ReturnType<typeof holdPlan> {
    return holdPlan({ ...input, fees: this.fees });
  }

  /** Turns the ledger's refusal of a hold into the buyer-facing 402 with the shortfall. */
  async explainHoldFailure(err: unknown, buyer: string, hold: bigint): Promise<unknown> {
    if (!(err instanceof ImError) || (err.code !== 'IM_LEDGER_INSUFFICIENT_FUNDS' && err.code !== 'IM_LEDGER_ACCOUNT_NOT_FOUND')) return err;
    const [b] = await this.store.ledgerBalances({ ids: [buyer], limit: 1 });
    const available = b?.available ?? 0n;
    return new ImError('IM_INSUFFICIENT_BALANCE',
      `the job's maximum cost is ${hold} msat but ${buyer} has ${available} msat available (short by ${hold - available} msat)`,
      { details: { account: buyer, holdMsat: hold.toString(), availableMsat: available.toString(), shortfallMsat: (hold - available).toString() } });
  }

  /** Settles one finished job (idempotent). */
  async settle(jobId: string): Promise<boolean> {
    const now = this.now();
    // An optimistic job keeps its earnings pending for its own challenge window at least (a conviction may still reverse them).
    const r = await this.store.settleJob(jobId, (input) => settlementPlanner({
      challengeWindowMs: Math.max(this.opts.challengeWindowMs, input.job.verification?.mode === 'optimistic' ? input.job.verification.windowMs : 0), now,
    })(input), now);
    if (r.settled) {
      const moved = r.outcome?.transfers.filter((t) => t.type === 'post' || t.type === 'single').length ?? 0;
      this.metrics?.jobsSettled.inc();
      for (const t of r.outcome?.transfers ?? []) this.metrics?.ledgerTransfers.inc({ code: t.code });
      this.log.info({ job: jobId, transfers: moved }, 'job settled');
    }
    return r.settled;
  }

  /** Leader work: settle finished jobs, expire timed-out pendings. */
  async sweep(): Promise<void> {
    for (const id of await this.store.unsettledJobs(100)) {
      try {
        await this.settle(id);
      } catch (err) {
        this.log.error({ err, job: id }, 'settlement failed; the job stays unsettled and is tried again');
      }
      // A turn of the event loop between settlements: a hundred in a row would hold up every request behind them.
      await breath();
    }
    const expired = await this.store.ledgerExpire(this.now());
    if (expired > 0) this.log.info({ expired }, 'pending transfers expired');
    // Earnings whose challenge window closed become final (withdrawable).
    const open = await this.store.ledgerOpenPendings({ codes: ['payment', 'fee', 'pool'], limit: 1000 });
    const final = finalizePlan(open, this.now());
    if (final.events.length > 0) {
      const out = await this.store.ledgerApply(final, this.now());
      this.log.info({ final: out.results.filter((x) => x.status === 'ok').length }, 'earnings final');
    }
  }

  async account(id: string, limit = 50): Promise<{ account: AccountView; transfers: TransferView[] }> {
    const [b] = await this.store.ledgerBalances({ ids: [id], limit: 1 });
    if (!b) {
      // A well-formed account nobody has paid into yet is simply empty.
      const input = accountInput(id);
      if (!input) throw new ImError('IM_ACCOUNT_NOT_FOUND', `no account ${id}`);
      return { account: { id, kind: input.kind, frozen: false, balanceMsat: '0', availableMsat: '0', heldMsat: '0', pendingMsat: '0' }, transfers: [] };
    }
    const transfers = limit === 0 ? [] : await this.store.ledgerTransfers({ account: id, limit, newestFirst: true });
    return { account: accountView(b), transfers: transfers.map(transferView) };
  }

  async market(supply: ReadonlyMap<string, number>): Promise<MarketView> {
    const rows = await this.store.market(this.now() - MARKET_WINDOW_MS);
    return { windowMs: MARKET_WINDOW_MS, fees: this.fees, runtimes: spotMarket(rows, supply, FUEL_PER_EU) };
  }

  async check(): Promise<LedgerCheckView> {
    const d = await this.store.ledgerDump();
    const violations = auditLog(d.accountEvents, d.transfers, d.accounts, d.head);
    let debits = 0n;
    let credits = 0n;
    for (const a of d.accounts) {
      debits += a.debitsPosted;
      credits += a.creditsPosted;
    }
    return {
      ok: violations.length === 0,
      accounts: d.accounts.length,
      transfers: d.transfers.length,
      violations: violations.slice(0, 100).map((v) => ({ kind: v.kind, message: v.message, ...(v.account ? { account: v.account } : {}), ...(v.transfer ? { transfer: v.transfer } : {}) })),
      totals: { debitsMsat: debits.toString(), creditsMsat: credits.toString() },
    };
  }

  /** The bonds of a node as the log tells them (ref = bond id on every transfer of a bond). */
  async stakes(nodeId: string): Promise<StakeView> {
    const stakeAccount = ACCOUNTS.stake(nodeId);
    const transfers = await this.store.ledgerTransfers({ account: stakeAccount, limit: 100_000 });
    const state = hydrate({ seq: 0, clock: 0 }, [], transfers);
    const ids = transfers.filter((t) => t.code === 'stake' && t.type === 'single').map((t) => t.id);
    const bonds = ids.map((id) => getBond(state, id)).filter((b): b is Bond => b !== undefined).map(bondView);
    return { nodeId, bonds, stake: (await this.account(stakeAccount, 0)).account, operator: (await this.account(ACCOUNTS.operator(nodeId), 0)).account };
  }

  /**
   * Slashes a node proven to have lied (a receipt the referee contradicted):
   * `bps` of what is left of each of its bonds. The harmed buyer gets back up
   * to `refund.msat` (what it paid for the wrong result) first; the rest goes
   * to the reward pool. Idempotent per evidence id. Returns the msat moved.
   */
  async slashForFraud(nodeId: string, evidenceId: string, bps: number, refund?: { account: string; msat: bigint }): Promise<bigint> {
    const stakeAccount = ACCOUNTS.stake(nodeId);
    const transfers = await this.store.ledgerTransfers({ account: stakeAccount, limit: 100_000 });
    const state = hydrate({ seq: 0, clock: 0 }, [], transfers);
    const bonds = transfers.filter((t) => t.code === 'stake' && t.type === 'single').map((t) => getBond(state, t.id)).filter((b): b is Bond => b !== undefined && b.remaining > 0n);
    let refundLeft = refund?.msat ?? 0n;
    let moved = 0n;
    for (const b of bonds) {
      const amount = (b.remaining * BigInt(bps)) / 10_000n;
      if (amount === 0n) continue;
      const toBuyer = refundLeft < amount ? refundLeft : amount;
      const to = [{ account: ACCOUNTS.rewardPool, weight: amount - toBuyer }, ...(refund && toBuyer > 0n ? [{ account: refund.account, weight: toBuyer }] : [])]
        .filter((r) => r.weight > 0n);
      // Weights are the exact msat split; an amount past 2^53 msat (90,000 BTC) goes to the pool whole.
      const safe = to.every((r) => r.weight <= BigInt(Number.MAX_SAFE_INTEGER));
      const events = slashEvents(state, {
        bondId: b.id, bps, evidenceId,
        to: safe ? to.map((r) => ({ account: r.account, weight: Number(r.weight) })) : [{ account: ACCOUNTS.rewardPool, weight: 1 }],
      });
      if (events.length === 0) continue;
      const accounts = [stakeAccount, ...to.map((r) => r.account)].map(accountInput).filter((a): a is NonNullable<typeof a> => a !== undefined);
      await this.store.ledgerApply({ accounts, events, refs: [b.id] }, this.now(), { atomic: true });
      refundLeft -= safe ? toBuyer : 0n;
      moved += amount;
    }
    if (moved > 0n) this.log.warn({ node: nodeId, evidence: evidenceId, slashedMsat: moved.toString() }, 'stake slashed for a contradicted receipt');
    return moved;
  }

  /** `idlemesh stake add|remove|release`: signed with the node key, so only the operator moves its stake. */
  async stake(req: SignedRequest<StakeOp>): Promise<StakeView> {
    const now = this.now();
    await verifyRequest(req, 'stake', now);
    if (!(await this.store.useNonce(req.nodeId, req.nonce, now + 2 * MAX_CLOCK_SKEW_MS))) throw new ImError('IM_REPLAYED');
    const node = req.nodeId;
    const op = req.body;
    let events: LedgerEvent[];
    let refs: string[] = [];
    if (op.op === 'bond') {
      events = bondEvents({
        id: `bond:${node.slice(0, 16)}:${req.nonce}`, operator: ACCOUNTS.operator(node), stakeAccount: ACCOUNTS.stake(node),
        amount: BigInt(op.amountMsat), node, capacityUnits: op.capacityUnits ?? 0,
      });
    } else {
      const history = await this.store.ledgerTransfers({ ref: op.bondId, limit: 10_000 });
      const state = hydrate({ seq: 0, clock: now }, [], history);
      const b = getBond(state, op.bondId);
      if (!b || b.node !== node) throw new ImError('IM_LEDGER_BOND_NOT_FOUND', `node ${node.slice(0, 12)} has no bond ${op.bondId}`);
      events = op.op === 'unbond' ? unbondEvents(state, op.bondId, now, { unbondingMs: this.opts.unbondingMs }) : releaseEvents(state, op.bondId, now);
      refs = [op.bondId];
    }
    try {
      await this.store.ledgerApply({ accounts: [{ id: ACCOUNTS.stake(node), kind: 'stake' }], events, refs }, now, { atomic: true });
    } catch (err) {
      if (err instanceof ImError && (err.code === 'IM_LEDGER_ACCOUNT_NOT_FOUND' || err.code === 'IM_LEDGER_INSUFFICIENT_FUNDS')) {
        throw await this.explainHoldFailure(err, ACCOUNTS.operator(node), op.op === 'bond' ? BigInt(op.amountMsat) : 0n);
      }
      throw err;
    }
    this.log.info({ node, op: op.op }, 'stake changed');
    await this.audit?.record({ type: 'stake.changed', actor: node, subject: op.op === 'bond' ? events[0]?.id ?? '' : op.bondId, data: { op: op.op, ...(op.op === 'bond' ? { amountMsat: op.amountMsat } : {}) } });
    return this.stakes(node);
  }

  /** The dev faucet: only on regtest, clearly labelled in the log. */
  async devFund(account: string, sats: number, key: string | undefined): Promise<TransferView> {
    if (this.opts.network !== 'regtest') throw new ImError('IM_DEV_ONLY', `dev fund is refused on ${this.opts.network}: it only exists with --network regtest`);
    if (!accountInput(account) || account.startsWith('stake:')) {
      throw new ImError('IM_VALIDATION', `dev fund credits buyer:<caller> or operator:<node id> accounts, not ${JSON.stringify(account)}`);
    }
    const id = `devfund:${key ?? `${this.now()}:${Math.random().toString(36).slice(2, 10)}`}`;
    const amount = BigInt(sats) * 1000n;
    const out = await this.store.ledgerApply(depositPlan(id, account, amount, { source: 'dev-faucet', network: 'regtest' }), this.now(), { atomic: true });
    const t = out.transfers.find((x) => x.id === id) ?? (await this.store.ledgerTransfers({ ref: id, limit: 1 }))[0];
    if (!t) throw new ImError('IM_INTERNAL', 'the dev fund transfer was neither recorded nor found');
    if (t.creditAccount !== account || t.amount !== amount) throw new ImError('IM_IDEMPOTENCY_CONFLICT', 'this idempotency key funded a different account or amount');
    this.log.info({ account, sats, transfer: id }, 'DEV FAUCET: credited regtest sats (not real money)');
    return transferView(t);
  }
}

export function bondView(b: Bond): BondView {
  const v: BondView = {
    id: b.id, node: b.node, capacityUnits: b.capacityUnits, bondedAt: b.bondedAt,
    bondedMsat: b.bonded.toString(), slashedMsat: b.slashed.toString(), releasedMsat: b.released.toString(), remainingMsat: b.remaining.toString(),
    status: b.status,
  };
  if (b.unbonding) v.unlockAt = b.unbonding.unlockAt;
  return v;
}

export function accountView(b: AccountBalance): AccountView {
  return {
    id: b.id, kind: b.kind, frozen: b.frozen,
    balanceMsat: b.net.toString(), availableMsat: b.available.toString(),
    heldMsat: b.debitsPending.toString(), pendingMsat: b.creditsPending.toString(),
  };
}

export function transferView(t: Transfer): TransferView {
  const v: TransferView = {
    id: t.id, type: t.type, debitAccount: t.debitAccount, creditAccount: t.creditAccount, amountMsat: t.amount.toString(),
    code: t.code, timestamp: t.timestamp, seq: t.seq,
  };
  if (t.ref !== undefined) v.ref = t.ref;
  if (t.meta !== undefined) v.meta = { ...t.meta };
  if (t.pendingId !== undefined) v.pendingId = t.pendingId;
  return v;
}

export { ACCOUNTS };
