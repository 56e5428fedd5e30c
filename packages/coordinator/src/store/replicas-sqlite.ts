/**
 * Replicas on SQLite: the extra executions of tasks under verification
 * (replicate, adaptive). Synchronous, like sqlite-ledger.ts: every method runs
 * inside the caller's transaction, so an exclusion checked is an exclusion
 * kept (SQLite has one writer).
 *
 * The rules (the same in replicas-postgres.ts):
 * - a held result: the task row turns `verifying` (counted as leased), its
 *   result becomes replica 0 (`done`) and `n` replicas are queued;
 * - a replica is claimed by a node only if no other execution of the task
 *   that is leased or done ran on the same node, operator or prefix, and a
 *   claim takes at most one replica of a task;
 * - a replica's retryable failure queues it again until the job's
 *   maxAttempts, then it is `lost`; any other result is `done`;
 * - a decision ends the task once: the task row takes the result, the paid
 *   executions are charged, outstanding replicas are cancelled.
 */
import type Database from 'better-sqlite3';
import type { WireError } from '@idlemesh/protocol';
import { limitOf, sameInput } from './rows.js';
import type { Row } from './rows.js';
import { toExecution } from './replica-rows.js';
import type { Accrued } from './sqlite-ledger.js';
import type { ClaimedTask, ExecutionRow, Outcome, Placement, TaskDecision, TaskKey, TaskRef } from './types.js';

export class SqliteReplicas {
  private readonly st;

