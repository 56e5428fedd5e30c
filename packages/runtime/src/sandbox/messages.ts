/**
 * Messages between the Sandbox and its workers, and the layout of the shared
 * progress block through which the main thread sees which task of a batch a
 * worker is running (and since when) without a message per task.
 */
import type { JobLimits } from '@idlemesh/protocol';
import type { ModuleAbi } from '../abi.js';
import type { RunResult } from '../exec/types.js';

export interface WireTask {
  id: number;
  hash: string;
  input: Uint8Array;
  limits: JobLimits;
}

export type ToWorker =
  | { t: 'module'; hash: string; module: WebAssembly.Module; abi: ModuleAbi }
  | { t: 'batch'; tasks: WireTask[] };

export interface FromWorker {
  t: 'results';
  results: Array<{ id: number; result: RunResult }>;
}

export const MAX_BATCH = 64;

/** Float64 slot 0: Date.now() when the current task started. */
export const F64_STARTED = 0;
/** Int32 slots, after the Float64: index in the batch of the running task (-1 = none), then one cancel flag per batch slot. */
export const I32_OFFSET_BYTES = 8;
export const I32_CURRENT = 0;
export const I32_CANCEL = 1;
export const PROGRESS_BYTES = I32_OFFSET_BYTES + 4 * (1 + MAX_BATCH);

export interface Progress {
  f64: Float64Array;
  i32: Int32Array;
}

export function progressViews(sab: SharedArrayBuffer): Progress {
  return { f64: new Float64Array(sab, 0, 1), i32: new Int32Array(sab, I32_OFFSET_BYTES, 1 + MAX_BATCH) };
}

export const ABORTED: RunResult = { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: 'aborted' } };
