/**
 * Replicas on PostgreSQL: the rules of replicas-sqlite.ts, for several
 * coordinators at once. Each function runs in the caller's transaction.
 *
 * Keeping replicas of a task apart across coordinators: a replica claim
 * first locks the task rows it means to serve (FOR UPDATE SKIP LOCKED), then
 * checks the exclusion in a second statement, which in READ COMMITTED sees
 * every claim committed before the lock was granted. Two nodes of one
 * operator can therefore never lease replicas of one task at once. Lock
 * order, as everywhere in this store: tasks, then their replicas, then jobs,
 * then nodes.
 */
import type { PoolClient } from 'pg';
import { ImError } from '@idlemesh/protocol';
import { bytes } from './rows.js';
import type { Row } from './rows.js';
import { toExecution } from './replica-rows.js';
import type { Accrued } from './sqlite-ledger.js';
import type { ClaimedTask, ExecutionRow, Outcome, Placement, TaskDecision, TaskKey, TaskRef } from './types.js';

const EXPIRE_BATCH = 10_000;
const EXCLUDED = `SELECT 1 FROM task_replicas o WHERE o.job_id = q.job_id AND o.idx = q.idx AND o.state IN ('leased', 'done')
  AND (o.node_id = $2 OR o.operator = $3 OR o.prefix = $4)`;

