/** Messages between the browser node and its task workers. */
import type { JobLimits, ModuleAbi } from '@idlemesh/protocol';
import type { RunResult } from '@idlemesh/runtime/exec';

export type ToWorker =
  | { t: 'module'; hash: string; module: WebAssembly.Module; abi: ModuleAbi }
  | { t: 'run'; id: number; hash: string; input: Uint8Array; limits: JobLimits }
  | { t: 'calibrate'; durationMs: number };

export type FromWorker =
  | { t: 'result'; id: number; result: RunResult; ms: number }
  | { t: 'calibrated'; fuelPerSec: number };

export type { RunResult };
