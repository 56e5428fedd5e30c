/**
 * Rows of either store as the Store contract's records. pg returns
 * BIGINT as strings and BYTEA as Buffers; the contract wants numbers and plain
 * Uint8Arrays (deep equality tells a Buffer from a Uint8Array).
 */
import type { Capabilities, JobState, TaskState, WireError } from '@idlemesh/protocol';
import { ImError, sha256HexSync } from '@idlemesh/protocol';
import type { ClaimedTask, FirstLeases, JobRecord, MeterRow, ModelDemandRow, NewJob, NodeRecord, RunnableJob, StoredModule, TaskRow } from './types.js';

export type Row = Record<string, unknown>;

/** A new job's first tasks as leased by `first` (task i to the i-th lease slot, never more than it has), with each one's ask. */
export function firstLeased(job: NewJob, inputs: readonly Uint8Array[], first: FirstLeases | undefined): Array<ClaimedTask & { ask: number }> {
  const out: Array<ClaimedTask & { ask: number }> = [];
  for (const l of first?.leases ?? []) {
    for (let n = 0; n < l.count && out.length < inputs.length; n++) {
      const index = out.length;
      out.push({
        jobId: job.id, index, attempt: 1, nodeId: l.nodeId, ask: l.ask, input: inputs[index] as Uint8Array, leaseExpiresAt: first?.expiresAt ?? 0,
        instrumentedModule: job.instrumentedModule, runtime: job.runtime, limits: job.limits,
      });
    }
  }
  return out;
}

