/**
 * The ledger and charges on PostgreSQL, inside the caller's transaction.
 * Every ledger write first locks the one head row (`FOR UPDATE`), so batches
 * from all coordinators are serialised: seq and clock continue exactly as in
 * one in-memory ledger, and the rules in ledger/persist.ts see a consistent
 * picture of the accounts they touch. Lock order: jobs, then the head.
 */
import type { PoolClient } from 'pg';
import type { AccountBalance, Transfer } from '../ledger/index.js';
import { accountNeeds, applyBatch, batchSucceeded, hydrate, transferNeeds } from '../ledger/persist.js';
import type { BatchOutcome, LedgerBatch, LedgerHead } from '../ledger/persist.js';
import {
  ACCOUNT_COLUMNS, TRANSFER_COLUMNS, accountEventValues, accountValues, num, toAccount, toAccountEvent, toAccountState,
  toBalance, toTransfer, transferValues,
} from './ledger-rows.js';
import type { Row } from './rows.js';
import { ledgerFailure, marketRows, sumAccruals, toCharge } from './sqlite-ledger.js';
import type { Accrued } from './sqlite-ledger.js';
import type { ChargeRow, LedgerDump, MarketRow } from './types.js';

type Q = Pick<PoolClient, 'query'>;

const DUE = `SELECT * FROM ledger_transfers p WHERE p.type = 'pending' AND p.deadline IS NOT NULL AND p.deadline <= $1
  AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id) ORDER BY p.deadline LIMIT 1000`;

async function lockHead(c: Q): Promise<LedgerHead> {
  const r = (await c.query<Row>('SELECT seq, clock FROM ledger_head WHERE id = 1 FOR UPDATE')).rows[0];
  if (!r) throw new Error('ledger_head has no row: migrations incomplete');
  return { seq: num(r.seq), clock: num(r.clock) };
}

