/**
 * Rows of `task_replicas` read back, the same on both stores. A task under
 * verification (state `verifying`, counted as leased) has its first result
 * as replica 0 and the executions sent to check it as replicas 1, 2, …
 */
import type { WireError } from '@idlemesh/protocol';
import { bytes } from './rows.js';
import type { Row } from './rows.js';
import type { ExecutionRow } from './types.js';

export const EXECUTION_STATES: ReadonlySet<string> = new Set(['queued', 'leased', 'done', 'lost', 'cancelled']);

/** One execution row; `receipt` is the assembled document (the caller resolves the column). */
export function toExecution(r: Row, receipt: string | undefined): ExecutionRow {
  const e: ExecutionRow = {
    jobId: String(r.job_id), index: Number(r.idx), replica: Number(r.replica), state: String(r.state) as ExecutionRow['state'],
    attempt: Number(r.attempt), ask: Number(r.ask),
  };
  if (r.node_id != null) e.nodeId = String(r.node_id);
  if (r.operator != null) e.operator = String(r.operator);
  if (r.prefix != null) e.prefix = String(r.prefix);
  if (r.ok != null) e.ok = r.ok === true || Number(r.ok) === 1;
  if (r.output != null) e.output = bytes(r.output);
  if (r.fuel != null) e.fuel = Number(r.fuel);
  if (r.error != null) e.error = JSON.parse(String(r.error)) as WireError;
  if (receipt !== undefined) e.receipt = receipt;
  if (r.finished_at != null) e.finishedAt = Number(r.finished_at);
  return e;
}
