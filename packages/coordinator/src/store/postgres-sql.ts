/**
 * The statements of the PostgreSQL store that carry its concurrency rules.
 * Waiting lockers take tasks in (job_id, idx) order; claims and sweeps skip
 * tasks another transaction holds (FOR UPDATE SKIP LOCKED) instead of
 * waiting. Locking subqueries are MATERIALIZED CTEs so that each runs once,
 * whatever join the planner picks.
 */

import { RESULT_COLUMNS } from './sqlite.js';

const EXPIRE_BATCH = 10_000;

// A failed attempt: requeued with exponential backoff while it is retryable and
// attempts remain, otherwise failed for good. `retryable`, `now`, `fuel` and
// `error` are SQL expressions; `t` is the task, `j` its job. Same rule as sqlite.ts.
function failSet(retryable: string, now: string, fuel: string, error: string): string {
  const again = `(${retryable}) AND t.failures + 1 < j.max_attempts`;
  return `state = CASE WHEN ${again} THEN 'queued' ELSE 'failed' END,
    available_at = ${now} + j.retry_backoff_ms * (1::bigint << LEAST(t.failures, 20)),
    failures = t.failures + 1, fuel = ${fuel}, error = ${error}, lease_expires = NULL,
    finished_at = CASE WHEN ${again} THEN NULL ELSE ${now} END`;
}

