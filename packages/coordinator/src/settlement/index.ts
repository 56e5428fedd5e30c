/**
 * Settlement plans: which ledger transfers a market event makes. Pure — each
 * function turns facts (a job, its charges, a deposit) into a `LedgerBatch`
 * with deterministic transfer ids, so running a plan twice (after a crash, on
 * two coordinators) records it once: the ledger answers `exists`.
 *
 * Money flow of a job:
 *   submit   pending  buyer:<caller> → escrow        hold:<job>  (the max cost)
 *   settle   post     hold:<job> for Σ buyer charges (the rest returns to the buyer)
 *            single   escrow → operator:<node>       payment    ⌊ask × EU⌋ per node
 *            single   escrow → coordinator-fee       fee
 *            single   escrow → reward-pool           pool
 *   (nothing charged: void hold:<job>)
 */
import type { AccountInput, LedgerEvent } from '../ledger/index.js';
import type { LedgerBatch } from '../ledger/persist.js';
import { createAccrual, maxJobCost, settle } from '../pricing/index.js';
import type { Accrual, FeeSchedule } from '../pricing/index.js';
import type { ChargeRow, MarketRow, SettlementInput } from '../store/types.js';

export const ACCOUNTS = {
  escrow: 'escrow',
  coordinatorFee: 'coordinator-fee',
  rewardPool: 'reward-pool',
  treasury: 'treasury',
  depositsInFlight: 'deposits-in-flight',
  payoutsInFlight: 'payouts-in-flight',
  buyer: (caller: string): string => `buyer:${caller}`,
  operator: (nodeId: string): string => `operator:${nodeId}`,
  stake: (nodeId: string): string => `stake:${nodeId}`,
} as const;

/** The system accounts every coordinator has. */
export const SYSTEM_ACCOUNTS: readonly AccountInput[] = [
  { id: ACCOUNTS.escrow, kind: 'escrow' },
  { id: ACCOUNTS.coordinatorFee, kind: 'coordinator-fee' },
  { id: ACCOUNTS.rewardPool, kind: 'reward-pool' },
  { id: ACCOUNTS.treasury, kind: 'treasury' },
  { id: ACCOUNTS.depositsInFlight, kind: 'deposits-in-flight' },
  { id: ACCOUNTS.payoutsInFlight, kind: 'payouts-in-flight' },
];

/** The kind an account id implies (buyer:…, operator:…, stake:…, or a system account). */
export function accountInput(id: string): AccountInput | undefined {
  const sys = SYSTEM_ACCOUNTS.find((a) => a.id === id);
  if (sys) return sys;
  if (id.startsWith('buyer:') && id.length > 6) return { id, kind: 'buyer' };
  if (id.startsWith('operator:') && id.length > 9) return { id, kind: 'operator' };
  if (id.startsWith('stake:') && id.length > 6) return { id, kind: 'stake' };
  return undefined;
}

export const holdId = (jobId: string): string => `hold:${jobId}`;

export interface HoldInput {
  jobId: string;
  buyer: string;
  tasks: number;
  fuelLimit: number;
  bid: number;
  /** Executions the job's verification mode may need per task (1 until verification lands). */
  maxExecutionsPerTask: number;
  fees: FeeSchedule;
}

/** The escrow hold for a job's max cost, or undefined for a free job (bid 0). */
export function holdPlan(h: HoldInput): { amount: bigint; batch: LedgerBatch } | undefined {
  const amount = maxJobCost({ tasks: h.tasks, fuelLimit: h.fuelLimit, bid: h.bid, maxExecutionsPerTask: h.maxExecutionsPerTask, fees: h.fees });
  if (amount === 0n) return undefined;
  return {
    amount,
    batch: {
      accounts: [{ id: ACCOUNTS.escrow, kind: 'escrow' }],
      events: [{ id: holdId(h.jobId), type: 'pending', debitAccount: h.buyer, creditAccount: ACCOUNTS.escrow, amount, code: 'escrow', ref: h.jobId }],
    },
  };
}

export interface NodeCharge {
  nodeId: string;
  fuel: bigint;
  executions: number;
  buyerPays: bigint;
  operator: bigint;
  coordinatorFee: bigint;
  pool: bigint;
}

/** Per-node settlement of a job's charges: exact accruals, floored once per (job, node). */
export function chargesByNode(charges: readonly ChargeRow[], fees: FeeSchedule): NodeCharge[] {
  const acc = new Map<string, Accrual>();
  for (const c of charges) {
    const a = acc.get(c.nodeId) ?? createAccrual(fees);
    // fuelAsk is already Σ fuel × ask; add it as one accrual at ask 1 over that "fuel", keeping fuel itself exact.
    acc.set(c.nodeId, { fees: a.fees, fuel: a.fuel + c.fuel, fuelAsk: a.fuelAsk + c.fuelAsk, executions: a.executions + c.executions });
  }
  return [...acc.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([nodeId, a]) => ({
    nodeId, fuel: a.fuel, executions: a.executions, ...settle(a),
  }));
}

export interface SettlementOptions {
  /**
   * How long earnings stay pending (the challenge window: verification can
   * still reverse them). 0 = final at once. Pending parts carry meta.finalAt
   * and are posted by `finalizePlan` once it has passed.
   */
  challengeWindowMs: number;
  now: number;
}

/** Settlement with earnings held pending for the challenge window. */
export function settlementPlanner(opts: SettlementOptions): (input: SettlementInput) => LedgerBatch {
  return (input) => settlementPlan(input, opts);
}

