import pg from 'pg';
import type { ClientConfig, PoolClient } from 'pg';
import type { Capabilities, JobState, TaskState, WireError } from '@idlemesh/protocol';
import { ImError } from '@idlemesh/protocol';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { SQL } from './postgres-sql.js';
import { pgAccrue, pgBalances, pgCharges, pgDump, pgLedgerApply, pgLedgerExpire, pgMarket, pgTransfers } from './postgres-ledger.js';
import type { Accrued } from './sqlite-ledger.js';
import type { AccountBalance, Transfer } from '../ledger/index.js';
import type { BatchOutcome, LedgerBatch } from '../ledger/persist.js';
import { AdvisoryLocks } from './postgres-lock.js';
import { Listener, encodeEvent } from './postgres-notify.js';
import { bytes, firstLeased, jobIdFloor, toJob, toMeterRow, toModelDemand, toModule, toNode, toRunnable, toTaskRow } from './rows.js';
import type { Row } from './rows.js';
import { parseReceiptColumn, receiptFromBatch, receiptRef } from './receipt-rows.js';
import { heldForVerification, isRetryableTaskError } from './sqlite.js';
import {
  REPLICA_SQL, pgAddReplicas, pgCancelReplicas, pgClaimReplicas, pgDecide, pgExecutions, pgHold, pgReleaseReplicas, pgReplicaResults, pgReported,
  pgTrust, pgUndecided,
} from './replicas-postgres.js';
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
import { encodeDoc, toTransfer } from './ledger-rows.js';
import { appendRows, restoreLog, toAuditEntry, toLeaf } from './audit-rows.js';
import type { AuditEntry } from '@idlemesh/protocol';
import { toDepositAddress, toStoredRecord } from './sqlite.js';

export interface PostgresStoreOptions {
  /** Where the tables live; default `idlemesh`, or `?schema=` in the URL. */
  schema?: string;
  /** Connections in the pool (plus one for LISTEN and one for leader locks). Default 10. */
  poolSize?: number;
}

interface Delta {
  queued: number;
  leased: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  fuel: number;
}

/** What a claim needs of its job; none of it changes after the job is created. */
interface JobInfo {
  instrumentedModule: string;
  runtime: ClaimedTask['runtime'];
  limits: ClaimedTask['limits'];
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,53}$/;
/** Deadlock and serialization failure: PostgreSQL rolled the transaction back, so running it again is safe. */
const RETRY_SQLSTATES = new Set(['40P01', '40001']);
const TX_ATTEMPTS = 5;
const INSERT_CHUNK_ROWS = 5000;
const INSERT_CHUNK_BYTES = 16 << 20;
const JOB_INFO_CACHE = 10_000;
/** Claims walk tasks_queued in order (see SQL.claim); without statistics the planner would rather sort every queued row. */
const CLAIM_BEGIN = 'BEGIN; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off';

/**
 * Splits `?schema=` off a postgres:// URL (pg would pass it to the server as a
 * setting), and `?options=` too: pg lets the URL's options replace the
 * config's, which would drop the store's search_path.
 */
export function parsePostgresUrl(url: string, schema?: string): { connectionString: string; schema: string; options: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImError('IM_CONFIG_INVALID', 'the PostgreSQL store URL is not a URL: use postgres://user@host:5432/db?schema=idlemesh');
  }
  const fromUrl = u.searchParams.get('schema');
  const options = u.searchParams.get('options') ?? '';
  u.searchParams.delete('schema');
  u.searchParams.delete('options');
  const name = schema ?? fromUrl ?? 'idlemesh';
  if (!SCHEMA_NAME.test(name)) {
    throw new ImError('IM_CONFIG_INVALID', `PostgreSQL schema "${name}": use lower-case letters, digits and _ (at most 54), not starting with a digit`);
  }
  return { connectionString: u.toString(), schema: name, options: `${options} -c search_path=${name}`.trim() };
}