export const REPLICA_SQL = {
  hold: `WITH u AS MATERIALIZED (
      SELECT o.* FROM unnest($2::text[], $3::int[], $4::int[], $5::bool[], $6::bytea[], $7::bigint[], $8::text[], $9::text[], $10::int[])
        AS o(job_id, idx, attempt, ok, output, fuel, error, receipt, extra)
      JOIN tasks x ON x.job_id = o.job_id AND x.idx = o.idx
      WHERE x.attempt = o.attempt AND x.state = 'leased' AND x.node_id = $1
      ORDER BY x.job_id, x.idx
      FOR UPDATE OF x)
    UPDATE tasks t SET state = 'verifying', output = u.output, fuel = u.fuel, error = u.error, lease_expires = NULL, receipt = u.receipt
    FROM u WHERE t.job_id = u.job_id AND t.idx = u.idx AND t.attempt = u.attempt AND t.state = 'leased' AND t.node_id = $1
    RETURNING t.job_id, t.idx, t.attempt, t.ask, u.extra, encode(sha256(t.input), 'hex') AS input_hash`,
  insert: `INSERT INTO task_replicas (job_id, idx, replica, state, attempt, node_id, operator, prefix, ask, ok, output, fuel, error, receipt, finished_at)
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::bigint[],
      $10::bool[], $11::bytea[], $12::bigint[], $13::text[], $14::text[], $15::bigint[])
    ON CONFLICT DO NOTHING`,
  lockForClaim: `SELECT q.idx FROM tasks q WHERE q.job_id = $1 AND q.state = 'verifying'
      AND EXISTS (SELECT 1 FROM task_replicas r WHERE r.job_id = q.job_id AND r.idx = q.idx AND r.state = 'queued')
      AND NOT EXISTS (${EXCLUDED})
    ORDER BY q.idx LIMIT $5 FOR UPDATE OF q SKIP LOCKED`,
  claim: `UPDATE task_replicas r SET state = 'leased', attempt = r.attempt + 1, node_id = $2, operator = $3, prefix = $4, lease_expires = $5, ask = $6
    FROM (SELECT DISTINCT ON (q.idx) q.job_id, q.idx, q.replica FROM task_replicas q
      WHERE q.job_id = $1 AND q.idx = ANY($7::int[]) AND q.state = 'queued' AND NOT EXISTS (${EXCLUDED})
      ORDER BY q.idx, q.replica) c
    WHERE r.job_id = c.job_id AND r.idx = c.idx AND r.replica = c.replica AND r.state = 'queued'
    RETURNING r.idx, r.attempt, (SELECT t.input FROM tasks t WHERE t.job_id = r.job_id AND t.idx = r.idx) AS input`,
  result: `WITH u AS MATERIALIZED (
      SELECT o.*, j.max_attempts FROM unnest($2::text[], $3::int[], $4::int[], $5::bool[], $6::bytea[], $7::bigint[], $8::bool[], $9::text[], $10::text[])
        AS o(job_id, idx, attempt, ok, output, fuel, retryable, error, receipt)
      JOIN task_replicas x ON x.job_id = o.job_id AND x.idx = o.idx AND x.attempt = o.attempt AND x.node_id = $1 AND x.state = 'leased'
      JOIN jobs j ON j.id = o.job_id
      ORDER BY x.job_id, x.idx, x.replica
      FOR UPDATE OF x)
    UPDATE task_replicas r SET
      state = CASE WHEN u.ok OR NOT u.retryable THEN 'done' WHEN r.failures + 1 < u.max_attempts THEN 'queued' ELSE 'lost' END,
      failures = CASE WHEN u.ok OR NOT u.retryable THEN r.failures ELSE r.failures + 1 END,
      ok = CASE WHEN u.ok OR NOT u.retryable THEN u.ok ELSE NULL END,
      output = u.output, fuel = u.fuel, error = u.error, receipt = u.receipt, lease_expires = NULL, finished_at = $11
    FROM u WHERE r.job_id = u.job_id AND r.idx = u.idx AND r.attempt = u.attempt AND r.node_id = $1 AND r.state = 'leased'
    RETURNING r.job_id, r.idx, r.attempt, r.state,
      (SELECT encode(sha256(t.input), 'hex') FROM tasks t WHERE t.job_id = r.job_id AND t.idx = r.idx) AS input_hash`,
  reported: `SELECT r.job_id, r.idx, r.attempt FROM task_replicas r
    JOIN unnest($2::text[], $3::int[], $4::int[]) AS u(job_id, idx, attempt) ON r.job_id = u.job_id AND r.idx = u.idx AND r.attempt = u.attempt
    WHERE r.node_id = $1 AND r.state IN ('done', 'lost', 'cancelled')`,
  release: `UPDATE task_replicas r SET state = 'queued', lease_expires = NULL
    FROM unnest($2::text[], $3::int[], $4::int[]) AS u(job_id, idx, attempt)
    WHERE r.job_id = u.job_id AND r.idx = u.idx AND r.attempt = u.attempt AND r.node_id = $1 AND r.state = 'leased'
    RETURNING r.job_id, r.idx, r.attempt`,
  extend: `UPDATE task_replicas SET lease_expires = $2 WHERE node_id = $1 AND state = 'leased' AND lease_expires < $2`,
  leasesOf: `SELECT job_id, idx, attempt FROM task_replicas WHERE node_id = $1 AND state = 'leased' ORDER BY job_id, idx`,
  expire: `WITH e AS MATERIALIZED (
      SELECT job_id, idx, replica FROM task_replicas WHERE state = 'leased' AND lease_expires < $1
      ORDER BY lease_expires LIMIT ${EXPIRE_BATCH} FOR UPDATE SKIP LOCKED)
    UPDATE task_replicas r SET state = CASE WHEN r.failures + 1 < j.max_attempts THEN 'queued' ELSE 'lost' END, failures = r.failures + 1, lease_expires = NULL
    FROM e, jobs j WHERE r.job_id = e.job_id AND r.idx = e.idx AND r.replica = e.replica AND j.id = r.job_id AND r.state = 'leased'
    RETURNING r.job_id, r.idx, r.node_id, r.state`,
  failNode: `WITH e AS MATERIALIZED (
      SELECT job_id, idx, replica FROM task_replicas WHERE node_id = $1 AND state = 'leased'
        AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE id = $1 AND session = $2))
      FOR UPDATE SKIP LOCKED)
    UPDATE task_replicas r SET state = CASE WHEN r.failures + 1 < j.max_attempts THEN 'queued' ELSE 'lost' END, failures = r.failures + 1, lease_expires = NULL
    FROM e, jobs j WHERE r.job_id = e.job_id AND r.idx = e.idx AND r.replica = e.replica AND j.id = r.job_id AND r.state = 'leased'
    RETURNING r.job_id, r.idx, r.node_id, r.state`,
  cancelJob: `WITH o AS MATERIALIZED (
      SELECT job_id, idx, replica, state FROM task_replicas WHERE job_id = $1 AND state IN ('queued', 'leased') ORDER BY idx, replica FOR UPDATE)
    UPDATE task_replicas r SET state = 'cancelled', lease_expires = NULL FROM o
    WHERE r.job_id = o.job_id AND r.idx = o.idx AND r.replica = o.replica
    RETURNING o.state AS was, r.idx, r.attempt, r.node_id`,
  executions: 'SELECT * FROM task_replicas WHERE job_id = $1 AND idx = $2 ORDER BY replica',
  undecided: `SELECT t.job_id, t.idx FROM tasks t WHERE t.state = 'verifying' AND NOT EXISTS (
      SELECT 1 FROM task_replicas r WHERE r.job_id = t.job_id AND r.idx = t.idx AND r.state IN ('queued', 'leased')) LIMIT $1`,
  trust: `INSERT INTO node_trust (node_id, streak, updated_at) SELECT u.id, u.streak, $3 FROM unnest($1::text[], $2::int[]) AS u(id, streak)
    ON CONFLICT (node_id) DO UPDATE SET streak = CASE WHEN EXCLUDED.streak = 1 THEN node_trust.streak + 1 ELSE 0 END, updated_at = EXCLUDED.updated_at`,
  trustOf: 'SELECT node_id, streak FROM node_trust WHERE node_id = ANY($1::text[])',
};