export function bytes(v: unknown): Uint8Array {
  const b = v as Buffer;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function toModule(r: Row): StoredModule {
  return {
    hash: String(r.hash),
    instrumentedHash: String(r.instrumented_hash),
    abi: r.abi as StoredModule['abi'],
    size: Number(r.size),
    instrumentedSize: Number(r.instrumented_size),
    initialPages: Number(r.initial_pages),
    maxPages: Number(r.max_pages),
    bytes: bytes(r.bytes),
    instrumented: bytes(r.instrumented),
    createdAt: Number(r.created_at),
  };
}

export function toJob(r: Row): JobRecord {
  const job: JobRecord = {
    id: String(r.id),
    caller: String(r.caller),
    requestHash: String(r.request_hash),
    module: String(r.module),
    instrumentedModule: String(r.instrumented_module),
    runtime: r.runtime as JobRecord['runtime'],
    limits: JSON.parse(String(r.limits)) as JobRecord['limits'],
    bid: Number(r.bid),
    maxAttempts: Number(r.max_attempts),
    retryBackoffMs: Number(r.retry_backoff_ms),
    priority: Number(r.priority),
    requirements: JSON.parse(String(r.requirements)) as JobRecord['requirements'],
    createdAt: Number(r.created_at),
    state: r.state as JobState,
    counts: {
      total: Number(r.total),
      queued: Number(r.queued),
      leased: Number(r.leased),
      succeeded: Number(r.succeeded),
      failed: Number(r.failed),
      cancelled: Number(r.cancelled),
    },
    fuelUsed: Number(r.fuel_used),
    updatedAt: Number(r.updated_at),
  };
  if (r.idem_key !== null) job.idempotencyKey = String(r.idem_key);
  if (r.name !== null) job.name = String(r.name);
  if (r.finished_at !== null) job.finishedAt = Number(r.finished_at);
  if (r.buyer !== null && r.buyer !== undefined) job.buyer = String(r.buyer);
  if (r.hold_msat !== null && r.hold_msat !== undefined) job.holdMsat = BigInt(String(r.hold_msat));
  if (r.fees !== null && r.fees !== undefined) job.fees = JSON.parse(String(r.fees)) as NonNullable<JobRecord['fees']>;
  if (r.settled_at !== null && r.settled_at !== undefined) job.settledAt = Number(r.settled_at);
  if (r.label !== null && r.label !== undefined) job.label = String(r.label);
  if (r.data_classes !== null && r.data_classes !== undefined) job.dataClasses = JSON.parse(String(r.data_classes)) as string[];
  if (r.verification !== null && r.verification !== undefined) job.verification = JSON.parse(String(r.verification)) as NonNullable<JobRecord['verification']>;
  return job;
}

export function toTaskRow(r: Row): TaskRow {
  const t: TaskRow = {
    jobId: String(r.job_id),
    index: Number(r.idx),
    state: r.state as TaskState,
    attempt: Number(r.attempt),
    failures: Number(r.failures),
  };
  if (r.node_id !== null) t.nodeId = String(r.node_id);
  if (r.output !== null) t.output = bytes(r.output);
  if (r.fuel !== null) t.fuel = Number(r.fuel);
  if (r.error !== null) t.error = JSON.parse(String(r.error)) as WireError;
  if (r.finished_at !== null) t.finishedAt = Number(r.finished_at);
  return t;
}

export function toNode(r: Row): NodeRecord {
  const n: NodeRecord = {
    id: String(r.id),
    state: r.state as NodeRecord['state'],
    capabilities: JSON.parse(String(r.capabilities)) as Capabilities,
    running: Number(r.running),
    completed: Number(r.completed),
    failed: Number(r.failed),
    firstSeen: Number(r.first_seen),
    lastSeen: Number(r.last_seen),
  };
  if (r.pause_reason !== null) n.pauseReason = String(r.pause_reason);
  return n;
}

export function toRunnable(r: Row): RunnableJob {
  return {
    id: String(r.id),
    runtime: r.runtime as RunnableJob['runtime'],
    queued: Number(r.queued),
    leased: Number(r.leased),
    priority: Number(r.priority),
    bid: Number(r.bid ?? 0),
    caller: String(r.caller ?? ''),
    ...(r.label !== null && r.label !== undefined ? { label: String(r.label) } : {}),
    ...(r.data_classes !== null && r.data_classes !== undefined ? { dataClasses: JSON.parse(String(r.data_classes)) as string[] } : {}),
    createdAt: Number(r.created_at),
    memoryMb: (JSON.parse(String(r.limits)) as { memoryMb: number }).memoryMb,
    requirements: JSON.parse(String(r.requirements)) as RunnableJob['requirements'],
  };
}

/** A result names the input it ran (its receipt): one for another input refuses the whole batch, whichever store. */
export function sameInput(o: { jobId: string; index: number; inputHash?: string }, input: Uint8Array): void {
  if (o.inputHash === undefined) return;
  if (sha256HexSync(input) !== o.inputHash) {
    throw new ImError('IM_RECEIPT_MISMATCH', `task ${o.jobId}/${o.index}: the result's receipt names another input than the task's`);
  }
}

/** The smallest job id created at or after `at` (ids start with their creation time, base 36; see newJobId). */
export function jobIdFloor(at: number): string {
  return `job_${Math.max(0, Math.floor(at)).toString(36).padStart(9, '0')}`;
}

export function toModelDemand(r: Row): ModelDemandRow {
  return { model: String(r.module), requests: Number(r.requests), fuel: Number(r.fuel ?? 0), waiting: Number(r.waiting ?? 0) };
}

export function toMeterRow(r: Row): MeterRow {
  return {
    nodeId: String(r.node_id), hour: Number(r.hour), availMs: Number(r.avail_ms), slotMs: Number(r.slot_ms), busyMs: Number(r.busy_ms),
    accepted: Number(r.accepted), failed: Number(r.failed), paidMsat: Number(r.paid_msat), cap: Number(r.cap),
  };
}

/**
 * `LIMIT` of a bound parameter, for statements prepared once and run often.
 * The SQLite in better-sqlite3 (3.53) plans with a LIMIT parameter's bound value, so binding
 * `LIMIT ?` marks the statement stale and it is compiled again on every run
 * (10-20 µs; measured on the claim and results statements). A cast is not a
 * plain parameter: the plan stays, and the limit still applies.
 */
export function limitOf(param: string): string {
  return `LIMIT CAST(${param} AS INTEGER)`;
}