  constructor(db: Database.Database, private readonly receipt: (column: string) => string | undefined) {
    this.st = {
      hold: db.prepare(`UPDATE tasks SET state = 'verifying', output = @output, fuel = @fuel, error = @error, lease_expires = NULL, receipt = @receipt
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt
        RETURNING ask, input`),
      insert: db.prepare(`INSERT OR IGNORE INTO task_replicas (job_id, idx, replica, state, attempt, node_id, operator, prefix, ask, ok, output, fuel, error, receipt, finished_at)
        VALUES (@job, @idx, @replica, @state, @attempt, @node, @operator, @prefix, @ask, @ok, @output, @fuel, @error, @receipt, @finished)`),
      // One replica per task at most (MIN per idx), none of a task this node, operator or prefix already runs or ran.
      claim: db.prepare(`UPDATE task_replicas SET state = 'leased', attempt = attempt + 1, node_id = @node, operator = @operator, prefix = @prefix,
          lease_expires = @expires, ask = @ask
        WHERE (job_id, idx, replica) IN (
          SELECT q.job_id, q.idx, MIN(q.replica) FROM task_replicas q
          WHERE q.job_id = @job AND q.state = 'queued' AND NOT EXISTS (
            SELECT 1 FROM task_replicas o WHERE o.job_id = q.job_id AND o.idx = q.idx AND o.state IN ('leased', 'done')
              AND (o.node_id = @node OR o.operator = @operator OR o.prefix = @prefix))
          GROUP BY q.job_id, q.idx ORDER BY q.idx ${limitOf('@n')})
        RETURNING idx, attempt`),
      input: db.prepare('SELECT input FROM tasks WHERE job_id = ? AND idx = ?'),
      result: db.prepare(`UPDATE task_replicas SET
          state = CASE WHEN @final = 1 THEN 'done' WHEN failures + 1 < @maxAttempts THEN 'queued' ELSE 'lost' END,
          failures = CASE WHEN @final = 1 THEN failures ELSE failures + 1 END,
          ok = CASE WHEN @final = 1 THEN @ok ELSE NULL END, output = @output, fuel = @fuel, error = @error, receipt = @receipt,
          lease_expires = NULL, finished_at = @now
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt
        RETURNING state`),
      done: db.prepare(`SELECT 1 FROM task_replicas WHERE job_id = ? AND idx = ? AND node_id = ? AND attempt = ? AND state IN ('done', 'lost', 'cancelled')`),
      release: db.prepare(`UPDATE task_replicas SET state = 'queued', lease_expires = NULL
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt`),
      extend: db.prepare(`UPDATE task_replicas SET lease_expires = @expires WHERE node_id = @node AND state = 'leased' AND lease_expires < @expires`),
      leasesOfNode: db.prepare(`SELECT job_id, idx, attempt FROM task_replicas WHERE node_id = ? AND state = 'leased'`),
      fail: db.prepare(`UPDATE task_replicas SET
          state = CASE WHEN failures + 1 < (SELECT max_attempts FROM jobs WHERE id = task_replicas.job_id) THEN 'queued' ELSE 'lost' END,
          failures = failures + 1, lease_expires = NULL
        WHERE state = 'leased' AND ((@node IS NULL AND lease_expires < @now) OR node_id = @node)
        RETURNING job_id, idx, node_id, state`),
      leasedOfJob: db.prepare(`SELECT idx, attempt, node_id FROM task_replicas WHERE job_id = ? AND state = 'leased'`),
      cancelJob: db.prepare(`UPDATE task_replicas SET state = 'cancelled', lease_expires = NULL WHERE job_id = ? AND state IN ('queued', 'leased')`),
      executions: db.prepare('SELECT * FROM task_replicas WHERE job_id = ? AND idx = ? ORDER BY replica'),
      count: db.prepare('SELECT COUNT(*) AS n, MAX(replica) AS last, MIN(attempt) AS attempt FROM task_replicas WHERE job_id = ? AND idx = ?'),
      taskState: db.prepare('SELECT state FROM tasks WHERE job_id = ? AND idx = ?'),
      outstanding: db.prepare(`SELECT idx, attempt, node_id, state FROM task_replicas WHERE job_id = ? AND idx = ? AND state IN ('queued', 'leased')`),
      cancelTask: db.prepare(`UPDATE task_replicas SET state = 'cancelled', lease_expires = NULL WHERE job_id = ? AND idx = ? AND state IN ('queued', 'leased')`),
      decide: db.prepare(`UPDATE tasks SET state = @state, output = @output, fuel = @fuel, error = @error, node_id = @node, receipt = @receipt,
          finished_at = @now, lease_expires = NULL
        WHERE job_id = @job AND idx = @idx AND state = 'verifying'`),
      paid: db.prepare(`SELECT node_id, ask, fuel FROM task_replicas WHERE job_id = ? AND idx = ? AND replica = ? AND state = 'done'`),
      trust: db.prepare(`INSERT INTO node_trust (node_id, streak, updated_at) VALUES (@node, @streak, @now)
        ON CONFLICT (node_id) DO UPDATE SET streak = CASE WHEN @streak = 1 THEN streak + 1 ELSE 0 END, updated_at = @now`),
      trustOf: db.prepare('SELECT streak FROM node_trust WHERE node_id = ?'),
      undecided: db.prepare(`SELECT job_id, idx FROM tasks t INDEXED BY tasks_verifying WHERE t.state = 'verifying' AND NOT EXISTS (
          SELECT 1 FROM task_replicas r WHERE r.job_id = t.job_id AND r.idx = t.idx AND r.state IN ('queued', 'leased')) ${limitOf('?')}`),
    };
  }