type Revoked = TaskRef & { nodeId: string };

interface InsertRow {
  jobId: string; index: number; replica: number; state: string; attempt: number; nodeId?: string; operator?: string; prefix?: string;
  ask?: number; ok?: boolean; output?: Uint8Array | null; fuel?: number; error?: string | null; receipt?: string | null; finishedAt?: number;
}

async function insert(c: PoolClient, rows: readonly InsertRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  const col = <T>(f: (r: InsertRow) => T): T[] => rows.map(f);
  const r = await c.query(REPLICA_SQL.insert, [
    col((r) => r.jobId), col((r) => r.index), col((r) => r.replica), col((r) => r.state), col((r) => r.attempt),
    col((r) => r.nodeId ?? null), col((r) => r.operator ?? null), col((r) => r.prefix ?? null), col((r) => r.ask ?? 0),
    col((r) => r.ok ?? null), col((r) => r.output ?? null), col((r) => r.fuel ?? null), col((r) => r.error ?? null),
    col((r) => r.receipt ?? null), col((r) => r.finishedAt ?? null),
  ]);
  return r.rowCount ?? 0;
}

/**
 * Holds first results for verification (outcomes with `replicas`); returns
 * the keys (`job/idx/attempt`, as postgres.ts taskKey) of those held. Refuses the batch when a
 * result's input is not the task's (IM_RECEIPT_MISMATCH), as completeTasks.
 */
export async function pgHold(c: PoolClient, nodeId: string, outcomes: readonly Outcome[], receipt: (o: Outcome) => string | null,
  now: number, where: Placement | undefined): Promise<Set<string>> {
  if (outcomes.length === 0) return new Set();
  const error = (o: Outcome): string | null => (o.ok ? null : JSON.stringify(o.error ?? { code: 'IM_AGENT_ERROR', message: 'no error given', retryable: false }));
  const done = (await c.query<Row>(REPLICA_SQL.hold, [nodeId, outcomes.map((o) => o.jobId), outcomes.map((o) => o.index), outcomes.map((o) => o.attempt),
    outcomes.map((o) => o.ok), outcomes.map((o) => (o.ok ? o.output ?? new Uint8Array() : null)), outcomes.map((o) => o.fuel),
    outcomes.map(error), outcomes.map(receipt), outcomes.map((o) => o.replicas ?? 0)])).rows;
  const byKey = new Map(outcomes.map((o) => [`${o.jobId}/${o.index}/${o.attempt}`, o]));
  const rows: InsertRow[] = [];
  const held = new Set<string>();
  for (const r of done) {
    const k = `${String(r.job_id)}/${Number(r.idx)}/${Number(r.attempt)}`;
    const o = byKey.get(k);
    if (!o) continue;
    if (o.inputHash !== undefined && o.inputHash !== r.input_hash) {
      throw new ImError('IM_RECEIPT_MISMATCH', `task ${o.jobId}/${o.index}: the result's receipt names another input than the task's`);
    }
    held.add(k);
    rows.push({
      jobId: o.jobId, index: o.index, replica: 0, state: 'done', attempt: o.attempt, nodeId, operator: where?.operator ?? `node:${nodeId}`,
      ...(where ? { prefix: where.prefix } : {}), ask: Number(r.ask), ok: o.ok, output: o.ok ? o.output ?? new Uint8Array() : null,
      fuel: o.fuel, error: error(o), receipt: receipt(o), finishedAt: now,
    });
    for (let i = 1; i <= Number(r.extra); i++) rows.push({ jobId: o.jobId, index: o.index, replica: i, state: 'queued', attempt: o.attempt });
  }
  await insert(c, rows);
  return held;
}

