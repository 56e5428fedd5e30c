// Bonds as plain ledger transfers. A bond is a `stake` transfer operator →
// stake account whose id is the bond id; everything that later happens to it
// carries `ref = bond id`, so its state is read back from the log:
//   unbond  = a pending `unstake` stake → operator (no timeout) with meta.unlockAt;
//             the funds stay in the stake account, and slashable, until
//   release = the post of that pending, allowed from unlockAt on;
//   slash   = `slash` transfers stake → recipients, with meta.evidence; while
//             unbonding, linked with a void of the pending and a new pending
//             for what is left, so the chain is all-or-nothing.
// These functions only plan events; `submit` applies (and re-checks) them.
import { ledgerError } from './errors.js';
import type { LedgerEvent, LedgerState, PendingEvent, Transfer } from './types.js';

export const DEFAULT_UNBONDING_MS = 7 * 24 * 3600 * 1000;
export const BPS = 10_000n;

export interface BondInput {
  /** The bond id (also the transfer id). */
  readonly id: string;
  readonly operator: string;
  readonly stakeAccount: string;
  readonly amount: bigint;
  /** The node the bond admits to the public pool. */
  readonly node: string;
  /** Capacity units the bond covers (0 for a per-node bond). */
  readonly capacityUnits?: number;
}

export type BondStatus = 'active' | 'unbonding' | 'released' | 'slashed';

export interface Bond {
  readonly id: string;
  readonly operator: string;
  readonly stakeAccount: string;
  readonly node: string;
  readonly capacityUnits: number;
  readonly bondedAt: number;
  readonly bonded: bigint;
  readonly slashed: bigint;
  readonly released: bigint;
  /** Still in the stake account: slashable. */
  readonly remaining: bigint;
  readonly status: BondStatus;
  readonly unbonding?: { readonly pendingId: string; readonly unlockAt: number };
}

export function bond(input: BondInput): LedgerEvent[] {
  const units = input.capacityUnits ?? 0;
  if (!Number.isSafeInteger(units) || units < 0) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', 'capacityUnits must be a non-negative integer');
  return [{
    id: input.id, debitAccount: input.operator, creditAccount: input.stakeAccount, amount: input.amount,
    code: 'stake', ref: input.id, meta: { node: input.node, capacityUnits: String(units) },
  }];
}

/** The bond as the log tells it, or undefined. */
export function getBond(state: LedgerState, bondId: string): Bond | undefined {
  const b = state.byId.get(bondId);
  if (b === undefined || b.code !== 'stake' || b.type !== 'single') return undefined;
  let slashed = 0n;
  let released = 0n;
  let unbonding: Transfer | undefined;
  for (const t of state.byRef.get(bondId) ?? []) {
    if (t.code === 'slash' && t.debitAccount === b.creditAccount) slashed += t.amount;
    else if (t.code === 'unstake' && t.type === 'post') released += t.amount;
    else if (t.code === 'unstake' && t.type === 'pending' && state.open.has(t.id)) unbonding = t;
  }
  const remaining = b.amount - slashed - released;
  const status: BondStatus = unbonding !== undefined ? 'unbonding' : remaining > 0n ? 'active' : released > 0n ? 'released' : 'slashed';
  const base = {
    id: b.id, operator: b.debitAccount, stakeAccount: b.creditAccount, node: b.meta?.node ?? '',
    capacityUnits: Number(b.meta?.capacityUnits ?? '0'), bondedAt: b.timestamp,
    bonded: b.amount, slashed, released, remaining, status,
  };
  return unbonding === undefined ? base : { ...base, unbonding: { pendingId: unbonding.id, unlockAt: Number(unbonding.meta?.unlockAt ?? '0') } };
}

function mustGet(state: LedgerState, bondId: string): Bond {
  const b = getBond(state, bondId);
  if (b === undefined) throw ledgerError('IM_LEDGER_BOND_NOT_FOUND', `no bond ${bondId}`);
  return b;
}

function unbondPending(b: Bond, id: string, amount: bigint, unlockAt: number): PendingEvent {
  return {
    type: 'pending', id, debitAccount: b.stakeAccount, creditAccount: b.operator, amount,
    code: 'unstake', ref: b.id, meta: { unlockAt: String(unlockAt) },
  };
}

