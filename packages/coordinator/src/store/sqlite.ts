import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { Capabilities, JobState, TaskState, WireError } from '@idlemesh/protocol';
import { ImError } from '@idlemesh/protocol';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { SqliteLedger } from './sqlite-ledger.js';
import type { Accrued } from './sqlite-ledger.js';
import type { AccountBalance, Transfer } from '../ledger/index.js';
import type { BatchOutcome, LedgerBatch } from '../ledger/persist.js';
import { firstLeased, jobIdFloor, limitOf, sameInput, toJob, toMeterRow, toModelDemand, toModule, toNode, toRunnable, toTaskRow } from './rows.js';
import type { Row } from './rows.js';
import { parseReceiptColumn, receiptFromBatch, receiptRef } from './receipt-rows.js';
import { SqliteReplicas } from './replicas-sqlite.js';
import type {
  Claim,
  ClaimedTask,
  ExpiryReport,
  FirstLeases,
  JobRecord,
  MeterRow,
  NewJob,
  NodeRecord,
  Outcome,
  OutcomeStatus,
  RunnableJob,
  Store,
  StoreEvent,
  StoredModule,
  TaskRef,
  TaskRow,
  ChargeRow,
  DepositAddress,
  LedgerDump,
  MarketRow,
  RecordChange,
  StoredRecord,
  SettlementPlan,
  ReceiptBatchRow,
  ExecutionRow,
  Placement,
  TaskDecision,
  TaskKey,
  ModelDemandRow,
} from './types.js';
import { decodeDoc, encodeDoc, toTransfer } from './ledger-rows.js';
import { appendRows, restoreLog, toAuditEntry, toLeaf } from './audit-rows.js';
import type { AuditEntry } from '@idlemesh/protocol';


interface Delta {
  queued: number;
  leased: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  fuel: number;
}

/**
 * A task's result columns as buyers see them: a task under verification
 * (`verifying`) reads as leased, and nothing of its held result shows.
 */
export const RESULT_COLUMNS = `job_id, idx, CASE WHEN state = 'verifying' THEN 'leased' ELSE state END AS state, attempt, failures,
  CASE WHEN state = 'verifying' THEN NULL ELSE node_id END AS node_id, CASE WHEN state = 'verifying' THEN NULL ELSE output END AS output,
  CASE WHEN state = 'verifying' THEN NULL ELSE fuel END AS fuel, CASE WHEN state = 'verifying' THEN NULL ELSE error END AS error, finished_at`;

/** How often the background checkpointer copies the WAL into the database file. */
const CHECKPOINT_EVERY_MS = 250;

const RETRYABLE_TASK_ERRORS = new Set(['IM_TIMEOUT', 'IM_AGENT_ERROR', 'IM_LEASE_EXPIRED']);