/** Claims up to `n` replicas of one job for a node (see the header for why two statements). */
export async function pgClaimReplicas(c: PoolClient, jobId: string, nodeId: string, where: Placement, n: number, ask: number, expires: number,
  job: Pick<ClaimedTask, 'instrumentedModule' | 'runtime' | 'limits'>): Promise<ClaimedTask[]> {
  if (n <= 0) return [];
  const locked = (await c.query<Row>(REPLICA_SQL.lockForClaim, [jobId, nodeId, where.operator, where.prefix, n])).rows.map((r) => Number(r.idx));
  if (locked.length === 0) return [];
  const rows = (await c.query<Row>(REPLICA_SQL.claim, [jobId, nodeId, where.operator, where.prefix, expires, ask, locked])).rows;
  return rows.sort((a, b) => Number(a.idx) - Number(b.idx)).map((r) => ({
    jobId, index: Number(r.idx), attempt: Number(r.attempt), nodeId, input: bytes(r.input), leaseExpiresAt: expires, ...job,
  }));
}

/** Results for replica leases; returns key → new state (`done`, `lost` or `queued`). */
export async function pgReplicaResults(c: PoolClient, nodeId: string, outcomes: readonly Outcome[], receipt: (o: Outcome) => string | null,
  retryable: (o: Outcome) => boolean, now: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (outcomes.length === 0) return out;
  const rows = (await c.query<Row>(REPLICA_SQL.result, [nodeId, outcomes.map((o) => o.jobId), outcomes.map((o) => o.index), outcomes.map((o) => o.attempt),
    outcomes.map((o) => o.ok), outcomes.map((o) => (o.ok ? o.output ?? new Uint8Array() : null)), outcomes.map((o) => o.fuel),
    outcomes.map((o) => !o.ok && retryable(o)),
    outcomes.map((o) => (o.ok ? null : JSON.stringify(o.error ?? { code: 'IM_AGENT_ERROR', message: 'no error given', retryable: retryable(o) }))),
    outcomes.map(receipt), now])).rows;
  const byKey = new Map(outcomes.map((o) => [`${o.jobId}/${o.index}/${o.attempt}`, o]));
  for (const r of rows) {
    const k = `${String(r.job_id)}/${Number(r.idx)}/${Number(r.attempt)}`;
    const o = byKey.get(k);
    if (o?.inputHash !== undefined && o.inputHash !== r.input_hash) {
      throw new ImError('IM_RECEIPT_MISMATCH', `task ${o.jobId}/${o.index}: the result's receipt names another input than the task's`);
    }
    out.set(k, String(r.state));
  }
  return out;
}

/** Keys of replica attempts this node already reported (a repeat is a duplicate). */
export async function pgReported(c: PoolClient, nodeId: string, refs: readonly TaskRef[]): Promise<Set<string>> {
  if (refs.length === 0) return new Set();
  const rows = (await c.query<Row>(REPLICA_SQL.reported, [nodeId, refs.map((t) => t.jobId), refs.map((t) => t.index), refs.map((t) => t.attempt)])).rows;
  return new Set(rows.map((r) => `${String(r.job_id)}/${Number(r.idx)}/${Number(r.attempt)}`));
}

export async function pgReleaseReplicas(c: PoolClient, nodeId: string, refs: readonly TaskRef[]): Promise<Row[]> {
  if (refs.length === 0) return [];
  return (await c.query<Row>(REPLICA_SQL.release, [nodeId, refs.map((t) => t.jobId), refs.map((t) => t.index), refs.map((t) => t.attempt)])).rows;
}

export async function pgCancelReplicas(c: PoolClient, jobId: string): Promise<Revoked[]> {
  const rows = (await c.query<Row>(REPLICA_SQL.cancelJob, [jobId])).rows;
  return rows.filter((r) => r.was === 'leased').map((r) => ({ jobId, index: Number(r.idx), attempt: Number(r.attempt), nodeId: String(r.node_id) }));
}

export async function pgExecutions(c: Pick<PoolClient, 'query'>, jobId: string, index: number, receipt: (column: string) => Promise<string | undefined>): Promise<ExecutionRow[]> {
  const rows = (await c.query<Row>(REPLICA_SQL.executions, [jobId, index])).rows;
  const out: ExecutionRow[] = [];
  for (const r of rows) out.push(toExecution(r, r.receipt == null ? undefined : await receipt(String(r.receipt))));
  return out;
}

