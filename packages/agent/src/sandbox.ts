import { CODE_LANGUAGE_OF, CodeSandbox, Sandbox, calibrate, runCodeTask } from '@idlemesh/runtime';
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
  /** Fuel a task may try on the calling thread when the workers are idle (the real Sandbox; others may ignore it). */
  setInlineFuel?(fuel: number): void;
}

export type Calibrate = (opts?: { durationMs?: number }) => Promise<{ fuelPerSec: number }>;

/** The real sandbox: one worker thread per task slot. */
export function loadRuntime(workers: number, codeRuntimes = false): { sandbox: TaskSandbox; calibrate: Calibrate } {
  const wasm: TaskSandbox = new Sandbox({ workers });
  const sandbox = codeRuntimes ? withCodeRuntimes(wasm) : wasm;
  return { sandbox, calibrate };
}

/**
 * Adds the code-evaluation runtimes (python, js) to a wasm sandbox: their
 * tasks name the runtime's id as module and carry {program, tests, seed?}
 * (runCodeTask in @idlemesh/runtime, which the coordinator's referee uses too).
 */
export function withCodeRuntimes(inner: TaskSandbox, opts: { pythonPool?: number; jsPool?: number } = {}): TaskSandbox {
  const code = new CodeSandbox({ pythonPool: opts.pythonPool ?? 1, jsPool: opts.jsPool ?? 1 });
  return {
    hasModule: (hash) => CODE_LANGUAGE_OF.has(hash) || inner.hasModule(hash),
    setInlineFuel: (fuel) => inner.setInlineFuel?.(fuel),
    addModule: (hash, bytes, abi) => inner.addModule(hash, bytes, abi),
    async run(task, signal) {
      const language = CODE_LANGUAGE_OF.get(task.moduleHash);
      if (language === undefined) return inner.run(task, signal);
      return runCodeTask(code, language, task, signal);
    },
    async close() {
      await Promise.all([inner.close(), code.close()]);
    },
  };
}