async function write(c: Q, out: BatchOutcome): Promise<void> {
  const createdAt = new Map<string, number>();
  for (const e of out.accountEvents) {
    await c.query('INSERT INTO ledger_account_events (seq, type, account_id, timestamp) VALUES ($1, $2, $3, $4)', accountEventValues(e));
    if (e.type === 'create') createdAt.set(e.account.id, e.seq);
  }
  for (const a of out.changed) {
    const seq = createdAt.get(a.account.id);
    if (seq !== undefined) {
      await c.query(`INSERT INTO ledger_accounts (${ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, accountValues(a, seq).map(pgValue));
    } else {
      await c.query('UPDATE ledger_accounts SET frozen = $1, debits_posted = $2, credits_posted = $3, debits_pending = $4, credits_pending = $5 WHERE id = $6',
        [a.frozen ? 1 : 0, a.debitsPosted.toString(), a.creditsPosted.toString(), a.debitsPending.toString(), a.creditsPending.toString(), a.account.id]);
    }
  }
  if (out.transfers.length > 0) {
    // One multi-row insert: the log grows by a batch at a time.
    const cols = TRANSFER_COLUMNS.split(', ').length;
    const values: unknown[] = [];
    const rows = out.transfers.map((t, i) => {
      values.push(...transferValues(t).map(pgValue));
      return `(${Array.from({ length: cols }, (_, j) => `$${i * cols + j + 1}`).join(', ')})`;
    });
    await c.query(`INSERT INTO ledger_transfers (${TRANSFER_COLUMNS}) VALUES ${rows.join(', ')}`, values);
  }
  await c.query('UPDATE ledger_head SET seq = $1, clock = $2 WHERE id = 1', [out.head.seq, out.head.clock]);
}

/** pg sends bigint as text anyway; be explicit so no driver setting changes it. */
function pgValue(v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

export async function pgLedgerApply(c: Q, batch: LedgerBatch, now: number, atomic: boolean): Promise<BatchOutcome> {
  const head = await lockHead(c);
  const needs = transferNeeds(batch);
  const rows: Row[] = [];
  if (needs.transferIds.length > 0) {
    rows.push(...(await c.query<Row>('SELECT * FROM ledger_transfers WHERE id = ANY($1::text[]) OR pending_id = ANY($1::text[])', [needs.transferIds])).rows);
  }
  if (needs.refs.length > 0) rows.push(...(await c.query<Row>('SELECT * FROM ledger_transfers WHERE ref = ANY($1::text[])', [needs.refs])).rows);
  // Due pendings too: they expire first, exactly as in one in-memory ledger.
  rows.push(...(await c.query<Row>(DUE, [now])).rows);
  const transfers = rows.map(toTransfer);
  const ids = accountNeeds(batch, transfers);
  const accounts = ids.length === 0 ? [] : (await c.query<Row>('SELECT * FROM ledger_accounts WHERE id = ANY($1::text[])', [ids])).rows.map(toAccountState);
  const out = applyBatch(hydrate(head, accounts, transfers), batch, now);
  if (atomic && !batchSucceeded(out)) throw ledgerFailure(out);
  await write(c, out);
  return out;
}

export async function pgLedgerExpire(c: Q, now: number): Promise<number> {
  const head = await lockHead(c);
  const due = (await c.query<Row>(DUE, [now])).rows.map(toTransfer);
  if (due.length === 0) return 0;
  const ids = [...new Set(due.flatMap((t) => [t.debitAccount, t.creditAccount]))];
  const accounts = (await c.query<Row>('SELECT * FROM ledger_accounts WHERE id = ANY($1::text[])', [ids])).rows.map(toAccountState);
  const out = applyBatch(hydrate(head, accounts, due), { events: [] }, now);
  await write(c, out);
  return out.transfers.length;
}

export async function pgBalances(c: Q, q: { ids?: readonly string[]; prefix?: string; limit: number }): Promise<AccountBalance[]> {
  const r = q.ids !== undefined
    ? await c.query<Row>('SELECT * FROM ledger_accounts WHERE id = ANY($1::text[]) ORDER BY id', [q.ids])
    : await c.query<Row>('SELECT * FROM ledger_accounts WHERE starts_with(id, $1) ORDER BY id LIMIT $2', [q.prefix ?? '', q.limit]);
  return r.rows.map(toBalance);
}

export async function pgTransfers(c: Q, q: { account?: string; ref?: string; afterSeq?: number; limit: number; newestFirst?: boolean }): Promise<Transfer[]> {
  const r = await c.query<Row>(`SELECT * FROM ledger_transfers WHERE seq > $1
      AND ($2::text IS NULL OR debit_account = $2 OR credit_account = $2) AND ($3::text IS NULL OR ref = $3) ORDER BY seq ${q.newestFirst ? 'DESC' : 'ASC'} LIMIT $4`,
  [q.afterSeq ?? -1, q.account ?? null, q.ref ?? null, q.limit]);
  return r.rows.map(toTransfer);
}

/** Run inside a REPEATABLE READ transaction for one consistent picture. */
export async function pgDump(c: Q): Promise<LedgerDump> {
  const headRow = (await c.query<Row>('SELECT seq, clock FROM ledger_head WHERE id = 1')).rows[0];
  const accountRows = (await c.query<Row>('SELECT * FROM ledger_accounts')).rows;
  const defs = new Map(accountRows.map((r) => [String(r.id), toAccount(r)]));
  const accountEvents = (await c.query<Row>('SELECT * FROM ledger_account_events ORDER BY seq')).rows.map((r) => toAccountEvent(r, defs));
  const transfers = (await c.query<Row>('SELECT * FROM ledger_transfers ORDER BY seq')).rows.map(toTransfer);
  return { head: { seq: num(headRow?.seq ?? 0), clock: num(headRow?.clock ?? 0) }, accountEvents, transfers, accounts: accountRows.map(toAccountState) };
}

/** Exact sums in NUMERIC; rows in key order so concurrent batches lock them alike. */
export async function pgAccrue(c: Q, items: readonly Accrued[], now: number): Promise<void> {
  const list = sumAccruals(items);
  await c.query(`INSERT INTO job_charges (job_id, node_id, ask, fuel, fuel_ask, executions, updated_at)
      SELECT u.job_id, u.node_id, u.ask, u.fuel, u.fuel_ask, u.n, $7
      FROM unnest($1::text[], $2::text[], $3::bigint[], $4::numeric[], $5::numeric[], $6::int[]) AS u(job_id, node_id, ask, fuel, fuel_ask, n)
    ON CONFLICT (job_id, node_id, ask) DO UPDATE SET fuel = job_charges.fuel + EXCLUDED.fuel, fuel_ask = job_charges.fuel_ask + EXCLUDED.fuel_ask,
      executions = job_charges.executions + EXCLUDED.executions, updated_at = EXCLUDED.updated_at`,
  [list.map((s) => s.a.jobId), list.map((s) => s.a.nodeId), list.map((s) => s.a.ask), list.map((s) => s.fuel.toString()),
    list.map((s) => s.fuelAsk.toString()), list.map((s) => s.n), now]);
}

export async function pgCharges(c: Q, jobId: string): Promise<ChargeRow[]> {
  return (await c.query<Row>('SELECT job_id, node_id, ask, fuel::text AS fuel, fuel_ask::text AS fuel_ask, executions, updated_at FROM job_charges WHERE job_id = $1 ORDER BY node_id, ask', [jobId])).rows.map(toCharge);
}

export async function pgMarket(c: Q, since: number): Promise<MarketRow[]> {
  const asks = (await c.query<Row>(`SELECT j.runtime, c.ask, SUM(c.executions) AS n FROM job_charges c JOIN jobs j ON j.id = c.job_id
    WHERE c.updated_at >= $1 GROUP BY j.runtime, c.ask`, [since])).rows;
  const queued = (await c.query<Row>(`SELECT runtime, limits, queued FROM jobs WHERE state IN ('queued', 'running') AND queued > 0`)).rows;
  return marketRows(asks, queued);
}