/** Adds queued replicas until the task has `total`, only while it is verifying (its row locked first). */
export async function pgAddReplicas(c: PoolClient, jobId: string, index: number, total: number): Promise<number> {
  const [t] = (await c.query<Row>('SELECT state FROM tasks WHERE job_id = $1 AND idx = $2 FOR UPDATE', [jobId, index])).rows;
  if (t?.state !== 'verifying') return 0;
  const [n] = (await c.query<Row>('SELECT COUNT(*) AS n, MAX(replica) AS last, MIN(attempt) AS attempt FROM task_replicas WHERE job_id = $1 AND idx = $2', [jobId, index])).rows;
  const have = Number(n?.n ?? 0);
  const rows: InsertRow[] = [];
  for (let i = have; i < total; i++) rows.push({ jobId, index, replica: Number(n?.last ?? -1) + 1 + (i - have), state: 'queued', attempt: Number(n?.attempt ?? 0) });
  return insert(c, rows);
}

/** Applies a decision to the task row (locked first); the caller moves the job's counters. Undefined when not verifying. */
export async function pgDecide(c: PoolClient, d: TaskDecision, now: number): Promise<{ accrued: Accrued[]; revoked: Revoked[] } | undefined> {
  const [t] = (await c.query<Row>('SELECT state FROM tasks WHERE job_id = $1 AND idx = $2 FOR UPDATE', [d.jobId, d.index])).rows;
  if (t?.state !== 'verifying') return undefined;
  const execs = (await c.query<Row>(`SELECT replica, state, attempt, node_id, ask, fuel, receipt FROM task_replicas WHERE job_id = $1 AND idx = $2
    ORDER BY replica FOR UPDATE`, [d.jobId, d.index])).rows;
  const canon = d.canonical === undefined ? undefined : execs.find((r) => Number(r.replica) === d.canonical);
  await c.query(`UPDATE tasks SET state = $3, output = $4, fuel = $5, error = $6, node_id = $7, receipt = $8, finished_at = $9, lease_expires = NULL
    WHERE job_id = $1 AND idx = $2`, [d.jobId, d.index, d.ok ? 'succeeded' : 'failed', d.ok ? d.output ?? new Uint8Array() : null, d.fuel,
    d.ok ? null : JSON.stringify(d.error ?? { code: 'IM_TRAP', message: 'the verifier decided this outcome', retryable: false }),
    canon?.node_id ?? null, canon?.receipt ?? null, now]);
  const revoked = execs.filter((r) => r.state === 'leased').map((r) => ({ jobId: d.jobId, index: d.index, attempt: Number(r.attempt), nodeId: String(r.node_id) }));
  await c.query(`UPDATE task_replicas SET state = 'cancelled', lease_expires = NULL WHERE job_id = $1 AND idx = $2 AND state IN ('queued', 'leased')`, [d.jobId, d.index]);
  const paid = new Set(d.paid);
  const accrued: Accrued[] = execs.filter((r) => paid.has(Number(r.replica)) && r.state === 'done' && Number(r.ask) > 0 && Number(r.fuel) > 0)
    .map((r) => ({ jobId: d.jobId, nodeId: String(r.node_id), ask: Number(r.ask), fuel: Number(r.fuel) }));
  // One change per node (the last wins, as applied in order), in node order: concurrent deciders lock alike.
  const trust = new Map<string, boolean>();
  for (const x of d.trust) trust.set(x.nodeId, x.valid);
  if (trust.size > 0) {
    const ids = [...trust.keys()].sort();
    await c.query(REPLICA_SQL.trust, [ids, ids.map((id) => (trust.get(id) ? 1 : 0)), now]);
  }
  return { accrued, revoked };
}

export async function pgUndecided(c: Pick<PoolClient, 'query'>, limit: number): Promise<TaskKey[]> {
  return (await c.query<Row>(REPLICA_SQL.undecided, [limit])).rows.map((r) => ({ jobId: String(r.job_id), index: Number(r.idx) }));
}

export async function pgTrust(c: Pick<PoolClient, 'query'>, nodeIds: readonly string[]): Promise<Map<string, number>> {
  const out = new Map(nodeIds.map((id) => [id, 0]));
  for (const r of (await c.query<Row>(REPLICA_SQL.trustOf, [[...nodeIds]])).rows) out.set(String(r.node_id), Number(r.streak));
  return out;
}