  /** Holds a first result for verification; undefined if the lease is not this node's (the caller reports it). */
  hold(nodeId: string, o: Outcome, now: number, receipt: string | null, where: Placement | undefined): 'held' | undefined {
    const output = o.ok ? Buffer.from(o.output ?? new Uint8Array()) : null;
    const error = o.ok ? null : JSON.stringify(o.error ?? { code: 'IM_AGENT_ERROR', message: 'no error given', retryable: false });
    const r = this.st.hold.get({ job: o.jobId, idx: o.index, node: nodeId, attempt: o.attempt, output, fuel: o.fuel, error, receipt }) as Row | undefined;
    if (!r) return undefined;
    sameInput(o, r.input as Uint8Array);
    const base = { job: o.jobId, idx: o.index, attempt: o.attempt, operator: null, prefix: null, node: null, ask: 0, ok: null, output: null, fuel: null, error: null, receipt: null, finished: null };
    this.st.insert.run({
      ...base, replica: 0, state: 'done', node: nodeId, operator: where?.operator ?? `node:${nodeId}`, prefix: where?.prefix ?? null,
      ask: Number(r.ask), ok: o.ok ? 1 : 0, output, fuel: o.fuel, error, receipt, finished: now,
    });
    for (let i = 1; i <= (o.replicas ?? 0); i++) this.st.insert.run({ ...base, replica: i, state: 'queued' });
    return 'held';
  }

  /** Claims up to `n` replicas of a job for a node; the inputs come from the task rows. */
  claim(jobId: string, nodeId: string, where: Placement, n: number, ask: number, expires: number, job: Pick<ClaimedTask, 'instrumentedModule' | 'runtime' | 'limits'>): ClaimedTask[] {
    if (n <= 0) return [];
    const rows = this.st.claim.all({ job: jobId, node: nodeId, operator: where.operator, prefix: where.prefix, n, ask, expires }) as Row[];
    return rows.sort((a, b) => Number(a.idx) - Number(b.idx)).map((r) => ({
      jobId, index: Number(r.idx), attempt: Number(r.attempt), nodeId,
      input: new Uint8Array((this.st.input.get(jobId, Number(r.idx)) as Row).input as Buffer),
      leaseExpiresAt: expires, ...job,
    }));
  }

  /** A result for a replica lease; undefined when this node holds no such lease. */
  result(nodeId: string, o: Outcome, now: number, receipt: string | null, maxAttempts: number, retryable: boolean): 'done' | 'lost' | 'queued' | undefined {
    const final = o.ok || !retryable;
    const r = this.st.result.get({
      job: o.jobId, idx: o.index, node: nodeId, attempt: o.attempt, final: final ? 1 : 0, maxAttempts, ok: o.ok ? 1 : 0,
      output: o.ok ? Buffer.from(o.output ?? new Uint8Array()) : null, fuel: o.fuel,
      error: o.ok ? null : JSON.stringify(o.error ?? { code: 'IM_AGENT_ERROR', message: 'no error given', retryable }), receipt, now,
    }) as Row | undefined;
    if (!r) return undefined;
    sameInput(o, (this.st.input.get(o.jobId, o.index) as Row).input as Uint8Array);
    return r.state as 'done' | 'lost' | 'queued';
  }

  /** Whether this node already reported this replica attempt (a repeat is a duplicate, not a refusal). */
  reported(nodeId: string, o: TaskRef): boolean {
    return this.st.done.get(o.jobId, o.index, nodeId, o.attempt) !== undefined;
  }

  release(nodeId: string, t: TaskRef): boolean {
    return this.st.release.run({ job: t.jobId, idx: t.index, node: nodeId, attempt: t.attempt }).changes === 1;
  }

  extend(nodeId: string, expires: number): number {
    return this.st.extend.run({ node: nodeId, expires }).changes;
  }

