import { Sandbox, calibrate } from '@idlemesh/runtime';
import type { JobLimits, ModuleAbi } from '@idlemesh/protocol';

/** What the agent needs from @idlemesh/runtime's Sandbox (tests pass their own). */
export type RunResult =
  | { ok: true; output: Uint8Array; fuel: number }
  | { ok: false; fuel: number; error: { code: string; message: string } };

export interface TaskSandbox {
  hasModule(hash: string): boolean;
  /** Verifies that sha256(bytes) === hash. */
  addModule(hash: string, instrumentedBytes: Uint8Array, abi: ModuleAbi): Promise<void>;
  run(task: { moduleHash: string; input: Uint8Array; limits: JobLimits }, signal?: AbortSignal): Promise<RunResult>;
  close(): Promise<void>;
}

export type Calibrate = (opts?: { durationMs?: number }) => Promise<{ fuelPerSec: number }>;

/** The real sandbox: one worker thread per task slot. */
export function loadRuntime(workers: number): { sandbox: TaskSandbox; calibrate: Calibrate } {
  const sandbox: TaskSandbox = new Sandbox({ workers });
  return { sandbox, calibrate };
}
