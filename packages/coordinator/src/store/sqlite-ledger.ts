/**
 * The ledger and charges on SQLite. Synchronous: every method runs inside
 * the caller's transaction (SQLite has one writer, so batches are serialised
 * by construction). The rules live in ledger/persist.ts; this only loads and
 * writes rows.
 */
import type Database from 'better-sqlite3';
import { ImError } from '@idlemesh/protocol';
import type { AccountBalance, Transfer } from '../ledger/index.js';
import { accountNeeds, applyBatch, batchSucceeded, firstError, hydrate, transferNeeds } from '../ledger/persist.js';
import type { BatchOutcome, LedgerBatch, LedgerHead } from '../ledger/persist.js';
import {
  ACCOUNT_COLUMNS, TRANSFER_COLUMNS, accountEventValues, accountValues, big, num, toAccount, toAccountEvent, toAccountState,
  toBalance, toTransfer, transferValues,
} from './ledger-rows.js';
import type { Row } from './rows.js';
import type { ChargeRow, LedgerDump, MarketRow } from './types.js';

/** One accrued execution, before it is added to its (job, node, ask) row. */
export interface Accrued {
  jobId: string;
  nodeId: string;
  ask: number;
  fuel: number;
}

/** Executions summed per (job, node, ask), in key order (so concurrent writers lock rows alike). */
export function sumAccruals(items: readonly Accrued[]): Array<{ a: Accrued; fuel: bigint; fuelAsk: bigint; n: number }> {
  const sums = new Map<string, { a: Accrued; fuel: bigint; fuelAsk: bigint; n: number }>();
  for (const a of items) {
    const k = `${a.jobId}\u0000${a.nodeId}\u0000${a.ask}`;
    const s = sums.get(k) ?? { a, fuel: 0n, fuelAsk: 0n, n: 0 };
    s.fuel += BigInt(a.fuel);
    s.fuelAsk += BigInt(a.fuel) * BigInt(a.ask);
    s.n++;
    sums.set(k, s);
  }
  return [...sums.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([, v]) => v);
}

/** A ledger batch that had to go through whole did not: throw the first real error. */
export function ledgerFailure(o: BatchOutcome): ImError {
  const e = firstError(o);
  const code = (e?.code ?? 'IM_LEDGER_INVALID_TRANSFER');
  return new ImError(code, e?.message, { details: { id: e?.id, results: [...o.accountResults, ...o.freezeResults, ...o.results].filter((r) => r.status === 'error').slice(0, 20) } });
}

const IN_CHUNK = 500;

export class SqliteLedger {
  private readonly st;