  leasesOf(nodeId: string): TaskRef[] {
    return (this.st.leasesOfNode.all(nodeId) as Row[]).map((r) => ({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt) }));
  }

  /** Expired replica leases (or all of a vanished node's): queued again, or lost when out of attempts. */
  fail(now: number, nodeId: string | null): { requeued: number; lost: TaskKey[]; nodes: Map<string, number>; jobs: Set<string> } {
    const rows = this.st.fail.all({ now, node: nodeId }) as Row[];
    const nodes = new Map<string, number>();
    const lost: TaskKey[] = [];
    let requeued = 0;
    for (const r of rows) {
      nodes.set(String(r.node_id), (nodes.get(String(r.node_id)) ?? 0) + 1);
      if (r.state === 'queued') requeued++;
      else lost.push({ jobId: String(r.job_id), index: Number(r.idx) });
    }
    return { requeued, lost, nodes, jobs: new Set(rows.map((r) => String(r.job_id))) };
  }

  /** A cancelled job's replicas stop; the live leases are returned for revocation. */
  cancelJob(jobId: string): Array<TaskRef & { nodeId: string }> {
    const revoked = (this.st.leasedOfJob.all(jobId) as Row[]).map((r) => ({ jobId, index: Number(r.idx), attempt: Number(r.attempt), nodeId: String(r.node_id) }));
    this.st.cancelJob.run(jobId);
    return revoked;
  }

  executions(jobId: string, index: number): ExecutionRow[] {
    return (this.st.executions.all(jobId, index) as Row[]).map((r) => toExecution(r, r.receipt == null ? undefined : this.receipt(String(r.receipt))));
  }

  /** Adds queued replicas until the task has `total` executions; only while it is verifying. */
  add(jobId: string, index: number, total: number): number {
    if ((this.st.taskState.get(jobId, index) as Row | undefined)?.state !== 'verifying') return 0;
    const c = this.st.count.get(jobId, index) as Row;
    const have = Number(c.n);
    const base = { job: jobId, idx: index, state: 'queued', attempt: Number(c.attempt ?? 0), node: null, operator: null, prefix: null, ask: 0, ok: null, output: null, fuel: null, error: null, receipt: null, finished: null };
    let added = 0;
    for (let i = have; i < total; i++) added += this.st.insert.run({ ...base, replica: Number(c.last ?? -1) + 1 + (i - have) }).changes;
    return added;
  }

  /**
   * Applies a decision to the task row; the caller adds `delta` to the job
   * and charges `accrued`. Undefined when the task is not verifying.
   */
  decide(d: TaskDecision, now: number): { accrued: Accrued[]; revoked: Array<TaskRef & { nodeId: string }> } | undefined {
    const canon = d.canonical === undefined ? undefined : (this.st.executions.all(d.jobId, d.index) as Row[]).find((r) => Number(r.replica) === d.canonical);
    const changed = this.st.decide.run({
      job: d.jobId, idx: d.index, now, state: d.ok ? 'succeeded' : 'failed',
      output: d.ok ? Buffer.from(d.output ?? new Uint8Array()) : null, fuel: d.fuel,
      error: d.ok ? null : JSON.stringify(d.error ?? errorOf('IM_TRAP')),
      node: canon?.node_id ?? null, receipt: canon?.receipt ?? null,
    }).changes;
    if (changed !== 1) return undefined;
    const revoked = (this.st.outstanding.all(d.jobId, d.index) as Row[]).filter((r) => r.state === 'leased')
      .map((r) => ({ jobId: d.jobId, index: d.index, attempt: Number(r.attempt), nodeId: String(r.node_id) }));
    this.st.cancelTask.run(d.jobId, d.index);
    const accrued: Accrued[] = [];
    for (const replica of new Set(d.paid)) {
      const p = this.st.paid.get(d.jobId, d.index, replica) as Row | undefined;
      if (p && Number(p.ask) > 0 && Number(p.fuel) > 0) accrued.push({ jobId: d.jobId, nodeId: String(p.node_id), ask: Number(p.ask), fuel: Number(p.fuel) });
    }
    for (const t of d.trust) this.st.trust.run({ node: t.nodeId, streak: t.valid ? 1 : 0, now });
    return { accrued, revoked };
  }

  undecided(limit: number): TaskKey[] {
    return (this.st.undecided.all(limit) as Row[]).map((r) => ({ jobId: String(r.job_id), index: Number(r.idx) }));
  }

  trust(nodeIds: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const id of nodeIds) out.set(id, Number((this.st.trustOf.get(id) as Row | undefined)?.streak ?? 0));
    return out;
  }
}

function errorOf(code: string): WireError {
  return { code, message: 'the verifier decided this outcome', retryable: false };
}