/**
 * The shared store: one PostgreSQL schema that several coordinators use at
 * once. Every method is one statement or one READ COMMITTED transaction.
 * Rows are locked tasks first, then jobs (in id order), then nodes (in id
 * order), so transactions wait on each other but do not deadlock; if
 * PostgreSQL still reports one, the transaction is run again. Claims and
 * lease sweeps take tasks with FOR UPDATE SKIP LOCKED, so coordinators
 * claiming from one job hand out disjoint tasks without waiting for each
 * other. A job's counters change in its row, in the transaction that changes
 * its tasks.
 *
 * publish/subscribe use LISTEN/NOTIFY on the channel `idlemesh_<schema>`; a
 * store hears its own events as well as the others'. holdsLock uses session
 * advisory locks (see postgres-lock.ts).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly shared = true;
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly channel: string;
  private readonly listener: Listener;
  private readonly locks: AdvisoryLocks;
  private readonly jobInfo = new Map<string, JobInfo>();
  private syncCommit = 'unknown';
  private closed = false;

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    const { connectionString, schema, options } = parsePostgresUrl(url, opts.schema);
    this.schema = schema;
    this.channel = `idlemesh_${schema}`;
    const base: ClientConfig = { connectionString, options, keepAlive: true, connectionTimeoutMillis: 10_000 };
    this.pool = new pg.Pool({ ...base, max: opts.poolSize ?? 10 });
    // An idle pooled connection that breaks is discarded by the pool; without a listener the error would crash the process.
    this.pool.on('error', () => undefined);
    this.listener = new Listener(base, this.channel);
    this.locks = new AdvisoryLocks({ ...base, query_timeout: 5000 }, schema);
  }

  get durability(): string {
    return `postgres synchronous_commit=${this.syncCommit}`;
  }

  /**
   * Creates the schema and applies the migrations it lacks. Each step is one
   * transaction that first takes this schema's transaction advisory lock and
   * then looks at schema_migrations, so coordinators starting together apply
   * each migration once and the others wait for it.
   */
  async migrate(): Promise<void> {
    const c = await this.pool.connect();
    let broken = false;
    try {
      const locked = async (fn: () => Promise<void>): Promise<void> => {
        await c.query('BEGIN');
        try {
          await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`idlemesh migrate ${this.schema}`]);
          await fn();
          await c.query('COMMIT');
        } catch (e) {
          await c.query('ROLLBACK').catch(() => (broken = true));
          throw e;
        }
      };
      let done = new Set<number>();
      await locked(async () => {
        // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
        const exists = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema]);
        if (exists.rowCount === 0) await c.query(`CREATE SCHEMA ${this.schema}`);
        await c.query(`SET LOCAL search_path TO ${this.schema}`);
        await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
        const r = await c.query<{ version: number }>('SELECT version FROM schema_migrations');
        done = new Set(r.rows.map((x) => Number(x.version)));
      });
      for (const [i, sql] of POSTGRES_MIGRATIONS.entries()) {
        const version = i + 1;
        if (done.has(version)) continue;
        await locked(async () => {
          await c.query(`SET LOCAL search_path TO ${this.schema}`);
          const again = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [version]);
          if (again.rowCount !== 0) return;
          await c.query(sql);
          await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Date.now()]);
        });
      }
      const s = await c.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      this.syncCommit = s.rows[0]?.synchronous_commit ?? 'unknown';
    } finally {
      c.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.listener.close(), this.locks.close()]);
    await this.pool.end();
  }

  /** Drops the schema and everything in it. For tests. */
  async dropSchema(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.pool.query('SELECT 1 AS ok')).rowCount === 1;
    } catch {
      return false;
    }
  }

  /** Runs `fn` in one transaction on one pooled connection; again (from scratch) after a deadlock. */
  private async tx<T>(fn: (c: PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      let broken = false;
      try {
        await c.query(begin);
        const result = await fn(c);
        await c.query('COMMIT');
        return result;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => (broken = true));
        if (attempt < TX_ATTEMPTS && RETRY_SQLSTATES.has((e as { code?: string }).code ?? '')) continue;
        throw e;
      } finally {
        c.release(broken);
      }
    }
  }

  private async rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query<Row>(sql, params)).rows;
  }

  async putModule(m: StoredModule): Promise<void> {
    await this.pool.query(
      `INSERT INTO modules (hash, instrumented_hash, abi, size, instrumented_size, initial_pages, max_pages, bytes, instrumented, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
      [m.hash, m.instrumentedHash, m.abi, m.size, m.instrumentedSize, m.initialPages, m.maxPages, m.bytes, m.instrumented, m.createdAt],
    );
  }

  async getModule(hash: string): Promise<StoredModule | undefined> {
    const [r] = await this.rows('SELECT * FROM modules WHERE hash = $1 OR instrumented_hash = $1 LIMIT 1', [hash]);
    return r ? toModule(r) : undefined;
  }

  async createJob(job: NewJob, inputs: readonly Uint8Array[], hold?: LedgerBatch, first?: FirstLeases): Promise<{ job: JobRecord; created: boolean; leased: ClaimedTask[] }> {
    const leased = firstLeased(job, inputs, first);
    return this.tx(async (c) => {
      // A concurrent insert under the same key makes this one wait for it, then do nothing.
      const ins = await c.query<Row>(
        `INSERT INTO jobs (id, caller, idem_key, request_hash, name, module, instrumented_module, runtime, limits, bid, max_attempts,
           retry_backoff_ms, priority, requirements, state, total, queued, leased, created_at, updated_at, buyer, hold_msat, fees, label, data_classes, verification)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $23, $15, $15 - $24::int, $24, $16, $16, $17, $18, $19, $20, $21, $22)
         ON CONFLICT (caller, idem_key) WHERE idem_key IS NOT NULL DO NOTHING
         RETURNING *`,
        [job.id, job.caller, job.idempotencyKey ?? null, job.requestHash, job.name ?? null, job.module, job.instrumentedModule, job.runtime,
          JSON.stringify(job.limits), job.bid, job.maxAttempts, job.retryBackoffMs, job.priority, JSON.stringify(job.requirements),
          inputs.length, job.createdAt, job.buyer ?? null, job.holdMsat?.toString() ?? null, job.fees === undefined ? null : JSON.stringify(job.fees),
          job.label ?? null, job.dataClasses === undefined ? null : JSON.stringify(job.dataClasses),
          job.verification === undefined ? null : JSON.stringify(job.verification), leased.length > 0 ? 'running' : 'queued', leased.length],
      );
      const row = ins.rows[0];
      if (!row) {
        const [existing] = (await c.query<Row>('SELECT * FROM jobs WHERE caller = $1 AND idem_key = $2', [job.caller, job.idempotencyKey])).rows;
        if (!existing) throw new Error(`job insert for ${job.id} neither inserted nor found a job under its key`);
        if (existing.request_hash !== job.requestHash) {
          throw new ImError('IM_IDEMPOTENCY_CONFLICT', undefined, { details: { jobId: existing.id } });
        }
        return { job: toJob(existing), created: false, leased: [] };
      }
      // The first tasks go in leased, in one statement; the rest queued, in chunks.
      if (leased.length > 0) {
        await c.query(
          `INSERT INTO tasks (job_id, idx, state, input, attempt, node_id, lease_expires, ask)
           SELECT $1, u.i - 1, 'leased', u.input, 1, u.node, $2, u.ask FROM unnest($3::bytea[], $4::text[], $5::bigint[]) WITH ORDINALITY AS u(input, node, ask, i)`,
          [job.id, first?.expiresAt, leased.map((t) => t.input), leased.map((t) => t.nodeId), leased.map((t) => t.ask)],
        );
      }
      for (let start = leased.length; start < inputs.length;) {
        let end = start;
        let size = 0;
        while (end < inputs.length && end - start < INSERT_CHUNK_ROWS && (size < INSERT_CHUNK_BYTES || end === start)) size += inputs[end++]?.byteLength ?? 0;
        await c.query(
          `INSERT INTO tasks (job_id, idx, state, input)
           SELECT $1, $2 + u.i - 1, 'queued', u.input FROM unnest($3::bytea[]) WITH ORDINALITY AS u(input, i)`,
          [job.id, start, inputs.slice(start, end)],
        );
        start = end;
      }
      if (hold !== undefined) await pgLedgerApply(c, hold, job.createdAt, true);
      return { job: toJob(row), created: true, leased };
    });
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    const [r] = await this.rows('SELECT * FROM jobs WHERE id = $1', [id]);
    return r ? toJob(r) : undefined;
  }

  async listJobs(q: { state?: JobState; limit: number }): Promise<JobRecord[]> {
    const rows = await this.rows(
      'SELECT * FROM jobs WHERE ($1::text IS NULL OR state = $1) ORDER BY created_at DESC, id DESC LIMIT $2',
      [q.state ?? null, q.limit],
    );
    return rows.map(toJob);
  }

  async cancelJob(id: string, now: number): Promise<{ job: JobRecord; revoked: Array<TaskRef & { nodeId: string }> } | undefined> {
    return this.tx(async (c) => {
      const [row] = (await c.query<Row>('SELECT * FROM jobs WHERE id = $1', [id])).rows;
      if (!row) return undefined;
      if (row.state === 'completed' || row.state === 'cancelled') return { job: toJob(row), revoked: [] };
      // Tasks first (the lock order of every other transaction), then the job row.
      const tasks = (await c.query<Row>(SQL.cancelTasks, [id, now])).rows;
      const revoked: Array<TaskRef & { nodeId: string }> = [];
      let queued = 0;
      let verifying = 0;
      for (const t of tasks) {
        if (t.was === 'queued') queued++;
        else if (t.was === 'verifying') verifying++;
        else revoked.push({ jobId: id, index: Number(t.idx), attempt: Number(t.attempt), nodeId: String(t.node_id) });
      }
      const leased = revoked.length + verifying;
      revoked.push(...await pgCancelReplicas(c, id));
      revoked.sort((a, b) => a.index - b.index);
      const [job] = (await c.query<Row>(SQL.cancelJob, [id, queued, leased, tasks.length, now])).rows;
      if (!job) throw new Error(`job ${id} vanished while being cancelled`);
      return { job: toJob(job), revoked };
    });
  }

  async runnableJobs(_now: number): Promise<RunnableJob[]> {
    // Queued replicas (verification) are queued work too.
    const rows = await this.rows(`SELECT j.id, j.runtime, j.queued + COALESCE(r.n, 0) AS queued, j.leased, j.priority, j.bid, j.caller, j.label, j.data_classes,
        j.created_at, j.limits, j.requirements
      FROM jobs j LEFT JOIN (SELECT job_id, COUNT(*) AS n FROM task_replicas WHERE state = 'queued' GROUP BY job_id) r ON r.job_id = j.id
      WHERE j.state IN ('queued', 'running') AND (j.queued > 0 OR r.n > 0) ORDER BY j.created_at, j.id`);
    return rows.map(toRunnable);
  }

  /**
   * All claims in one transaction. A cancelled or completed job has no queued
   * tasks, so its claims find nothing without a look at the job's state.
   */
  async claimTasks(claims: readonly Claim[], now: number, leaseMs: number): Promise<ClaimedTask[]> {
    const wanted = claims.filter((c) => c.count > 0);
    if (wanted.length === 0) return [];
    const expires = now + leaseMs;
    return this.tx(async (c) => {
      const info = await this.jobInfos(c, wanted.map((w) => w.jobId));
      const out: ClaimedTask[] = [];
      const deltas = new Map<string, Delta>();
      for (const w of wanted) {
        const job = info.get(w.jobId);
        if (!job) continue;
        // Replicas first: they hold up a task already run once. They change no job counter (the task stays verifying).
        const replicas = w.replicas === undefined ? [] : await pgClaimReplicas(c, w.jobId, w.nodeId, w.replicas, w.count, w.ask ?? 0, expires, job);
        out.push(...replicas);
        if (replicas.length >= w.count) continue;
        const rows = (await c.query<Row>(SQL.claim, [w.jobId, w.nodeId, expires, now, w.count - replicas.length, w.ask ?? 0])).rows;
        if (rows.length === 0) continue;
        rows.sort((a, b) => Number(a.idx) - Number(b.idx));
        for (const r of rows) {
          out.push({
            jobId: w.jobId,
            index: Number(r.idx),
            attempt: Number(r.attempt),
            nodeId: w.nodeId,
            input: bytes(r.input),
            leaseExpiresAt: expires,
            instrumentedModule: job.instrumentedModule,
            runtime: job.runtime,
            limits: job.limits,
          });
        }
        const d = deltaOf(deltas, w.jobId);
        d.queued -= rows.length;
        d.leased += rows.length;
      }
      await this.applyDeltas(c, deltas, now);
      return out;
    }, CLAIM_BEGIN);
  }

  private async jobInfos(c: PoolClient, ids: readonly string[]): Promise<Map<string, JobInfo>> {
    const missing = [...new Set(ids)].filter((id) => !this.jobInfo.has(id));
    if (missing.length > 0) {
      const rows = (await c.query<Row>('SELECT id, instrumented_module, runtime, limits FROM jobs WHERE id = ANY($1::text[])', [missing])).rows;
      if (this.jobInfo.size + rows.length > JOB_INFO_CACHE) this.jobInfo.clear();
      for (const r of rows) {
        this.jobInfo.set(String(r.id), {
          instrumentedModule: String(r.instrumented_module),
          runtime: r.runtime as JobInfo['runtime'],
          limits: JSON.parse(String(r.limits)) as JobInfo['limits'],
        });
      }
    }
    const out = new Map<string, JobInfo>();
    for (const id of ids) {
      const i = this.jobInfo.get(id);
      if (i) out.set(id, i);
    }
    return out;
  }

  async extendLeases(nodeId: string, now: number, leaseMs: number): Promise<number> {
    const n = (await this.pool.query(SQL.extend, [nodeId, now + leaseMs, now])).rowCount ?? 0;
    return n + ((await this.pool.query(REPLICA_SQL.extend, [nodeId, now + leaseMs])).rowCount ?? 0);
  }

  async markStaleNodes(before: number): Promise<number> {
    return (await this.pool.query(`UPDATE nodes SET state = 'offline' WHERE state <> 'offline' AND last_seen < $1`, [before])).rowCount ?? 0;
  }

  /** One statement for the whole batch; a later copy of an outcome in the same batch is judged after the first, as in sqlite.ts. */
  async completeTasks(nodeId: string, outcomes: readonly Outcome[], now: number, receipts?: ReceiptBatchRow, placement?: Placement): Promise<{ statuses: OutcomeStatus[]; verify: TaskKey[]; jobs: Set<string> }> {
    if (outcomes.length === 0) return { statuses: [], verify: [], jobs: new Set() };
    const first = new Map<string, number>();
    outcomes.forEach((o, i) => {
      if (!isTaskRef(o)) return; // rejected below; PostgreSQL would fail the whole batch on it
      const k = taskKey(o.jobId, o.index, o.attempt);
      if (!first.has(k)) first.set(k, i);
    });
    // Sorted so that concurrent batches lock shared tasks in the same order.
    const batch = [...first.values()].map((i) => outcomes[i] as Outcome).sort(byTask);
    return this.tx(async (c) => {
      const cols = {
        job: [] as string[], idx: [] as number[], attempt: [] as number[], ok: [] as boolean[],
        output: [] as Array<Uint8Array | null>, fuel: [] as number[], retryable: [] as boolean[], error: [] as Array<string | null>,
        receipt: [] as Array<string | null>,
      };
      // First results the verifier holds take their own statement (replicas-postgres.ts); the rest this one.
      for (const o of batch.filter((x) => !heldForVerification(x))) {
        cols.job.push(o.jobId);
        cols.idx.push(o.index);
        cols.attempt.push(o.attempt);
        cols.ok.push(o.ok);
        cols.fuel.push(o.fuel);
        cols.receipt.push(receiptRef(receipts, o));
        if (o.ok) {
          cols.output.push(o.output ?? new Uint8Array());
          cols.retryable.push(false);
          cols.error.push(null);
        } else {
          const code = o.error?.code ?? 'IM_AGENT_ERROR';
          cols.output.push(null);
          cols.retryable.push(isRetryableTaskError(code));
          cols.error.push(JSON.stringify(o.error ?? { code, message: 'no error given', retryable: true }));
        }
      }
      const done = (await c.query<Row>(SQL.complete,
        [nodeId, now, cols.job, cols.idx, cols.attempt, cols.ok, cols.output, cols.fuel, cols.retryable, cols.error, cols.receipt])).rows;
      const claimed = new Map(batch.map((o) => [taskKey(o.jobId, o.index, o.attempt), o]));
      const after = new Map<string, string>();
      const accrued: Accrued[] = [];
      for (const r of done) {
        const k = taskKey(String(r.job_id), Number(r.idx), Number(r.attempt));
        const o = claimed.get(k);
        // As sameInput in sqlite.ts; the hash is taken in the database, so the input never leaves it.
        if (o?.inputHash !== undefined && o.inputHash !== r.input_hash) {
          throw new ImError('IM_RECEIPT_MISMATCH', `task ${o.jobId}/${o.index}: the result's receipt names another input than the task's`);
        }
        after.set(k, String(r.state));
        // Successes and the task's own faults are paid for; infrastructure failures (retryable) are not. As in sqlite.ts.
        const ask = Number(r.ask);
        const fuel = Number(r.fuel);
        if (o?.charges && r.state === 'succeeded') for (const c of o.charges) { if (c.ask > 0 && c.fuel > 0) accrued.push({ jobId: String(r.job_id), ...c }); }
        else if (ask > 0 && fuel > 0 && (r.state === 'succeeded' || r.retryable !== true)) accrued.push({ jobId: String(r.job_id), nodeId, ask, fuel });
      }

      const held = await pgHold(c, nodeId, batch.filter(heldForVerification), (o) => receiptRef(receipts, o), now, placement);
      const verify: TaskKey[] = [];
      const deltas = new Map<string, Delta>();
      let completed = 0;
      let failed = 0;
      const accepted = new Set<number>();
      for (const [k, i] of first) {
        const o = outcomes[i] as Outcome;
        if (held.has(k)) {
          // Held: still counted as leased, charged only when the verifier decides.
          accepted.add(i);
          deltaOf(deltas, o.jobId);
          verify.push({ jobId: o.jobId, index: o.index });
          if (o.ok) completed++;
          else failed++;
          continue;
        }
        const state = after.get(k);
        if (state === undefined) continue;
        accepted.add(i);
        const d = deltaOf(deltas, o.jobId);
        d.leased--;
        if (state === 'succeeded') {
          d.succeeded++;
          d.fuel += o.fuel;
          completed++;
        } else {
          if (state === 'queued') d.queued++;
          else d.failed++;
          failed++;
        }
      }
      // Results for replica leases: kept with their executions, judged when the verifier decides.
      const unmatched = [...first].filter(([, i]) => !accepted.has(i)).map(([k, i]) => ({ k, i, o: outcomes[i] as Outcome }));
      const replicas = await pgReplicaResults(c, nodeId, unmatched.map((u) => u.o), (o) => receiptRef(receipts, o),
        (o) => isRetryableTaskError(o.error?.code ?? 'IM_AGENT_ERROR'), now);
      for (const u of unmatched) {
        const state = replicas.get(u.k);
        if (state === undefined) continue;
        accepted.add(u.i);
        deltaOf(deltas, u.o.jobId);
        if (state !== 'queued') verify.push({ jobId: u.o.jobId, index: u.o.index });
        if (u.o.ok) completed++;
        else failed++;
      }
      // Everything else is a duplicate of a result already taken from this node for this attempt, or rejected.
      const rest = outcomes.map((o, i) => ({ o, i })).filter(({ o, i }) => !accepted.has(i) && isTaskRef(o));
      const reported = await pgReported(c, nodeId, rest.map(({ o }) => o));
      const current = new Map<string, Row>();
      if (rest.length > 0) {
        const rows = (await c.query<Row>(SQL.taskStates, [rest.map(({ o }) => o.jobId), rest.map(({ o }) => o.index)])).rows;
        for (const r of rows) current.set(taskKey(String(r.job_id), Number(r.idx)), r);
      }
      const statuses = outcomes.map((o, i): OutcomeStatus => {
        if (accepted.has(i)) return 'accepted';
        const cur = current.get(taskKey(o.jobId, o.index));
        if (cur && (cur.state === 'succeeded' || cur.state === 'failed' || cur.state === 'verifying') && Number(cur.attempt) === o.attempt && cur.node_id === nodeId) return 'duplicate';
        if (reported.has(taskKey(o.jobId, o.index, o.attempt))) return 'duplicate';
        return 'rejected';
      });
      await this.applyDeltas(c, deltas, now);
      if (accrued.length > 0) await pgAccrue(c, accrued, now);
      if (completed + failed > 0) await c.query(SQL.nodeStats, [now, [nodeId], [completed], [failed]]);
      if (receipts && completed + failed > 0) await c.query(SQL.putReceiptBatch, [receipts.id, receipts.doc, now]);
      return { statuses, verify, jobs: new Set(deltas.keys()) };
    });
  }

  async getReceipt(jobId: string, index: number): Promise<string | undefined> {
    const r = (await this.pool.query<Row>(SQL.receipt, [jobId, index])).rows[0];
    return r?.receipt == null ? undefined : this.receiptOf(String(r.receipt));
  }

  /** A receipt column (a reference into a stored batch, or a whole document) as its document. */
  private async receiptOf(column: string): Promise<string | undefined> {
    const at = parseReceiptColumn(column);
    if ('doc' in at) return at.doc;
    const b = (await this.pool.query<Row>(SQL.receiptBatch, [at.batch])).rows[0];
    return b ? receiptFromBatch(String(b.doc), at.index) : undefined;
  }

  // ---- verification ----------------------------------------------------------------

  async taskExecutions(jobId: string, index: number): Promise<ExecutionRow[]> {
    return pgExecutions(this.pool, jobId, index, (column) => this.receiptOf(column));
  }

  async addReplicas(jobId: string, index: number, total: number): Promise<number> {
    return this.tx((c) => pgAddReplicas(c, jobId, index, total));
  }

  async decideTask(d: TaskDecision, now: number): Promise<{ decided: boolean; revoked: Array<TaskRef & { nodeId: string }>; jobs: Set<string> }> {
    return this.tx(async (c) => {
      const r = await pgDecide(c, d, now);
      if (!r) return { decided: false, revoked: [], jobs: new Set<string>() };
      await this.applyDeltas(c, new Map([[d.jobId, { queued: 0, leased: -1, succeeded: d.ok ? 1 : 0, failed: d.ok ? 0 : 1, cancelled: 0, fuel: d.fuel }]]), now);
      if (r.accrued.length > 0) await pgAccrue(c, r.accrued, now);
      return { decided: true, revoked: r.revoked, jobs: new Set([d.jobId]) };
    });
  }

  async undecidedTasks(limit: number): Promise<TaskKey[]> {
    return pgUndecided(this.pool, limit);
  }

  async nodeTrust(nodeIds: readonly string[]): Promise<Map<string, number>> {
    return pgTrust(this.pool, nodeIds);
  }

  async nodeResults(nodeId: string, since: number, limit: number): Promise<Array<TaskRef & { finishedAt: number }>> {
    // A job's row is touched by every result, so jobs untouched since then are skipped whole.
    const rows = await this.rows(`SELECT t.job_id, t.idx, t.attempt, t.finished_at FROM jobs j JOIN tasks t ON t.job_id = j.id
      WHERE j.updated_at >= $2 AND t.node_id = $1 AND t.state = 'succeeded' AND t.finished_at >= $2 ORDER BY t.finished_at LIMIT $3`, [nodeId, since, limit]);
    return rows.map((r) => ({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt), finishedAt: Number(r.finished_at) }));
  }

  async meterAdd(rows: readonly MeterRow[]): Promise<void> {
    if (rows.length === 0) return;
    const col = <K extends keyof MeterRow>(k: K): Array<MeterRow[K]> => rows.map((r) => r[k]);
    await this.pool.query(`INSERT INTO issuance_meter (node_id, hour, avail_ms, slot_ms, busy_ms, accepted, failed, paid_msat, cap)
      SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
      ON CONFLICT (node_id, hour) DO UPDATE SET avail_ms = issuance_meter.avail_ms + excluded.avail_ms, slot_ms = issuance_meter.slot_ms + excluded.slot_ms,
        busy_ms = issuance_meter.busy_ms + excluded.busy_ms, accepted = issuance_meter.accepted + excluded.accepted, failed = issuance_meter.failed + excluded.failed,
        paid_msat = issuance_meter.paid_msat + excluded.paid_msat, cap = GREATEST(issuance_meter.cap, excluded.cap)`,
    [col('nodeId'), col('hour'), col('availMs'), col('slotMs'), col('busyMs'), col('accepted'), col('failed'), col('paidMsat'), col('cap')]);
  }

  async meterHours(from: number, to: number): Promise<MeterRow[]> {
    return (await this.pool.query<Row>('SELECT * FROM issuance_meter WHERE hour >= $1 AND hour <= $2 ORDER BY hour, node_id', [from, to])).rows.map(toMeterRow);
  }

  async taskInput(jobId: string, index: number): Promise<Uint8Array | undefined> {
    const r = (await this.pool.query<Row>('SELECT input FROM tasks WHERE job_id = $1 AND idx = $2', [jobId, index])).rows[0];
    return r ? bytes(r.input) : undefined;
  }

  async correctResult(jobId: string, index: number, nodeId: string, attempt: number, output: Uint8Array, fuel: number, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const r = (await c.query<Row>(`WITH old AS (SELECT fuel FROM tasks WHERE job_id = $1 AND idx = $2 FOR UPDATE)
        UPDATE tasks t SET output = $5, fuel = $6 FROM old
        WHERE t.job_id = $1 AND t.idx = $2 AND t.state = 'succeeded' AND t.node_id = $3 AND t.attempt = $4
        RETURNING old.fuel AS old_fuel`, [jobId, index, nodeId, attempt, output, fuel])).rows[0];
      if (!r) return false;
      await c.query('UPDATE jobs SET fuel_used = fuel_used + $2, updated_at = $3 WHERE id = $1', [jobId, fuel - Number(r.old_fuel ?? 0), now]);
      return true;
    });
  }

  async nodeLeases(nodeId: string): Promise<TaskRef[]> {
    const rows = await this.rows(`SELECT job_id, idx, attempt FROM tasks WHERE node_id = $1 AND state = 'leased' ORDER BY job_id, idx`, [nodeId]);
    rows.push(...await this.rows(REPLICA_SQL.leasesOf, [nodeId]));
    return rows.map((r) => ({ jobId: String(r.job_id), index: Number(r.idx), attempt: Number(r.attempt) }));
  }

  async releaseTasks(nodeId: string, tasks: readonly TaskRef[], now: number): Promise<{ released: number; jobs: Set<string> }> {
    const sorted = tasks.filter(isTaskRef).sort(byTask);
    if (sorted.length === 0) return { released: 0, jobs: new Set() };
    return this.tx(async (c) => {
      const rows = (await c.query<Row>(SQL.release, [nodeId, sorted.map((t) => t.jobId), sorted.map((t) => t.index), sorted.map((t) => t.attempt)])).rows;
      const deltas = new Map<string, Delta>();
      for (const r of rows) {
        const d = deltaOf(deltas, String(r.job_id));
        d.leased--;
        d.queued++;
      }
      // Replica leases go back to their queue; the task stays verifying, so no counter moves.
      const back = new Set(rows.map((r) => taskKey(String(r.job_id), Number(r.idx))));
      const replicas = await pgReleaseReplicas(c, nodeId, sorted.filter((t) => !back.has(taskKey(t.jobId, t.index))));
      for (const r of replicas) deltaOf(deltas, String(r.job_id));
      await this.applyDeltas(c, deltas, now);
      return { released: rows.length + replicas.length, jobs: new Set(deltas.keys()) };
    });
  }

  async failNodeLeases(nodeId: string, now: number, error: WireError, session?: string): Promise<ExpiryReport> {
    return this.failLeases(SQL.failNode, [now, JSON.stringify(error), nodeId, session ?? null], now, [REPLICA_SQL.failNode, [nodeId, session ?? null]]);
  }

  async expireLeases(now: number, error: WireError): Promise<ExpiryReport> {
    return this.failLeases(SQL.expire, [now, JSON.stringify(error)], now, [REPLICA_SQL.expire, [now]]);
  }

  /** `replicas`: the same for replica leases (queued again, or lost once out of attempts; no job counter moves). */
  private async failLeases(sql: string, params: unknown[], now: number, replicas: [string, unknown[]]): Promise<ExpiryReport> {
    return this.tx(async (c) => {
      const rows = (await c.query<Row>(sql, params)).rows;
      const lost = (await c.query<Row>(replicas[0], replicas[1])).rows;
      let requeued = 0;
      let failed = 0;
      const deltas = new Map<string, Delta>();
      const byNode = new Map<string, number>();
      for (const r of rows) {
        const d = deltaOf(deltas, String(r.job_id));
        d.leased--;
        if (r.state === 'queued') {
          d.queued++;
          requeued++;
        } else {
          d.failed++;
          failed++;
        }
        byNode.set(String(r.node_id), (byNode.get(String(r.node_id)) ?? 0) + 1);
      }
      for (const r of lost) {
        deltaOf(deltas, String(r.job_id));
        if (r.state === 'queued') requeued++;
        byNode.set(String(r.node_id), (byNode.get(String(r.node_id)) ?? 0) + 1);
      }
      await this.applyDeltas(c, deltas, now);
      if (byNode.size > 0) {
        const ids = [...byNode.keys()].sort();
        if (ids.length > 1) await c.query('SELECT 1 FROM nodes WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [ids]);
        await c.query(SQL.nodeStats, [now, ids, ids.map(() => 0), ids.map((id) => byNode.get(id) ?? 0)]);
      }
      return { requeued, failed, jobs: new Set(deltas.keys()) };
    });
  }

  /** Job counters and state, one statement; rows locked in id order first when there are several. */
  private async applyDeltas(c: PoolClient, deltas: Map<string, Delta>, now: number): Promise<void> {
    if (deltas.size === 0) return;
    const ids = [...deltas.keys()].sort();
    if (ids.length > 1) await c.query('SELECT 1 FROM jobs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [ids]);
    const col = (k: keyof Delta): number[] => ids.map((id) => deltas.get(id)?.[k] ?? 0);
    await c.query(SQL.bump, [now, ids, col('queued'), col('leased'), col('succeeded'), col('failed'), col('cancelled'), col('fuel')]);
  }

  async getResults(jobId: string, q: { after: number; limit: number; state?: TaskState }): Promise<TaskRow[]> {
    return (await this.rows(SQL.results, [jobId, q.after, q.limit, q.state ?? null])).map(toTaskRow);
  }

  async upsertNode(id: string, capabilities: Capabilities, now: number, session?: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO nodes (id, capabilities, state, session, first_seen, last_seen) VALUES ($1, $2, 'online', $3, $4, $4)
       ON CONFLICT (id) DO UPDATE SET capabilities = EXCLUDED.capabilities, state = 'online', pause_reason = NULL,
         session = EXCLUDED.session, last_seen = EXCLUDED.last_seen`,
      [id, JSON.stringify(capabilities), session ?? null, now],
    );
  }

  async setNodeState(id: string, state: NodeRecord['state'], reason: string | undefined, now: number, session?: string): Promise<void> {
    await this.pool.query(
      'UPDATE nodes SET state = $2, pause_reason = $3, last_seen = $4 WHERE id = $1 AND ($5::text IS NULL OR session = $5)',
      [id, state, reason ?? null, now, session ?? null],
    );
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.rows(`SELECT n.*, (SELECT COUNT(*) FROM tasks t WHERE t.node_id = n.id AND t.state = 'leased')
        + (SELECT COUNT(*) FROM task_replicas r WHERE r.node_id = n.id AND r.state = 'leased') AS running
      FROM nodes n ORDER BY n.last_seen DESC, n.id`);
    return rows.map(toNode);
  }

  async useNonce(nodeId: string, nonce: string, expiresAt: number): Promise<boolean> {
    const r = await this.pool.query('INSERT INTO nonces (node_id, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [nodeId, nonce, expiresAt]);
    return r.rowCount === 1;
  }

  async purgeNonces(now: number): Promise<number> {
    return (await this.pool.query('DELETE FROM nonces WHERE expires_at < $1', [now])).rowCount ?? 0;
  }

  /** NOTIFY on `idlemesh_<schema>`; every subscribed store hears it, this one included. */
  // ---- money ---------------------------------------------------------------------

  async ledgerApply(batch: LedgerBatch, now: number, opts: { atomic?: boolean } = {}): Promise<BatchOutcome> {
    return this.tx((c) => pgLedgerApply(c, batch, now, opts.atomic ?? false));
  }

  async ledgerExpire(now: number): Promise<number> {
    return this.tx((c) => pgLedgerExpire(c, now));
  }

  async ledgerBalances(q: { ids?: readonly string[]; prefix?: string; limit: number }): Promise<AccountBalance[]> {
    return pgBalances(this.pool, q);
  }

  async ledgerTransfers(q: { account?: string; ref?: string; afterSeq?: number; limit: number; newestFirst?: boolean }): Promise<Transfer[]> {
    return pgTransfers(this.pool, q);
  }

  async ledgerDump(): Promise<LedgerDump> {
    return this.tx((c) => pgDump(c), 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async ledgerOpenPendings(q: { codes: readonly string[]; limit: number }): Promise<Transfer[]> {
    const rows = await this.rows(`SELECT * FROM ledger_transfers p WHERE p.type = 'pending' AND p.code = ANY($1::text[])
      AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id) ORDER BY p.seq LIMIT $2`, [q.codes, q.limit]);
    return rows.map(toTransfer);
  }

  async jobCharges(jobId: string): Promise<ChargeRow[]> {
    return pgCharges(this.pool, jobId);
  }

  async unsettledJobs(limit: number): Promise<string[]> {
    return (await this.rows('SELECT id FROM jobs WHERE settled_at IS NULL AND finished_at IS NOT NULL ORDER BY finished_at LIMIT $1', [limit]))
      .map((r) => String(r.id));
  }

  async settleJob(jobId: string, plan: SettlementPlan, now: number): Promise<{ settled: boolean; outcome?: BatchOutcome }> {
    return this.tx(async (c) => {
      const [row] = (await c.query<Row>('SELECT * FROM jobs WHERE id = $1 FOR UPDATE', [jobId])).rows;
      if (!row || row.finished_at === null || row.settled_at !== null) return { settled: false };
      const batch = plan({ job: toJob(row), charges: await pgCharges(c, jobId) });
      const outcome = batch.events.length > 0 || (batch.accounts?.length ?? 0) > 0 ? await pgLedgerApply(c, batch, now, true) : undefined;
      await c.query('UPDATE jobs SET settled_at = $1 WHERE id = $2', [now, jobId]);
      return outcome === undefined ? { settled: true } : { settled: true, outcome };
    });
  }

  async market(since: number): Promise<MarketRow[]> {
    return pgMarket(this.pool, since);
  }

  async modelDemand(since: number): Promise<ModelDemandRow[]> {
    const rows = (await this.pool.query<Row>(`SELECT module, COUNT(*) AS requests, SUM(fuel_used) AS fuel, SUM(queued + leased) AS waiting
      FROM jobs WHERE id >= $1 AND runtime = 'llm' AND created_at >= $2 GROUP BY module ORDER BY module`, [jobIdFloor(since), since])).rows;
    return rows.map(toModelDemand);
  }

  async records(kind: string, q: { ids?: readonly string[]; states?: readonly string[]; limit: number }): Promise<StoredRecord[]> {
    const rows = await this.rows(`SELECT * FROM records WHERE kind = $1 AND ($2::text[] IS NULL OR id = ANY($2)) AND ($3::text[] IS NULL OR state = ANY($3))
      ORDER BY updated_at, id LIMIT $4`, [kind, q.ids ?? null, q.states ?? null, q.limit]);
    return rows.map(toStoredRecord);
  }

  async commitRecords(change: RecordChange, now: number): Promise<BatchOutcome | undefined> {
    return this.tx(async (c) => {
      for (const e of change.expect ?? []) {
        const [r] = (await c.query<Row>('SELECT state FROM records WHERE kind = $1 AND id = $2 FOR UPDATE', [e.kind, e.id])).rows;
        const state = r ? String(r.state) : 'absent';
        if (!e.states.includes(state)) throw new ImError('IM_CONFLICT', `${e.kind} ${e.id} is ${state}, not ${e.states.join(' or ')}`, { details: { kind: e.kind, id: e.id, state } });
      }
      for (const r of change.records ?? []) {
        await c.query(`INSERT INTO records (kind, id, state, doc, updated_at) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (kind, id) DO UPDATE SET state = EXCLUDED.state, doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at`, [r.kind, r.id, r.state, encodeDoc(r.doc), now]);
      }
      if ((change.usedAddresses ?? []).length > 0) {
        await c.query('UPDATE deposit_addresses SET used_at = $1 WHERE address = ANY($2::text[]) AND used_at IS NULL', [now, change.usedAddresses]);
      }
      return change.batch === undefined ? undefined : pgLedgerApply(c, change.batch, now, true);
    });
  }

  async issueDepositAddress(account: string, derive: (index: number) => string, gap: number, now: number): Promise<DepositAddress & { reused: boolean }> {
    return this.tx(async (c) => {
      // One issuer at a time across coordinators: indexes are handed out in order, never twice.
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`idlemesh deposit addresses ${this.schema}`]);
      const [r] = (await c.query<Row>('SELECT COALESCE(MAX(idx), -1) AS last, (SELECT COALESCE(MAX(idx), -1) FROM deposit_addresses WHERE used_at IS NOT NULL) AS used FROM deposit_addresses')).rows;
      const next = Number(r?.last ?? -1) + 1;
      if (next - (Number(r?.used ?? -1) + 1) >= gap) {
        const [mine] = (await c.query<Row>('SELECT * FROM deposit_addresses WHERE account = $1 AND used_at IS NULL ORDER BY idx DESC LIMIT 1', [account])).rows;
        if (mine) return { ...toDepositAddress(mine), reused: true };
        throw new ImError('IM_RATE_LIMITED', `${gap} deposit addresses in a row are unused (the gap limit wallets scan); pay into one of them first`, { retryAfterMs: 60_000 });
      }
      const address = derive(next);
      await c.query('INSERT INTO deposit_addresses (idx, address, account, created_at) VALUES ($1, $2, $3, $4)', [next, address, account, now]);
      return { index: next, address, account, createdAt: now, reused: false };
    });
  }

  async auditAppend(entries: ReadonlyArray<Omit<AuditEntry, 'seq'>>): Promise<{ size: number; root: Uint8Array }> {
    return this.tx(async (c) => {
      // The head row lock serialises appends from every coordinator: one log, one seq.
      const [head] = (await c.query<Row>('SELECT size, frontier FROM audit_head WHERE id = 1 FOR UPDATE')).rows;
      const a = appendRows(head as Row, entries);
      for (const r of a.rows) await c.query('INSERT INTO audit_entries (seq, entry, leaf_hash) VALUES ($1, $2, $3)', r);
      await c.query('UPDATE audit_head SET size = $1, frontier = $2 WHERE id = 1', [a.size, a.frontier]);
      return { size: a.size, root: a.root };
    });
  }

  async auditHead(): Promise<{ size: number; root: Uint8Array }> {
    const [r] = await this.rows('SELECT size, frontier FROM audit_head WHERE id = 1');
    const log = restoreLog(r as Row);
    return { size: log.size, root: log.root() };
  }

  async auditEntries(from: number, limit: number): Promise<AuditEntry[]> {
    return (await this.rows('SELECT entry FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2', [from, limit])).map(toAuditEntry);
  }

  async auditLeafHashes(from: number, to: number): Promise<Uint8Array[]> {
    return (await this.rows('SELECT leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq', [from, to])).map(toLeaf);
  }

  async auditPutCheckpoint(size: number, note: string, now: number): Promise<void> {
    await this.pool.query('INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [size, note, now]);
  }

  async auditReplaceCheckpoint(size: number, note: string): Promise<void> {
    await this.pool.query('UPDATE audit_checkpoints SET note = $1 WHERE size = $2', [note, size]);
  }

  async auditCheckpoint(size?: number): Promise<{ size: number; note: string; createdAt: number } | undefined> {
    const [r] = size === undefined
      ? await this.rows('SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1')
      : await this.rows('SELECT * FROM audit_checkpoints WHERE size = $1', [size]);
    return r ? { size: Number(r.size), note: String(r.note), createdAt: Number(r.created_at) } : undefined;
  }

  async depositAddresses(): Promise<DepositAddress[]> {
    return (await this.rows('SELECT * FROM deposit_addresses ORDER BY idx')).map(toDepositAddress);
  }

  async publish(event: StoreEvent): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [this.channel, encodeEvent(event)]);
  }

  async subscribe(handler: (event: StoreEvent) => void): Promise<() => Promise<void>> {
    return this.listener.add(handler);
  }

  async holdsLock(name: string): Promise<boolean> {
    return this.locks.holds(name);
  }
}

function zero(): Delta {
  return { queued: 0, leased: 0, succeeded: 0, failed: 0, cancelled: 0, fuel: 0 };
}

function deltaOf(map: Map<string, Delta>, id: string): Delta {
  let d = map.get(id);
  if (!d) map.set(id, (d = zero()));
  return d;
}

function taskKey(jobId: string, index: number, attempt?: number): string {
  return attempt === undefined ? `${jobId}/${index}` : `${jobId}/${index}/${attempt}`;
}

/** Whether a reference fits the INTEGER columns (an out-of-range number would fail the statement, not just this task). */
function isTaskRef(t: TaskRef): boolean {
  const int32 = (n: number): boolean => Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff;
  return int32(t.index) && int32(t.attempt);
}

function byTask(a: TaskRef, b: TaskRef): number {
  return a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : a.index - b.index;
}