  constructor(private readonly db: Database.Database) {
    const p = (sql: string) => db.prepare(sql).safeIntegers(true);
    this.st = {
      head: p('SELECT seq, clock FROM ledger_head WHERE id = 1'),
      setHead: db.prepare('UPDATE ledger_head SET seq = ?, clock = ? WHERE id = 1'),
      insertTransfer: db.prepare(`INSERT INTO ledger_transfers (${TRANSFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertAccount: db.prepare(`INSERT INTO ledger_accounts (${ACCOUNT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      updateAccount: db.prepare(`UPDATE ledger_accounts SET frozen = ?, debits_posted = ?, credits_posted = ?, debits_pending = ?, credits_pending = ? WHERE id = ?`),
      insertAccountEvent: db.prepare('INSERT INTO ledger_account_events (seq, type, account_id, timestamp) VALUES (?, ?, ?, ?)'),
      duePendings: p(`SELECT * FROM ledger_transfers p WHERE p.type = 'pending' AND p.deadline IS NOT NULL AND p.deadline <= ?
        AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id) ORDER BY p.deadline LIMIT 1000`),
      charge: db.prepare('SELECT fuel, fuel_ask, executions FROM job_charges WHERE job_id = ? AND node_id = ? AND ask = ?'),
      upsertCharge: db.prepare(`INSERT INTO job_charges (job_id, node_id, ask, fuel, fuel_ask, executions, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (job_id, node_id, ask) DO UPDATE SET fuel = excluded.fuel, fuel_ask = excluded.fuel_ask, executions = excluded.executions, updated_at = excluded.updated_at`),
      charges: db.prepare('SELECT * FROM job_charges WHERE job_id = ? ORDER BY node_id, ask'),
    };
  }

  apply(batch: LedgerBatch, now: number, atomic: boolean): BatchOutcome {
    const needs = transferNeeds(batch);
    // Due pendings too: they expire first, exactly as in one in-memory ledger.
    const transfers = [
      ...this.inChunks(needs.transferIds, (ids) => `SELECT * FROM ledger_transfers WHERE id IN (${ids}) OR pending_id IN (${ids})`, 2),
      ...this.inChunks(needs.refs, (ids) => `SELECT * FROM ledger_transfers WHERE ref IN (${ids})`, 1),
      ...(this.st.duePendings.all(now) as Row[]),
    ].map(toTransfer);
    const accounts = this.inChunks(accountNeeds(batch, transfers), (ids) => `SELECT * FROM ledger_accounts WHERE id IN (${ids})`, 1).map(toAccountState);
    const state = hydrate(this.head(), accounts, transfers);
    const out = applyBatch(state, batch, now);
    if (atomic && !batchSucceeded(out)) throw ledgerFailure(out);
    this.write(out);
    return out;
  }

  /** Expires due pendings in bounded rounds. */
  expire(now: number): number {
    const due = (this.st.duePendings.all(now) as Row[]).map(toTransfer);
    if (due.length === 0) return 0;
    const ids = [...new Set(due.flatMap((t) => [t.debitAccount, t.creditAccount]))];
    const accounts = this.inChunks(ids, (x) => `SELECT * FROM ledger_accounts WHERE id IN (${x})`, 1).map(toAccountState);
    const out = applyBatch(hydrate(this.head(), accounts, due), { events: [] }, now);
    this.write(out);
    return out.transfers.length;
  }

  private head(): LedgerHead {
    const r = this.st.head.get() as Row;
    return { seq: num(r.seq), clock: num(r.clock) };
  }

  private write(out: BatchOutcome): void {
    const createdAt = new Map<string, number>();
    for (const e of out.accountEvents) {
      this.st.insertAccountEvent.run(...accountEventValues(e));
      if (e.type === 'create') createdAt.set(e.account.id, e.seq);
    }
    for (const a of out.changed) {
      const seq = createdAt.get(a.account.id);
      if (seq !== undefined) this.st.insertAccount.run(...accountValues(a, seq));
      else this.st.updateAccount.run(a.frozen ? 1 : 0, a.debitsPosted, a.creditsPosted, a.debitsPending, a.creditsPending, a.account.id);
    }
    for (const t of out.transfers) this.st.insertTransfer.run(...transferValues(t));
    this.st.setHead.run(out.head.seq, out.head.clock);
  }

  private inChunks(ids: readonly string[], sql: (placeholders: string) => string, copies: number): Row[] {
    const out: Row[] = [];
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      const ph = chunk.map(() => '?').join(', ');
      const args = Array.from({ length: copies }, () => chunk).flat();
      out.push(...(this.db.prepare(sql(ph)).safeIntegers(true).all(...args) as Row[]));
    }
    return out;
  }

  balances(q: { ids?: readonly string[]; prefix?: string; limit: number }): AccountBalance[] {
    if (q.ids !== undefined) return this.inChunks(q.ids, (ids) => `SELECT * FROM ledger_accounts WHERE id IN (${ids}) ORDER BY id`, 1).map(toBalance);
    const rows = this.db.prepare(`SELECT * FROM ledger_accounts WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`).safeIntegers(true)
      .all(q.prefix ?? '', `${q.prefix ?? ''}\uffff`, q.limit) as Row[];
    return rows.map(toBalance);
  }

  transfers(q: { account?: string; ref?: string; afterSeq?: number; limit: number; newestFirst?: boolean }): Transfer[] {
    const rows = this.db.prepare(`SELECT * FROM ledger_transfers WHERE seq > ?
        AND (? IS NULL OR debit_account = ? OR credit_account = ?) AND (? IS NULL OR ref = ?) ORDER BY seq ${q.newestFirst ? 'DESC' : 'ASC'} LIMIT ?`).safeIntegers(true)
      .all(q.afterSeq ?? -1, q.account ?? null, q.account ?? null, q.account ?? null, q.ref ?? null, q.ref ?? null, q.limit) as Row[];
    return rows.map(toTransfer);
  }

  dump(): LedgerDump {
    const accountRows = this.db.prepare('SELECT * FROM ledger_accounts').safeIntegers(true).all() as Row[];
    const defs = new Map(accountRows.map((r) => [String(r.id), toAccount(r)]));
    const accountEvents = (this.db.prepare('SELECT * FROM ledger_account_events ORDER BY seq').safeIntegers(true).all() as Row[])
      .map((r) => toAccountEvent(r, defs));
    const transfers = (this.db.prepare('SELECT * FROM ledger_transfers ORDER BY seq').safeIntegers(true).all() as Row[]).map(toTransfer);
    return { head: this.head(), accountEvents, transfers, accounts: accountRows.map(toAccountState) };
  }

  /** Adds executions to their (job, node, ask) rows: exact decimal sums, never rounded. */
  accrue(items: readonly Accrued[], now: number): void {
    for (const { a, fuel, fuelAsk, n } of sumAccruals(items)) {
      const cur = this.st.charge.get(a.jobId, a.nodeId, a.ask) as Row | undefined;
      const f = fuel + (cur ? BigInt(String(cur.fuel)) : 0n);
      const fa = fuelAsk + (cur ? BigInt(String(cur.fuel_ask)) : 0n);
      this.st.upsertCharge.run(a.jobId, a.nodeId, a.ask, f.toString(), fa.toString(), n + (cur ? Number(cur.executions) : 0), now);
    }
  }

  charges(jobId: string): ChargeRow[] {
    return (this.st.charges.all(jobId) as Row[]).map(toCharge);
  }

  market(since: number): MarketRow[] {
    const asks = this.db.prepare(`SELECT j.runtime, c.ask, SUM(c.executions) AS n FROM job_charges c JOIN jobs j ON j.id = c.job_id
      WHERE c.updated_at >= ? GROUP BY j.runtime, c.ask`).all(since) as Row[];
    const queued = this.db.prepare(`SELECT runtime, limits, queued FROM jobs WHERE state IN ('queued', 'running') AND queued > 0`).all() as Row[];
    return marketRows(asks, queued);
  }
}

export function toCharge(r: Row): ChargeRow {
  return {
    jobId: String(r.job_id), nodeId: String(r.node_id), ask: num(r.ask), fuel: big(String(r.fuel)), fuelAsk: big(String(r.fuel_ask)),
    executions: num(r.executions), updatedAt: num(r.updated_at),
  };
}

/** Both stores' market rows: asks of paid executions, and queued demand in fuel. */
export function marketRows(asks: readonly Row[], queued: readonly Row[]): MarketRow[] {
  const by = new Map<string, MarketRow>();
  const row = (runtime: string): MarketRow => {
    let r = by.get(runtime);
    if (!r) by.set(runtime, (r = { runtime, asks: [], queuedFuel: 0n, queuedTasks: 0 }));
    return r;
  };
  for (const a of asks) row(String(a.runtime)).asks.push({ ask: num(a.ask), executions: num(a.n) });
  for (const q of queued) {
    const r = row(String(q.runtime));
    const limits = JSON.parse(String(q.limits)) as { fuel: number };
    r.queuedTasks += num(q.queued);
    r.queuedFuel += BigInt(num(q.queued)) * BigInt(limits.fuel);
  }
  return [...by.values()].sort((a, b) => (a.runtime < b.runtime ? -1 : 1));
}