/** Whether a failed attempt may be tried again (on another lease) rather than failing the task. */
export function isRetryableTaskError(code: string): boolean {
  return RETRYABLE_TASK_ERRORS.has(code);
}

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is
 * synchronous, so each method is one transaction that runs to completion
 * before any other; that is what makes at-most-once acceptance simple here.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  /** One coordinator per SQLite file. */
  readonly shared = false;
  readonly durability: string;
  private readonly db: Database.Database;
  private prepared: ReturnType<SqliteStore['prepare']> | undefined;
  private ledgerRows: SqliteLedger | undefined;
  private replicaRows: SqliteReplicas | undefined;

  private checkpointer: Worker | undefined;

  /**
   * `backgroundCheckpoints`: the WAL is checkpointed by a worker thread on
   * its own connection (sqlite-checkpointer.ts) instead of inside whichever
   * commit crosses SQLite's threshold; the coordinator opens its store so.
   */
  constructor(path: string, opts: { synchronous?: 'NORMAL' | 'FULL'; backgroundCheckpoints?: boolean } = {}) {
    const sync = opts.synchronous ?? 'NORMAL';
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${sync}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.durability = `sqlite WAL synchronous=${sync}`;
    if (opts.backgroundCheckpoints && path !== ':memory:' && path !== '') this.startCheckpointer(path);
  }

  private startCheckpointer(path: string): void {
    const worker = new Worker(new URL('./sqlite-checkpointer.js', import.meta.url), { workerData: { path, everyMs: CHECKPOINT_EVERY_MS } });
    worker.unref();
    // A backstop, should the worker fall behind or die: commits checkpoint again past ten times the usual size.
    this.db.pragma(`wal_autocheckpoint = ${10 * 1000}`);
    const fallBack = (): void => {
      if (this.checkpointer !== worker) return;
      this.checkpointer = undefined;
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    };
    worker.on('error', fallBack);
    worker.on('exit', fallBack);
    this.checkpointer = worker;
  }

  private txStatements: { IMMEDIATE: Statement; DEFERRED: Statement; commit: Statement; rollback: Statement } | undefined;

  /**
   * Runs fn in one transaction: BEGIN IMMEDIATE for one that will write (the
   * write lock is taken first, so it never fails half-way for want of it),
   * BEGIN for one that reads. Inside another transaction it runs in a
   * savepoint. better-sqlite3's db.transaction() builds five functions at
   * every call; on a job's path (submit, claim, results) that was a few
   * microseconds per commit for nothing.
   */
  private tx<T>(fn: () => T, begin: 'IMMEDIATE' | 'DEFERRED' = 'IMMEDIATE'): T {
    if (this.db.inTransaction) {
      this.db.exec('SAVEPOINT nested');
      try {
        const r = fn();
        this.db.exec('RELEASE nested');
        return r;
      } catch (err) {
        this.db.exec('ROLLBACK TO nested');
        this.db.exec('RELEASE nested');
        throw err;
      }
    }
    const t = (this.txStatements ??= {
      IMMEDIATE: this.db.prepare('BEGIN IMMEDIATE'),
      DEFERRED: this.db.prepare('BEGIN'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
    });
    t[begin].run();
    try {
      const r = fn();
      t.commit.run();
      return r;
    } catch (err) {
      // SQLite may have rolled back already (a full disk, an I/O error).
      if (this.db.inTransaction) t.rollback.run();
      throw err;
    }
  }

  private get s(): ReturnType<SqliteStore['prepare']> {
    return (this.prepared ??= this.prepare());
  }

  private get ledger(): SqliteLedger {
    return (this.ledgerRows ??= new SqliteLedger(this.db));
  }

  private get replicas(): SqliteReplicas {
    return (this.replicaRows ??= new SqliteReplicas(this.db, (column) => this.receiptOf(column)));
  }

  async migrate(): Promise<void> {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    const done = new Set((this.db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((r) => Number(r.version)));
    SQLITE_MIGRATIONS.forEach((sql, i) => {
      const version = i + 1;
      if (done.has(version)) return;
      this.tx(() => {
        this.db.exec(sql);
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now());
      });
    });
  }

  async close(): Promise<void> {
    const worker = this.checkpointer;
    this.checkpointer = undefined;
    if (worker) {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      const timer = setTimeout(() => void worker.terminate(), 2000);
      await exited;
      clearTimeout(timer);
    }
    if (this.db.open) this.db.close();
  }

  async ping(): Promise<boolean> {
    return this.db.prepare('SELECT 1 AS ok').get() !== undefined;
  }

  private prepare() {
    const db = this.db;
    return {
      insertModule: db.prepare(`INSERT OR IGNORE INTO modules (hash, instrumented_hash, abi, size, instrumented_size, initial_pages, max_pages, bytes, instrumented, created_at)
        VALUES (@hash, @instrumentedHash, @abi, @size, @instrumentedSize, @initialPages, @maxPages, @bytes, @instrumented, @createdAt)`),
      getModule: db.prepare('SELECT * FROM modules WHERE hash = ? OR instrumented_hash = ?'),
      insertJob: db.prepare(`INSERT INTO jobs (id, caller, idem_key, request_hash, name, module, instrumented_module, runtime, limits, bid, max_attempts,
        retry_backoff_ms, priority, requirements, state, total, queued, leased, created_at, updated_at, buyer, hold_msat, fees, label, data_classes, verification)
        VALUES (@id, @caller, @idem_key, @request_hash, @name, @module, @instrumented_module, @runtime, @limits, @bid, @max_attempts,
        @retry_backoff_ms, @priority, @requirements, @state, @total, @queued, @leased, @created_at, @created_at, @buyer, @hold_msat, @fees, @label, @data_classes, @verification)
        RETURNING *`),
      insertTask: db.prepare('INSERT INTO tasks (job_id, idx, state, input) VALUES (?, ?, \'queued\', ?)'),
      // A task leased as it is stored: what the claim below would have made of it.
      insertLeasedTask: db.prepare(`INSERT INTO tasks (job_id, idx, state, input, attempt, node_id, lease_expires, ask)
        VALUES (?, ?, 'leased', ?, 1, ?, ?, ?)`),
      jobById: db.prepare('SELECT * FROM jobs WHERE id = ?'),
      // Once per finished job: a statement prepared per call is a native object for the GC to finalize.
      markSettled: db.prepare('UPDATE jobs SET settled_at = ? WHERE id = ?'),
      jobByKey: db.prepare('SELECT * FROM jobs WHERE caller = ? AND idem_key = ?'),
      // Queued replicas (verification) are queued work too.
      runnable: db.prepare(`SELECT j.id, j.runtime, j.queued + COALESCE(r.n, 0) AS queued, j.leased, j.priority, j.bid, j.caller, j.label, j.data_classes,
          j.created_at, j.limits, j.requirements
        FROM jobs j LEFT JOIN (SELECT job_id, COUNT(*) AS n FROM task_replicas WHERE state = 'queued' GROUP BY job_id) r ON r.job_id = j.id
        WHERE j.state IN ('queued', 'running') AND (j.queued > 0 OR r.n > 0) ORDER BY j.created_at`),
      claim: db.prepare(`UPDATE tasks SET state = 'leased', attempt = attempt + 1, node_id = @node, lease_expires = @expires, ask = @ask
        WHERE job_id = @job AND idx IN (
          SELECT idx FROM tasks INDEXED BY tasks_queued WHERE job_id = @job AND state = 'queued' AND available_at <= @now ORDER BY idx ${limitOf('@n')})
        RETURNING idx, attempt, input`),
      extend: db.prepare(`UPDATE tasks SET lease_expires = @expires WHERE node_id = @node AND state = 'leased' AND lease_expires < @expires`),
      succeed: db.prepare(`UPDATE tasks SET state = 'succeeded', output = @output, fuel = @fuel, error = NULL, finished_at = @now, lease_expires = NULL, receipt = @receipt
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt
        RETURNING ask, input`),
      fail: db.prepare(`UPDATE tasks SET
          state = CASE WHEN @retryable = 1 AND failures + 1 < @maxAttempts THEN 'queued' ELSE 'failed' END,
          available_at = @now + @backoff * (1 << MIN(failures, 20)),
          failures = failures + 1, fuel = @fuel, error = @error, lease_expires = NULL, receipt = @receipt,
          finished_at = CASE WHEN @retryable = 1 AND failures + 1 < @maxAttempts THEN NULL ELSE @now END
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt
        RETURNING state, ask, input`),
      receipt: db.prepare('SELECT receipt FROM tasks WHERE job_id = ? AND idx = ?'),
      receiptBatch: db.prepare('SELECT doc FROM receipt_batches WHERE id = ?'),
      putReceiptBatch: db.prepare('INSERT OR IGNORE INTO receipt_batches (id, doc, created_at) VALUES (?, ?, ?)'),
      taskInput: db.prepare('SELECT input FROM tasks WHERE job_id = ? AND idx = ?'),
      taskState: db.prepare('SELECT state, attempt, node_id FROM tasks WHERE job_id = ? AND idx = ?'),
      release: db.prepare(`UPDATE tasks SET state = 'queued', lease_expires = NULL
        WHERE job_id = @job AND idx = @idx AND state = 'leased' AND node_id = @node AND attempt = @attempt`),
      leasesOfNode: db.prepare(`SELECT job_id, idx, attempt, node_id FROM tasks WHERE node_id = ? AND state = 'leased'`),
      expired: db.prepare(`SELECT job_id, idx, attempt, node_id FROM tasks WHERE state = 'leased' AND lease_expires < ? LIMIT 10000`),
      bump: db.prepare(`UPDATE jobs SET queued = queued + @queued, leased = leased + @leased, succeeded = succeeded + @succeeded,
        failed = failed + @failed, cancelled = cancelled + @cancelled, fuel_used = fuel_used + @fuel, updated_at = @now WHERE id = @id`),
      settleState: db.prepare(`UPDATE jobs SET
          state = CASE WHEN state = 'cancelled' THEN 'cancelled' WHEN queued + leased = 0 THEN 'completed'
                       WHEN leased > 0 OR succeeded + failed > 0 THEN 'running' ELSE 'queued' END,
          finished_at = CASE WHEN queued + leased = 0 AND finished_at IS NULL THEN @now ELSE finished_at END
        WHERE id = @id`),
      cancelTasks: db.prepare(`UPDATE tasks SET state = 'cancelled', finished_at = @now, lease_expires = NULL
        WHERE job_id = @job AND state IN ('queued', 'leased', 'verifying')`),
      leasedOfJob: db.prepare(`SELECT idx, attempt, node_id FROM tasks WHERE job_id = ? AND state = 'leased'`),
      results: db.prepare(`SELECT ${RESULT_COLUMNS} FROM tasks
        WHERE job_id = @job AND idx > @after ORDER BY idx ${limitOf('@limit')}`),
      resultsByState: db.prepare(`SELECT ${RESULT_COLUMNS} FROM tasks
        WHERE job_id = @job AND idx > @after AND (CASE WHEN state = 'verifying' THEN 'leased' ELSE state END) = @state ORDER BY idx ${limitOf('@limit')}`),
      upsertNode: db.prepare(`INSERT INTO nodes (id, capabilities, state, session, first_seen, last_seen) VALUES (@id, @caps, 'online', @session, @now, @now)
        ON CONFLICT (id) DO UPDATE SET capabilities = @caps, state = 'online', pause_reason = NULL, session = @session, last_seen = @now`),
      nodeSession: db.prepare('SELECT session FROM nodes WHERE id = ?'),
      seen: db.prepare('UPDATE nodes SET last_seen = ? WHERE id = ?'),
      stale: db.prepare(`UPDATE nodes SET state = 'offline' WHERE state <> 'offline' AND last_seen < ?`),
      nodeState: db.prepare('UPDATE nodes SET state = @state, pause_reason = @reason, last_seen = @now WHERE id = @id AND (@session IS NULL OR session = @session)'),
      nodeStats: db.prepare('UPDATE nodes SET completed = completed + @completed, failed = failed + @failed, last_seen = @now WHERE id = @id'),
      nodes: db.prepare(`SELECT n.*, (SELECT COUNT(*) FROM tasks t WHERE t.node_id = n.id AND t.state = 'leased')
          + (SELECT COUNT(*) FROM task_replicas r WHERE r.node_id = n.id AND r.state = 'leased') AS running
        FROM nodes n ORDER BY n.last_seen DESC`),
      useNonce: db.prepare('INSERT OR IGNORE INTO nonces (node_id, nonce, expires_at) VALUES (?, ?, ?)'),
      purgeNonces: db.prepare('DELETE FROM nonces WHERE expires_at < ?'),
    };
  }

  async putModule(m: StoredModule): Promise<void> {
    this.s.insertModule.run({ ...m, bytes: Buffer.from(m.bytes), instrumented: Buffer.from(m.instrumented) });
  }

  async getModule(hash: string): Promise<StoredModule | undefined> {
    const r = this.s.getModule.get(hash, hash) as Row | undefined;
    return r ? toModule(r) : undefined;
  }

  async createJob(job: NewJob, inputs: readonly Uint8Array[], hold?: LedgerBatch, first?: FirstLeases): Promise<{ job: JobRecord; created: boolean; leased: ClaimedTask[] }> {
    const s = this.s;
    return this.tx(() => {
      if (job.idempotencyKey !== undefined) {
        const existing = s.jobByKey.get(job.caller, job.idempotencyKey) as Row | undefined;
        if (existing) {
          if (existing.request_hash !== job.requestHash) {
            throw new ImError('IM_IDEMPOTENCY_CONFLICT', undefined, { details: { jobId: existing.id } });
          }
          return { job: toJob(existing), created: false, leased: [] };
        }
      }
      const leased = firstLeased(job, inputs, first);
      const row = s.insertJob.get({
        id: job.id,
        caller: job.caller,
        idem_key: job.idempotencyKey ?? null,
        request_hash: job.requestHash,
        name: job.name ?? null,
        module: job.module,
        instrumented_module: job.instrumentedModule,
        runtime: job.runtime,
        limits: JSON.stringify(job.limits),
        bid: job.bid,
        max_attempts: job.maxAttempts,
        retry_backoff_ms: job.retryBackoffMs,
        priority: job.priority,
        requirements: JSON.stringify(job.requirements),
        state: leased.length > 0 ? 'running' : 'queued',
        total: inputs.length,
        queued: inputs.length - leased.length,
        leased: leased.length,
        created_at: job.createdAt,
        buyer: job.buyer ?? null,
        hold_msat: job.holdMsat?.toString() ?? null,
        fees: job.fees === undefined ? null : JSON.stringify(job.fees),
        label: job.label ?? null,
        data_classes: job.dataClasses === undefined ? null : JSON.stringify(job.dataClasses),
        verification: job.verification === undefined ? null : JSON.stringify(job.verification),
      });
      inputs.forEach((input, i) => {
        const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
        const t = leased[i];
        if (t) s.insertLeasedTask.run(job.id, i, bytes, t.nodeId, t.leaseExpiresAt, t.ask);
        else s.insertTask.run(job.id, i, bytes);
      });
      if (hold !== undefined) this.ledger.apply(hold, job.createdAt, true);
      return { job: toJob(row as Row), created: true, leased };
    });
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    const r = this.s.jobById.get(id) as Row | undefined;
    return r ? toJob(r) : undefined;
  }

  async listJobs(q: { state?: JobState; limit: number }): Promise<JobRecord[]> {
    const rows = q.state
      ? this.db.prepare('SELECT * FROM jobs WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT ?').all(q.state, q.limit)
      : this.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?').all(q.limit);
    return (rows as Row[]).map(toJob);
  }

  async cancelJob(id: string, now: number): Promise<{ job: JobRecord; revoked: Array<TaskRef & { nodeId: string }> } | undefined> {
    const s = this.s;
    return this.tx(() => {
      const row = s.jobById.get(id) as Row | undefined;
      if (!row) return undefined;
      if (row.state === 'completed' || row.state === 'cancelled') return { job: toJob(row), revoked: [] };
      const revoked = (s.leasedOfJob.all(id) as Row[]).map((r) => ({
        jobId: id, index: Number(r.idx), attempt: Number(r.attempt), nodeId: String(r.node_id),
      }));
      revoked.push(...this.replicas.cancelJob(id));
      const cancelled = s.cancelTasks.run({ job: id, now }).changes;
      const fixed = { ...zero(), cancelled, queued: -Number(row.queued), leased: -Number(row.leased) };
      s.bump.run({ id, now, ...fixed });
      this.db.prepare(`UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ?`).run(now, id);
      return { job: toJob(s.jobById.get(id) as Row), revoked };
    });
  }

  async runnableJobs(_now: number): Promise<RunnableJob[]> {
    return (this.s.runnable.all() as Row[]).map(toRunnable);
  }

  async claimTasks(claims: readonly Claim[], now: number, leaseMs: number): Promise<ClaimedTask[]> {
    const s = this.s;
    const expires = now + leaseMs;
    return this.tx(() => {
      const out: ClaimedTask[] = [];
      for (const c of claims) {
        if (c.count <= 0) continue;
        const job = s.jobById.get(c.jobId) as Row | undefined;
        if (!job || job.state === 'cancelled' || job.state === 'completed') continue;
        const limits = JSON.parse(String(job.limits)) as ClaimedTask['limits'];
        // Replicas first: they hold up a task already run once. They change no job counter (the task stays verifying).
        const replicas = c.replicas === undefined ? [] : this.replicas.claim(c.jobId, c.nodeId, c.replicas, c.count, c.ask ?? 0, expires,
          { instrumentedModule: String(job.instrumented_module), runtime: job.runtime as ClaimedTask['runtime'], limits });
        out.push(...replicas);
        if (replicas.length >= c.count) continue;
        const rows = s.claim.all({ node: c.nodeId, expires, job: c.jobId, now, n: c.count - replicas.length, ask: c.ask ?? 0 }) as Row[];
        if (rows.length === 0) continue;
        for (const r of rows) {
          out.push({
            jobId: c.jobId,
            index: Number(r.idx),
            attempt: Number(r.attempt),
            nodeId: c.nodeId,
            input: new Uint8Array(r.input as Buffer),
            leaseExpiresAt: expires,
            instrumentedModule: String(job.instrumented_module),
            runtime: job.runtime as ClaimedTask['runtime'],
            limits,
          });
        }
        s.bump.run({ id: c.jobId, now, ...zero(), queued: -rows.length, leased: rows.length });
        s.settleState.run({ id: c.jobId, now });
      }
      return out;
    });
  }

  async extendLeases(nodeId: string, now: number, leaseMs: number): Promise<number> {
    return this.tx(() => {
      this.s.seen.run(now, nodeId);
      return this.s.extend.run({ node: nodeId, expires: now + leaseMs }).changes + this.replicas.extend(nodeId, now + leaseMs);
    }, 'DEFERRED');
  }

  async markStaleNodes(before: number): Promise<number> {
    return this.s.stale.run(before).changes;
  }

  async completeTasks(nodeId: string, outcomes: readonly Outcome[], now: number, receipts?: ReceiptBatchRow, placement?: Placement): Promise<{ statuses: OutcomeStatus[]; verify: TaskKey[]; jobs: Set<string> }> {
    const s = this.s;
    return this.tx(() => {
      const verify: TaskKey[] = [];
      const deltas = new Map<string, Delta>();
      const jobs = new Map<string, Row | undefined>();
      let completed = 0;
      let failed = 0;
      const accrued: Accrued[] = [];
      const statuses = outcomes.map((o): OutcomeStatus => {
        const key = { job: o.jobId, idx: o.index, node: nodeId, attempt: o.attempt };
        if (o.ok && !heldForVerification(o)) {
          // The common case needs nothing of the job row: the lease names the task.
          const output = o.output ?? new Uint8Array();
          const done = s.succeed.get({ ...key, output: Buffer.from(output.buffer, output.byteOffset, output.byteLength), fuel: o.fuel, now, receipt: receiptRef(receipts, o) }) as Row | undefined;
          if (done) {
            sameInput(o, done.input as Uint8Array);
            if (o.charges) for (const c of o.charges) { if (c.ask > 0 && c.fuel > 0) accrued.push({ jobId: o.jobId, ...c }); }
            else if (Number(done.ask) > 0 && o.fuel > 0) accrued.push({ jobId: o.jobId, nodeId, ask: Number(done.ask), fuel: o.fuel });
            const d = deltaOf(deltas, o.jobId);
            d.leased--;
            d.succeeded++;
            d.fuel += o.fuel;
            completed++;
            return 'accepted';
          }
        }
        let job = jobs.get(o.jobId);
        if (!jobs.has(o.jobId)) jobs.set(o.jobId, (job = s.jobById.get(o.jobId) as Row | undefined));
        if (!job) return 'rejected';
        const d = deltaOf(deltas, o.jobId);
        if (heldForVerification(o)) {
          // Held: the task stays counted as leased and nothing is charged until the verifier decides.
          if (this.replicas.hold(nodeId, o, now, receiptRef(receipts, o), placement) !== undefined) {
            verify.push({ jobId: o.jobId, index: o.index });
            if (o.ok) completed++;
            else failed++;
            return 'accepted';
          }
        } else if (!o.ok) {
          const code = o.error?.code ?? 'IM_AGENT_ERROR';
          const r = s.fail.get({
            ...key,
            retryable: isRetryableTaskError(code) ? 1 : 0,
            maxAttempts: Number(job.max_attempts),
            backoff: Number(job.retry_backoff_ms),
            fuel: o.fuel,
            error: JSON.stringify(o.error ?? { code, message: 'no error given', retryable: true }),
            now,
            receipt: receiptRef(receipts, o),
          }) as Row | undefined;
          if (r) {
            sameInput(o, r.input as Uint8Array);
            // A task's own fault (trap, fuel, output) used the agent's effort: the buyer pays for it. Infrastructure failures are free.
            if (Number(r.ask) > 0 && o.fuel > 0 && !isRetryableTaskError(code)) accrued.push({ jobId: o.jobId, nodeId, ask: Number(r.ask), fuel: o.fuel });
            d.leased--;
            if (r.state === 'queued') d.queued++;
            else d.failed++;
            failed++;
            return 'accepted';
          }
        }
        // A result for a replica lease: kept with its execution, judged when the verifier decides.
        const replica = this.replicas.result(nodeId, o, now, receiptRef(receipts, o), Number(job.max_attempts), !o.ok && isRetryableTaskError(o.error?.code ?? 'IM_AGENT_ERROR'));
        if (replica !== undefined) {
          if (replica !== 'queued') verify.push({ jobId: o.jobId, index: o.index });
          if (o.ok) completed++;
          else failed++;
          return 'accepted';
        }
        const cur = s.taskState.get(o.jobId, o.index) as Row | undefined;
        if (cur && (cur.state === 'succeeded' || cur.state === 'failed' || cur.state === 'verifying') && Number(cur.attempt) === o.attempt && cur.node_id === nodeId) return 'duplicate';
        if (this.replicas.reported(nodeId, o)) return 'duplicate';
        return 'rejected';
      });
      this.applyDeltas(deltas, now);
      if (accrued.length > 0) this.ledger.accrue(accrued, now);
      if (completed + failed > 0) s.nodeStats.run({ id: nodeId, completed, failed, now });
      if (receipts && completed + failed > 0) s.putReceiptBatch.run(receipts.id, receipts.doc, now);
      return { statuses, verify, jobs: new Set(deltas.keys()) };
    });
  }

  async getReceipt(jobId: string, index: number): Promise<string | undefined> {
    const r = this.s.receipt.get(jobId, index) as Row | undefined;
    return r?.receipt == null ? undefined : this.receiptOf(String(r.receipt));
  }

  /** A receipt column (a reference into a stored batch, or a whole document) as its document. */
  private receiptOf(column: string): string | undefined {
    const at = parseReceiptColumn(column);
    if ('doc' in at) return at.doc;
    const b = this.s.receiptBatch.get(at.batch) as Row | undefined;
    return b ? receiptFromBatch(String(b.doc), at.index) : undefined;
  }

  // ---- verification ----------------------------------------------------------------

  async taskExecutions(jobId: string, index: number): Promise<ExecutionRow[]> {
    return this.replicas.executions(jobId, index);
  }

  async addReplicas(jobId: string, index: number, total: number): Promise<number> {
    return this.tx(() => this.replicas.add(jobId, index, total));
  }

  async decideTask(d: TaskDecision, now: number): Promise<{ decided: boolean; revoked: Array<TaskRef & { nodeId: string }>; jobs: Set<string> }> {
    return this.tx(() => {
      const r = this.replicas.decide(d, now);
      if (!r) return { decided: false, revoked: [], jobs: new Set<string>() };
      this.s.bump.run({ id: d.jobId, now, ...zero(), leased: -1, succeeded: d.ok ? 1 : 0, failed: d.ok ? 0 : 1, fuel: d.fuel });
      this.s.settleState.run({ id: d.jobId, now });
      if (r.accrued.length > 0) this.ledger.accrue(r.accrued, now);
      return { decided: true, revoked: r.revoked, jobs: new Set([d.jobId]) };
    });
  }

  async undecidedTasks(limit: number): Promise<TaskKey[]> {
    return this.replicas.undecided(limit);
  }

  async nodeTrust(nodeIds: readonly string[]): Promise<Map<string, number>> {
    return this.replicas.trust(nodeIds);
  }

  async nodeResults(nodeId: string, since: number, limit: number): Promise<Array<TaskRef & { finishedAt: number }>> {
    // A job's row is touched by every result, so jobs untouched since then are skipped whole.
    const rows = this.db.prepare(`SELECT t.job_id, t.idx, t.attempt, t.finished_at FROM jobs j JOIN tasks t ON t.job_id = j.id
      WHERE j.updated_at >= @since AND t.node_id = @node AND t.state = 'succeeded' AND t.finished_at >= @since ORDER BY t.finished_at LIMIT @limit`).all({ node: nodeId, since, limit }) as Row[];
    return rows.map((r) => ({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt), finishedAt: Number(r.finished_at) }));
  }

  async meterAdd(rows: readonly MeterRow[]): Promise<void> {
    const st = this.db.prepare(`INSERT INTO issuance_meter (node_id, hour, avail_ms, slot_ms, busy_ms, accepted, failed, paid_msat, cap)
      VALUES (@nodeId, @hour, @availMs, @slotMs, @busyMs, @accepted, @failed, @paidMsat, @cap)
      ON CONFLICT (node_id, hour) DO UPDATE SET avail_ms = avail_ms + excluded.avail_ms, slot_ms = slot_ms + excluded.slot_ms,
        busy_ms = busy_ms + excluded.busy_ms, accepted = accepted + excluded.accepted, failed = failed + excluded.failed,
        paid_msat = paid_msat + excluded.paid_msat, cap = MAX(cap, excluded.cap)`);
    this.tx(() => {
      for (const r of rows) st.run(r);
    }, 'DEFERRED');
  }

  async meterHours(from: number, to: number): Promise<MeterRow[]> {
    return (this.db.prepare('SELECT * FROM issuance_meter WHERE hour >= ? AND hour <= ? ORDER BY hour, node_id').all(from, to) as Row[]).map(toMeterRow);
  }

  async taskInput(jobId: string, index: number): Promise<Uint8Array | undefined> {
    const r = this.s.taskInput.get(jobId, index) as Row | undefined;
    return r ? new Uint8Array(r.input as Buffer) : undefined;
  }

  async correctResult(jobId: string, index: number, nodeId: string, attempt: number, output: Uint8Array, fuel: number, now: number): Promise<boolean> {
    return this.tx(() => {
      const old = this.db.prepare('SELECT fuel FROM tasks WHERE job_id = ? AND idx = ?').get(jobId, index) as Row | undefined;
      if (!old) return false;
      const changed = this.db.prepare(`UPDATE tasks SET output = ?, fuel = ?
        WHERE job_id = ? AND idx = ? AND state = 'succeeded' AND node_id = ? AND attempt = ?`)
        .run(Buffer.from(output.buffer, output.byteOffset, output.byteLength), fuel, jobId, index, nodeId, attempt).changes;
      if (changed !== 1) return false;
      this.s.bump.run({ id: jobId, now, ...zero(), fuel: fuel - Number(old.fuel ?? 0) });
      return true;
    });
  }

  async nodeLeases(nodeId: string): Promise<TaskRef[]> {
    return [
      ...(this.s.leasesOfNode.all(nodeId) as Row[]).map((r) => ({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt) })),
      ...this.replicas.leasesOf(nodeId),
    ];
  }

  async releaseTasks(nodeId: string, tasks: readonly TaskRef[], now: number): Promise<{ released: number; jobs: Set<string> }> {
    const s = this.s;
    return this.tx(() => {
      const deltas = new Map<string, Delta>();
      let released = 0;
      for (const t of tasks) {
        if (s.release.run({ job: t.jobId, idx: t.index, node: nodeId, attempt: t.attempt }).changes === 1) {
          const d = deltaOf(deltas, t.jobId);
          d.leased--;
          d.queued++;
          released++;
        } else if (this.replicas.release(nodeId, t)) {
          deltaOf(deltas, t.jobId);
          released++;
        }
      }
      this.applyDeltas(deltas, now);
      return { released, jobs: new Set(deltas.keys()) };
    });
  }

  async failNodeLeases(nodeId: string, now: number, error: WireError, session?: string): Promise<ExpiryReport> {
    // One synchronous call: no other writer can slip in between the check and the update.
    if (session !== undefined && (this.s.nodeSession.get(nodeId) as Row | undefined)?.session !== session) {
      return { requeued: 0, failed: 0, jobs: new Set() };
    }
    return this.failReplicas(this.failLeases(this.s.leasesOfNode.all(nodeId) as Row[], now, error), now, nodeId);
  }

  async expireLeases(now: number, error: WireError): Promise<ExpiryReport> {
    return this.failReplicas(this.failLeases(this.s.expired.all(now) as Row[], now, error), now, null);
  }

  /** Replica leases fail alike: queued again, or lost once out of attempts (the verifier's sweep then decides without them). */
  private failReplicas(report: ExpiryReport, now: number, nodeId: string | null): ExpiryReport {
    return this.tx(() => {
      const r = this.replicas.fail(now, nodeId);
      for (const [id, n] of r.nodes) this.s.nodeStats.run({ id, completed: 0, failed: n, now });
      return { requeued: report.requeued + r.requeued, failed: report.failed, jobs: new Set([...report.jobs, ...r.jobs]) };
    });
  }

  private failLeases(rows: Row[], now: number, error: WireError): ExpiryReport {
    if (rows.length === 0) return { requeued: 0, failed: 0, jobs: new Set() };
    const byNode = new Map<string, Outcome[]>();
    for (const r of rows) {
      const list = byNode.get(String(r.node_id)) ?? [];
      list.push({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt), ok: false, fuel: 0, error });
      byNode.set(String(r.node_id), list);
    }
    return this.tx(() => {
      let requeued = 0;
      let failed = 0;
      const jobs = new Set<string>();
      for (const [nodeId, outcomes] of byNode) {
        for (const o of outcomes) {
          const job = this.s.jobById.get(o.jobId) as Row;
          const r = this.s.fail.get({
            job: o.jobId, idx: o.index, node: nodeId, attempt: o.attempt, retryable: 1,
            maxAttempts: Number(job.max_attempts), backoff: Number(job.retry_backoff_ms), fuel: 0, error: JSON.stringify(error), now, receipt: null,
          }) as Row | undefined;
          if (!r) continue;
          const d = zero();
          d.leased = -1;
          if (r.state === 'queued') { d.queued = 1; requeued++; } else { d.failed = 1; failed++; }
          this.s.bump.run({ id: o.jobId, now, ...d });
          jobs.add(o.jobId);
        }
        this.s.nodeStats.run({ id: nodeId, completed: 0, failed: outcomes.length, now });
      }
      for (const id of jobs) this.s.settleState.run({ id, now });
      return { requeued, failed, jobs };
    });
  }

  private applyDeltas(deltas: Map<string, Delta>, now: number): void {
    for (const [id, d] of deltas) {
      this.s.bump.run({ id, now, ...d });
      this.s.settleState.run({ id, now });
    }
  }

  async getResults(jobId: string, q: { after: number; limit: number; state?: TaskState }): Promise<TaskRow[]> {
    const rows = (q.state
      ? this.s.resultsByState.all({ job: jobId, after: q.after, limit: q.limit, state: q.state })
      : this.s.results.all({ job: jobId, after: q.after, limit: q.limit })) as Row[];
    return rows.map(toTaskRow);
  }

  async upsertNode(id: string, capabilities: Capabilities, now: number, session?: string): Promise<void> {
    this.s.upsertNode.run({ id, caps: JSON.stringify(capabilities), now, session: session ?? null });
  }

  async setNodeState(id: string, state: NodeRecord['state'], reason: string | undefined, now: number, session?: string): Promise<void> {
    this.s.nodeState.run({ id, state, reason: reason ?? null, now, session: session ?? null });
  }

  async listNodes(): Promise<NodeRecord[]> {
    return (this.s.nodes.all() as Row[]).map(toNode);
  }

  async useNonce(nodeId: string, nonce: string, expiresAt: number): Promise<boolean> {
    return this.s.useNonce.run(nodeId, nonce, expiresAt).changes === 1;
  }

  async purgeNonces(now: number): Promise<number> {
    return this.s.purgeNonces.run(now).changes;
  }

  // ---- money ---------------------------------------------------------------------

  async ledgerApply(batch: LedgerBatch, now: number, opts: { atomic?: boolean } = {}): Promise<BatchOutcome> {
    return this.tx(() => this.ledger.apply(batch, now, opts.atomic ?? false));
  }

  async ledgerExpire(now: number): Promise<number> {
    return this.tx(() => this.ledger.expire(now));
  }

  async ledgerBalances(q: { ids?: readonly string[]; prefix?: string; limit: number }): Promise<AccountBalance[]> {
    return this.ledger.balances(q);
  }

  async ledgerTransfers(q: { account?: string; ref?: string; afterSeq?: number; limit: number; newestFirst?: boolean }): Promise<Transfer[]> {
    return this.ledger.transfers(q);
  }

  async ledgerDump(): Promise<LedgerDump> {
    // One read transaction: a consistent picture of log, balances and head.
    return this.tx(() => this.ledger.dump(), 'DEFERRED');
  }

  async ledgerOpenPendings(q: { codes: readonly string[]; limit: number }): Promise<Transfer[]> {
    const rows = this.db.prepare(`SELECT * FROM ledger_transfers p WHERE p.type = 'pending' AND p.code IN (${q.codes.map(() => '?').join(', ') || 'NULL'})
      AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id) ORDER BY p.seq LIMIT ?`).safeIntegers(true).all(...q.codes, q.limit) as Row[];
    return rows.map(toTransfer);
  }

  async jobCharges(jobId: string): Promise<ChargeRow[]> {
    return this.ledger.charges(jobId);
  }

  async unsettledJobs(limit: number): Promise<string[]> {
    return (this.db.prepare(`SELECT id FROM jobs WHERE settled_at IS NULL AND finished_at IS NOT NULL ORDER BY finished_at LIMIT ?`)
      .all(limit) as Row[]).map((r) => String(r.id));
  }

  async settleJob(jobId: string, plan: SettlementPlan, now: number): Promise<{ settled: boolean; outcome?: BatchOutcome }> {
    return this.tx(() => {
      const row = this.s.jobById.get(jobId) as Row | undefined;
      if (!row || row.finished_at === null || row.settled_at !== null) return { settled: false };
      const batch = plan({ job: toJob(row), charges: this.ledger.charges(jobId) });
      const outcome = batch.events.length > 0 || (batch.accounts?.length ?? 0) > 0 ? this.ledger.apply(batch, now, true) : undefined;
      this.s.markSettled.run(now, jobId);
      return outcome === undefined ? { settled: true } : { settled: true, outcome };
    });
  }

  async market(since: number): Promise<MarketRow[]> {
    return this.ledger.market(since);
  }

  async modelDemand(since: number): Promise<ModelDemandRow[]> {
    const rows = this.db.prepare(`SELECT module, COUNT(*) AS requests, SUM(fuel_used) AS fuel, SUM(queued + leased) AS waiting
      FROM jobs WHERE id >= ? AND runtime = 'llm' AND created_at >= ? GROUP BY module ORDER BY module`).all(jobIdFloor(since), since) as Row[];
    return rows.map(toModelDemand);
  }

  async records(kind: string, q: { ids?: readonly string[]; states?: readonly string[]; limit: number }): Promise<StoredRecord[]> {
    const where = ['kind = ?'];
    const args: unknown[] = [kind];
    if (q.ids !== undefined) { where.push(`id IN (${q.ids.map(() => '?').join(', ') || 'NULL'})`); args.push(...q.ids); }
    if (q.states !== undefined) { where.push(`state IN (${q.states.map(() => '?').join(', ') || 'NULL'})`); args.push(...q.states); }
    const rows = this.db.prepare(`SELECT * FROM records WHERE ${where.join(' AND ')} ORDER BY updated_at, id LIMIT ?`).all(...args, q.limit) as Row[];
    return rows.map(toStoredRecord);
  }

  async commitRecords(change: RecordChange, now: number): Promise<BatchOutcome | undefined> {
    return this.tx(() => {
      for (const e of change.expect ?? []) {
        const r = this.db.prepare('SELECT state FROM records WHERE kind = ? AND id = ?').get(e.kind, e.id) as Row | undefined;
        const state = r ? String(r.state) : 'absent';
        if (!e.states.includes(state)) throw new ImError('IM_CONFLICT', `${e.kind} ${e.id} is ${state}, not ${e.states.join(' or ')}`, { details: { kind: e.kind, id: e.id, state } });
      }
      const upsert = this.db.prepare(`INSERT INTO records (kind, id, state, doc, updated_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (kind, id) DO UPDATE SET state = excluded.state, doc = excluded.doc, updated_at = excluded.updated_at`);
      for (const r of change.records ?? []) upsert.run(r.kind, r.id, r.state, encodeDoc(r.doc), now);
      const used = this.db.prepare('UPDATE deposit_addresses SET used_at = ? WHERE address = ? AND used_at IS NULL');
      for (const a of change.usedAddresses ?? []) used.run(now, a);
      return change.batch === undefined ? undefined : this.ledger.apply(change.batch, now, true);
    });
  }

  async issueDepositAddress(account: string, derive: (index: number) => string, gap: number, now: number): Promise<DepositAddress & { reused: boolean }> {
    return this.tx(() => {
      const r = this.db.prepare('SELECT COALESCE(MAX(idx), -1) AS last, (SELECT COALESCE(MAX(idx), -1) FROM deposit_addresses WHERE used_at IS NOT NULL) AS used FROM deposit_addresses').get() as Row;
      const next = Number(r.last) + 1;
      if (next - (Number(r.used) + 1) >= gap) {
        const mine = this.db.prepare('SELECT * FROM deposit_addresses WHERE account = ? AND used_at IS NULL ORDER BY idx DESC LIMIT 1').get(account) as Row | undefined;
        if (mine) return { ...toDepositAddress(mine), reused: true };
        throw new ImError('IM_RATE_LIMITED', `${gap} deposit addresses in a row are unused (the gap limit wallets scan); pay into one of them first`, { retryAfterMs: 60_000 });
      }
      const address = derive(next);
      this.db.prepare('INSERT INTO deposit_addresses (idx, address, account, created_at) VALUES (?, ?, ?, ?)').run(next, address, account, now);
      return { index: next, address, account, createdAt: now, reused: false };
    });
  }

  async auditAppend(entries: ReadonlyArray<Omit<AuditEntry, 'seq'>>): Promise<{ size: number; root: Uint8Array }> {
    return this.tx(() => {
      const a = appendRows(this.db.prepare('SELECT size, frontier FROM audit_head WHERE id = 1').get() as Row, entries);
      const ins = this.db.prepare('INSERT INTO audit_entries (seq, entry, leaf_hash) VALUES (?, ?, ?)');
      for (const r of a.rows) ins.run(...r);
      this.db.prepare('UPDATE audit_head SET size = ?, frontier = ? WHERE id = 1').run(a.size, a.frontier);
      return { size: a.size, root: a.root };
    });
  }

  async auditHead(): Promise<{ size: number; root: Uint8Array }> {
    const log = restoreLog(this.db.prepare('SELECT size, frontier FROM audit_head WHERE id = 1').get() as Row);
    return { size: log.size, root: log.root() };
  }

  async auditEntries(from: number, limit: number): Promise<AuditEntry[]> {
    return (this.db.prepare('SELECT entry FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?').all(from, limit) as Row[]).map(toAuditEntry);
  }

  async auditLeafHashes(from: number, to: number): Promise<Uint8Array[]> {
    return (this.db.prepare('SELECT leaf_hash FROM audit_entries WHERE seq >= ? AND seq < ? ORDER BY seq').all(from, to) as Row[]).map(toLeaf);
  }

  async auditPutCheckpoint(size: number, note: string, now: number): Promise<void> {
    this.db.prepare('INSERT OR IGNORE INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)').run(size, note, now);
  }

  async auditReplaceCheckpoint(size: number, note: string): Promise<void> {
    this.db.prepare('UPDATE audit_checkpoints SET note = ? WHERE size = ?').run(note, size);
  }

  async auditCheckpoint(size?: number): Promise<{ size: number; note: string; createdAt: number } | undefined> {
    const r = (size === undefined
      ? this.db.prepare('SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1').get()
      : this.db.prepare('SELECT * FROM audit_checkpoints WHERE size = ?').get(size)) as Row | undefined;
    return r ? { size: Number(r.size), note: String(r.note), createdAt: Number(r.created_at) } : undefined;
  }

  async depositAddresses(): Promise<DepositAddress[]> {
    return (this.db.prepare('SELECT * FROM deposit_addresses ORDER BY idx').all() as Row[]).map(toDepositAddress);
  }

  // One coordinator per SQLite file: there is nobody to tell, and it always leads.
  async publish(_event: StoreEvent): Promise<void> {}

  async subscribe(_handler: (event: StoreEvent) => void): Promise<() => Promise<void>> {
    return async () => {};
  }

  async holdsLock(_name: string): Promise<boolean> {
    return true;
  }
}

export function toStoredRecord(r: Row): StoredRecord {
  return { kind: String(r.kind), id: String(r.id), state: String(r.state), doc: decodeDoc(String(r.doc)), updatedAt: Number(r.updated_at) };
}

export function toDepositAddress(r: Row): DepositAddress {
  return { index: Number(r.idx), address: String(r.address), account: String(r.account), createdAt: Number(r.created_at) };
}

/** A first result the verifier holds: it asked for replicas, and the outcome is a result (not an infrastructure failure to retry). */
export function heldForVerification(o: Outcome): boolean {
  return (o.replicas ?? 0) > 0 && (o.ok || !isRetryableTaskError(o.error?.code ?? 'IM_AGENT_ERROR'));
}

function zero(): Delta {
  return { queued: 0, leased: 0, succeeded: 0, failed: 0, cancelled: 0, fuel: 0 };
}

function deltaOf(map: Map<string, Delta>, id: string): Delta {
  let d = map.get(id);
  if (!d) map.set(id, (d = zero()));
  return d;
}

