/**
 * Task checks and result shapes shared by the sandbox and its workers.
 */
import type { ErrorCode } from '@idlemesh/protocol';
import type { CodeResult, CodeTask, CodeVerdict } from './types.js';

/** Fuel is counted in a float64 on the host side; beyond this it stops being exact. */
const MAX_FUEL = Number.MAX_SAFE_INTEGER;
/** Memory caps above this do not fit the 32-bit interpreters anyway. */
const MAX_MEMORY_MB = 2048;

export function result(verdict: CodeVerdict, fuel: number, stdout: string, stderr: string, code?: ErrorCode, message?: string): CodeResult {
  const r: CodeResult = { verdict, fuel, stdout, stderr };
  if (code !== undefined) r.error = { code, message: message ?? code };
  return r;
}

export function errored(code: ErrorCode, message: string, fuel = 0): CodeResult {
  return result('errored', fuel, '', '', code, message);
}

/** Why the task cannot be run, or null. Tasks arrive from the network, so nothing is assumed. */
export function checkTask(task: CodeTask): string | null {
  if (typeof task !== 'object' || task === null) return 'the task is not an object';
  if (task.language !== 'python' && task.language !== 'js') return `unknown language ${JSON.stringify(task.language)}; use "python" or "js"`;
  if (typeof task.program !== 'string' || typeof task.tests !== 'string') return 'program and tests must be strings';
  const l = task.limits as Partial<CodeTask['limits']> | undefined;
  if (typeof l !== 'object' || l === null) return 'limits are missing';
  const whole = (name: string, v: unknown, min: number, max: number): string | null =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? null : `limits.${name} must be a whole number from ${min} to ${max}`;
  return whole('fuel', l.fuel, 1, MAX_FUEL)
    ?? whole('memoryMb', l.memoryMb, 1, MAX_MEMORY_MB)
    ?? whole('timeoutMs', l.timeoutMs, 1, 24 * 3600 * 1000)
    ?? whole('outputBytes', l.outputBytes, 0, 64 * 1024 * 1024)
    ?? (task.seed === undefined ? null : whole('seed', task.seed, 0, 0xffffffff)?.replace('limits.', '') ?? null);
}
