import type { ErrorCode, JobLimits } from '@idlemesh/protocol';

export type { JobLimits };

export type RunResult =
  | { ok: true; output: Uint8Array; fuel: number }
  | { ok: false; fuel: number; error: { code: ErrorCode; message: string } };
