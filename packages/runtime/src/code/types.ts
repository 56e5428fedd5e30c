/**
 * Code evaluation: a candidate program and its tests, HumanEval-style, run in
 * a fresh sandboxed interpreter with metered, deterministic effort.
 */
import type { ErrorCode } from '@idlemesh/protocol';

export type CodeLanguage = 'python' | 'js';

/**
 * - passed: the program and then the tests ran without raising.
 * - failed: the program ran, the tests raised (an assertion or any exception).
 * - timed-out: the fuel limit or the wall-clock cap ran out.
 * - errored: the program itself failed (syntax error, top-level exception,
 *   exit, crash, memory cap), or the sandbox could not run the task.
 */
export type CodeVerdict = 'passed' | 'failed' | 'timed-out' | 'errored';

export interface CodeLimits {
  /** Effort allowed, in the language's fuel unit (see docs/code-eval.md); the two languages' units differ. */
  fuel: number;
  /** Memory the program may use: the QuickJS heap (js), or growth of the Python heap beyond a fresh interpreter's (python). */
  memoryMb: number;
  /** Wall-clock cap, enforced from outside the interpreter. Not part of the deterministic result. */
  timeoutMs: number;
  /** stdout and stderr are each cut to this many bytes (UTF-8). */
  outputBytes: number;
}

export interface CodeTask {
  language: CodeLanguage;
  program: string;
  tests: string;
  limits: CodeLimits;
  /** Seeds Python's `random` and the JS `Math.random`; 0 when absent. */
  seed?: number;
}

export interface CodeError {
  code: ErrorCode;
  message: string;
}

export interface CodeResult {
  verdict: CodeVerdict;
  /** Fuel used; equals limits.fuel when the fuel ran out. */
  fuel: number;
  stdout: string;
  stderr: string;
  error?: CodeError;
}

export interface CodeSandboxOptions {
  /**
   * Python interpreters kept warm, which is also how many Python tasks run at
   * once. 0: none kept warm; one is started when a task arrives. Default 1.
   */
  pythonPool?: number;
  /** The same for JS. Default 1. */
  jsPool?: number;
  /** Where the instrumented Pyodide and its memory snapshot are cached. Default ~/.cache/idlemesh. */
  cacheDir?: string;
}