export const SQL = {
  // The lowest queued indexes nobody else is claiming. `idx + 0` is the key of tasks_queued and of
  // no other index, so (with sorts off: CLAIM_BEGIN in postgres.ts) the plan walks that index in order and stops
  // after $5 rows, whatever the statistics say: the INDEXED BY of sqlite.ts.
  claim: `WITH c AS MATERIALIZED (
      SELECT job_id, idx FROM tasks WHERE job_id = $1 AND state = 'queued' AND available_at <= $4
      ORDER BY idx + 0 LIMIT $5 FOR UPDATE SKIP LOCKED)
    UPDATE tasks t SET state = 'leased', attempt = t.attempt + 1, node_id = $2, lease_expires = $3, ask = $6
    FROM c WHERE t.job_id = c.job_id AND t.idx = c.idx AND t.state = 'queued'
    RETURNING t.idx, t.attempt, t.input`,
  // Successes and failures of one batch in one statement; `ok` picks the branch per row. The
  // CTE locks the leases once, in (job_id, idx) order: the order cancelTasks and release use.
  complete: `WITH u AS MATERIALIZED (
      SELECT o.*, j.max_attempts, j.retry_backoff_ms
      FROM unnest($3::text[], $4::int[], $5::int[], $6::bool[], $7::bytea[], $8::bigint[], $9::bool[], $10::text[], $11::text[])
        AS o(job_id, idx, attempt, ok, output, fuel, retryable, error, receipt)
      JOIN tasks x ON x.job_id = o.job_id AND x.idx = o.idx
      JOIN jobs j ON j.id = o.job_id
      WHERE x.attempt = o.attempt AND x.state = 'leased' AND x.node_id = $1
      ORDER BY x.job_id, x.idx
      FOR UPDATE OF x)
    UPDATE tasks t SET
      state = CASE WHEN u.ok THEN 'succeeded' WHEN u.retryable AND t.failures + 1 < u.max_attempts THEN 'queued' ELSE 'failed' END,
      output = CASE WHEN u.ok THEN u.output ELSE t.output END,
      fuel = u.fuel,
      error = CASE WHEN u.ok THEN NULL ELSE u.error END,
      available_at = CASE WHEN u.ok THEN t.available_at ELSE $2 + u.retry_backoff_ms * (1::bigint << LEAST(t.failures, 20)) END,
      failures = CASE WHEN u.ok THEN t.failures ELSE t.failures + 1 END,
      lease_expires = NULL,
      receipt = u.receipt,
      finished_at = CASE WHEN u.ok OR NOT (u.retryable AND t.failures + 1 < u.max_attempts) THEN $2 ELSE NULL END
    FROM u
    WHERE t.job_id = u.job_id AND t.idx = u.idx AND t.attempt = u.attempt AND t.state = 'leased' AND t.node_id = $1
    RETURNING t.job_id, t.idx, t.attempt, t.state, t.ask, u.fuel, u.retryable, encode(sha256(t.input), 'hex') AS input_hash`,
  receipt: 'SELECT receipt FROM tasks WHERE job_id = $1 AND idx = $2',
  receiptBatch: 'SELECT doc FROM receipt_batches WHERE id = $1',
  putReceiptBatch: 'INSERT INTO receipt_batches (id, doc, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING',
  taskStates: `SELECT t.job_id, t.idx, t.state, t.attempt, t.node_id FROM tasks t
    JOIN unnest($1::text[], $2::int[]) AS u(job_id, idx) ON t.job_id = u.job_id AND t.idx = u.idx`,
  release: `WITH u AS MATERIALIZED (
      SELECT x.job_id, x.idx, x.attempt
      FROM unnest($2::text[], $3::int[], $4::int[]) AS r(job_id, idx, attempt)
      JOIN tasks x ON x.job_id = r.job_id AND x.idx = r.idx
      WHERE x.attempt = r.attempt AND x.state = 'leased' AND x.node_id = $1
      ORDER BY x.job_id, x.idx
      FOR UPDATE OF x)
    UPDATE tasks t SET state = 'queued', lease_expires = NULL
    FROM u
    WHERE t.job_id = u.job_id AND t.idx = u.idx AND t.attempt = u.attempt AND t.state = 'leased' AND t.node_id = $1
    RETURNING t.job_id`,
  // Leases another transaction has locked are being completed, released or extended: skip them.
  // One statement (one commit) per heartbeat: the node's last_seen and its leases.
  extend: `WITH seen AS (UPDATE nodes SET last_seen = $3 WHERE id = $1 AND last_seen < $3),
    e AS MATERIALIZED (
      SELECT job_id, idx FROM tasks WHERE node_id = $1 AND state = 'leased' AND lease_expires < $2 FOR UPDATE SKIP LOCKED)
    UPDATE tasks t SET lease_expires = $2 FROM e WHERE t.job_id = e.job_id AND t.idx = e.idx`,
  expire: `WITH e AS MATERIALIZED (
      SELECT job_id, idx FROM tasks WHERE state = 'leased' AND lease_expires < $1 ORDER BY lease_expires LIMIT ${EXPIRE_BATCH} FOR UPDATE SKIP LOCKED)
    UPDATE tasks t SET ${failSet('true', '$1', '0', '$2')}
    FROM e, jobs j
    WHERE t.job_id = e.job_id AND t.idx = e.idx AND j.id = t.job_id AND t.state = 'leased'
    RETURNING t.job_id, t.node_id, t.state`,
  // The session test is in the same statement (one snapshot) as the update.
  failNode: `WITH e AS MATERIALIZED (
      SELECT job_id, idx FROM tasks WHERE node_id = $3 AND state = 'leased'
        AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM nodes WHERE id = $3 AND session = $4))
      FOR UPDATE SKIP LOCKED)
    UPDATE tasks t SET ${failSet('true', '$1', '0', '$2')}
    FROM e, jobs j
    WHERE t.job_id = e.job_id AND t.idx = e.idx AND j.id = t.job_id AND t.state = 'leased' AND t.node_id = $3
    RETURNING t.job_id, t.node_id, t.state`,
  // Counters and the settle rule of sqlite.ts (bump, then settleState) in one statement.
  bump: `UPDATE jobs j SET
      queued = j.queued + d.queued, leased = j.leased + d.leased, succeeded = j.succeeded + d.succeeded,
      failed = j.failed + d.failed, cancelled = j.cancelled + d.cancelled, fuel_used = j.fuel_used + d.fuel, updated_at = $1,
      state = CASE WHEN j.state = 'cancelled' THEN 'cancelled'
                   WHEN j.queued + d.queued + j.leased + d.leased = 0 THEN 'completed'
                   WHEN j.leased + d.leased > 0 OR j.succeeded + d.succeeded + j.failed + d.failed > 0 THEN 'running'
                   ELSE 'queued' END,
      finished_at = CASE WHEN j.queued + d.queued + j.leased + d.leased = 0 AND j.finished_at IS NULL THEN $1 ELSE j.finished_at END
    FROM unnest($2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[], $8::bigint[])
      AS d(id, queued, leased, succeeded, failed, cancelled, fuel)
    WHERE j.id = d.id`,
  nodeStats: `UPDATE nodes n SET completed = n.completed + u.completed, failed = n.failed + u.failed, last_seen = $1
    FROM unnest($2::text[], $3::int[], $4::int[]) AS u(id, completed, failed) WHERE n.id = u.id`,
  cancelTasks: `WITH o AS MATERIALIZED (
      SELECT job_id, idx, state FROM tasks WHERE job_id = $1 AND state IN ('queued', 'leased', 'verifying') ORDER BY idx FOR UPDATE)
    UPDATE tasks t SET state = 'cancelled', finished_at = $2, lease_expires = NULL
    FROM o
    WHERE t.job_id = o.job_id AND t.idx = o.idx
    RETURNING o.state AS was, t.idx, t.attempt, t.node_id`,
  cancelJob: `UPDATE jobs SET queued = queued - $2, leased = leased - $3, cancelled = cancelled + $4,
      updated_at = CASE WHEN state IN ('completed', 'cancelled') THEN updated_at ELSE $5 END,
      finished_at = CASE WHEN state IN ('completed', 'cancelled') THEN finished_at ELSE $5 END,
      state = CASE WHEN state IN ('completed', 'cancelled') THEN state ELSE 'cancelled' END
    WHERE id = $1 RETURNING *`,
  // A task under verification reads as leased, with nothing of its held result (RESULT_COLUMNS in sqlite.ts).
  results: `SELECT ${RESULT_COLUMNS} FROM tasks
    WHERE job_id = $1 AND idx > $2 AND ($4::text IS NULL OR (CASE WHEN state = 'verifying' THEN 'leased' ELSE state END) = $4) ORDER BY idx LIMIT $3`,
};