/** Starts the unbonding period of everything left in the bond. */
export function unbond(state: LedgerState, bondId: string, now: number, opts: { unbondingMs?: number } = {}): LedgerEvent[] {
  const ms = opts.unbondingMs ?? DEFAULT_UNBONDING_MS;
  if (!Number.isSafeInteger(ms) || ms < 0) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', 'unbondingMs must be a non-negative integer');
  const b = mustGet(state, bondId);
  if (b.status !== 'active') throw ledgerError('IM_LEDGER_BOND_STATE', `bond ${bondId} is ${b.status}, not active`);
  return [unbondPending(b, `${b.id}:unbond`, b.remaining, Math.max(now, state.clock) + ms)];
}

/** Ends the unbonding: pays what is left back to the operator. Only from the unlock time on. */
export function release(state: LedgerState, bondId: string, now: number): LedgerEvent[] {
  const b = mustGet(state, bondId);
  if (b.unbonding === undefined) throw ledgerError('IM_LEDGER_BOND_STATE', `bond ${bondId} is ${b.status}, not unbonding`);
  if (Math.max(now, state.clock) < b.unbonding.unlockAt) {
    throw ledgerError('IM_LEDGER_BOND_LOCKED', `bond ${bondId} unlocks at ${b.unbonding.unlockAt}`, { unlockAt: b.unbonding.unlockAt });
  }
  return [{ type: 'post', id: `${b.id}:release`, pendingId: b.unbonding.pendingId }];
}

export interface SlashInput {
  readonly bondId: string;
  /** Fraction of what is left in the bond, in basis points (1..10000); floored to the msat. */
  readonly bps: number;
  /** The replayable evidence (referee re-execution) this slash rests on; one slash per bond and evidence. */
  readonly evidenceId: string;
  /** Where the slashed msat go, by integer weight (e.g. reward pool and the challenger). The rounding remainder goes to the first. */
  readonly to: ReadonlyArray<{ readonly account: string; readonly weight: number }>;
}

/**
 * Plans a slash. Returns [] when this evidence was already applied to the
 * bond or the fraction rounds to zero. Throws when the bond is gone.
 */
export function slash(state: LedgerState, input: SlashInput): LedgerEvent[] {
  if (!Number.isSafeInteger(input.bps) || input.bps < 1 || input.bps > 10_000) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', 'bps must be an integer in 1..10000');
  if (input.to.length === 0 || input.to.some((r) => !Number.isSafeInteger(r.weight) || r.weight <= 0)) {
    throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', 'slash recipients need positive integer weights');
  }
  const b = mustGet(state, input.bondId);
  for (const t of state.byRef.get(b.id) ?? []) if (t.code === 'slash' && t.meta?.evidence === input.evidenceId) return [];
  if (b.remaining === 0n) throw ledgerError('IM_LEDGER_BOND_STATE', `bond ${b.id} has nothing left to slash`);
  const amount = (b.remaining * BigInt(input.bps)) / BPS;
  if (amount === 0n) return [];
  const total = input.to.reduce((s, r) => s + BigInt(r.weight), 0n);
  const parts = input.to.map((r) => (amount * BigInt(r.weight)) / total);
  parts[0] = parts[0]! + amount - parts.reduce((s, p) => s + p, 0n);
  const events: LedgerEvent[] = [];
  if (b.unbonding !== undefined) events.push({ type: 'void', id: `${b.unbonding.pendingId}:void:${input.evidenceId}`, pendingId: b.unbonding.pendingId });
  input.to.forEach((r, i) => {
    const p = parts[i]!;
    if (p > 0n) {
      events.push({
        id: `${b.id}:slash:${input.evidenceId}:${i}`, debitAccount: b.stakeAccount, creditAccount: r.account, amount: p,
        code: 'slash', ref: b.id, meta: { evidence: input.evidenceId },
      });
    }
  });
  if (b.unbonding !== undefined && b.remaining > amount) {
    events.push(unbondPending(b, `${b.id}:unbond:${input.evidenceId}`, b.remaining - amount, b.unbonding.unlockAt));
  }
  return events.map((e, i) => ({ ...e, linked: i < events.length - 1 }));
}