/**
 * The batch that settles a finished job: one linked chain, so it applies
 * whole or not at all. Free jobs (no buyer) settle with nothing to move.
 * Within a challenge window the operator, fee and pool parts are pending
 * transfers out of escrow: not withdrawable until posted.
 */
export function settlementPlan({ job, charges }: SettlementInput, opts: SettlementOptions = { challengeWindowMs: 0, now: 0 }): LedgerBatch {
  if (job.buyer === undefined || job.holdMsat === undefined) return { events: [] };
  const fees = job.fees ?? { coordinatorFeeBps: 0, poolFeeBps: 0 };
  const nodes = chargesByNode(charges, fees).filter((n) => n.buyerPays > 0n);
  const total = nodes.reduce((s, n) => s + n.buyerPays, 0n);
  const events: LedgerEvent[] = [];
  const accounts: AccountInput[] = [...SYSTEM_ACCOUNTS.filter((a) => a.kind !== 'treasury' && !a.id.endsWith('-in-flight'))];
  if (total === 0n) {
    events.push({ id: `settle:${job.id}:void`, type: 'void', pendingId: holdId(job.id), ref: job.id });
    return { accounts, events };
  }
  events.push({ id: `settle:${job.id}:post`, type: 'post', pendingId: holdId(job.id), amount: total, ref: job.id });
  let coordinatorFee = 0n;
  let pool = 0n;
  for (const n of nodes) {
    coordinatorFee += n.coordinatorFee;
    pool += n.pool;
    if (n.operator === 0n) continue;
    accounts.push({ id: ACCOUNTS.operator(n.nodeId), kind: 'operator' });
    events.push({
      id: `settle:${job.id}:${n.nodeId}`, debitAccount: ACCOUNTS.escrow, creditAccount: ACCOUNTS.operator(n.nodeId), amount: n.operator,
      code: 'payment', ref: job.id, meta: { fuel: n.fuel.toString(), executions: String(n.executions) },
    });
  }
  if (coordinatorFee > 0n) events.push({ id: `settle:${job.id}:fee`, debitAccount: ACCOUNTS.escrow, creditAccount: ACCOUNTS.coordinatorFee, amount: coordinatorFee, code: 'fee', ref: job.id });
  if (pool > 0n) events.push({ id: `settle:${job.id}:pool`, debitAccount: ACCOUNTS.escrow, creditAccount: ACCOUNTS.rewardPool, amount: pool, code: 'pool', ref: job.id });
  if (opts.challengeWindowMs > 0) {
    const finalAt = String(opts.now + opts.challengeWindowMs);
    for (let i = 1; i < events.length; i++) {
      const e = events[i]!;
      if (e.type === undefined || e.type === 'single') events[i] = { ...e, type: 'pending', meta: { ...(e.meta ?? {}), finalAt } };
    }
  }
  return { accounts, events: link(events) };
}

/** Posts the pending earnings whose challenge window has closed (each once: the post id derives from the pending's). */
export function finalizePlan(pendings: readonly { id: string; meta?: Readonly<Record<string, string>> }[], now: number): LedgerBatch {
  const due = pendings.filter((p) => p.meta?.finalAt !== undefined && Number(p.meta.finalAt) <= now);
  return { events: due.map((p) => ({ id: `final:${p.id}`, type: 'post' as const, pendingId: p.id })) };
}

/** Marks every event but the last as linked: one all-or-nothing chain. */
export function link(events: readonly LedgerEvent[]): LedgerEvent[] {
  return events.map((e, i) => (i < events.length - 1 ? { ...e, linked: true } : { ...e, linked: false }));
}

/** A deposit credited from the treasury (the coins now held) to an account, once per source id. */
export function depositPlan(id: string, account: string, amount: bigint, meta: Record<string, string>): LedgerBatch {
  const acc = accountInput(account);
  return {
    accounts: [{ id: ACCOUNTS.treasury, kind: 'treasury' }, ...(acc ? [acc] : [])],
    events: [{ id, debitAccount: ACCOUNTS.treasury, creditAccount: account, amount, code: 'deposit', ref: id, meta }],
  };
}

export interface SpotRow {
  runtime: string;
  /** Median clearing price (msat per EU) of paid executions in the window; null if none. */
  spotMsatPerEu: number | null;
  executions: number;
  /** Free slots of connected agents that run this runtime. */
  supplySlots: number;
  /** Queued demand in EU (queued tasks × fuel limit). */
  demandEu: number;
  queuedTasks: number;
}

/** The market view: the weighted median ask of the window per runtime, supply and demand. */
export function spotMarket(rows: readonly MarketRow[], supply: ReadonlyMap<string, number>, fuelPerEu: number): SpotRow[] {
  const runtimes = new Set([...rows.map((r) => r.runtime), ...supply.keys()]);
  return [...runtimes].sort().map((runtime) => {
    const r = rows.find((x) => x.runtime === runtime);
    const asks = [...(r?.asks ?? [])].sort((a, b) => a.ask - b.ask);
    const n = asks.reduce((s, a) => s + a.executions, 0);
    let spot: number | null = null;
    if (n > 0) {
      const half = (n + 1) / 2; // the lower median on an even count
      let seen = 0;
      for (const a of asks) {
        seen += a.executions;
        if (seen >= half) { spot = a.ask; break; }
      }
    }
    return {
      runtime, spotMsatPerEu: spot, executions: n, supplySlots: supply.get(runtime) ?? 0,
      demandEu: Number(r?.queuedFuel ?? 0n) / fuelPerEu, queuedTasks: r?.queuedTasks ?? 0,
    };
  });
}

