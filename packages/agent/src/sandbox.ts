import { CodeSandbox, Sandbox, calibrate } from '@idlemesh/runtime';
import { CODE_RUNTIME_MODULE, CodeEvalInput } from '@idlemesh/protocol';
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
export function loadRuntime(workers: number, codeRuntimes = false): { sandbox: TaskSandbox; calibrate: Calibrate } {
  const wasm: TaskSandbox = new Sandbox({ workers });
  const sandbox = codeRuntimes ? withCodeRuntimes(wasm) : wasm;
  return { sandbox, calibrate };
}

const CODE_MODULES = new Map(Object.entries(CODE_RUNTIME_MODULE).map(([lang, hash]) => [hash, lang as 'python' | 'js']));

/**
 * Adds the code-evaluation runtimes (python, js) to a wasm sandbox: their
 * tasks name the runtime's id as module and carry {program, tests, seed?}.
 * The task succeeds whatever the verdict (it was evaluated); its output is the
 * verdict with the captured output. Only the sandbox's own failures fail it.
 */
export function withCodeRuntimes(inner: TaskSandbox, opts: { pythonPool?: number; jsPool?: number } = {}): TaskSandbox {
  const code = new CodeSandbox({ pythonPool: opts.pythonPool ?? 1, jsPool: opts.jsPool ?? 1 });
  return {
    hasModule: (hash) => CODE_MODULES.has(hash) || inner.hasModule(hash),
    addModule: (hash, bytes, abi) => inner.addModule(hash, bytes, abi),
    async run(task, signal) {
      const language = CODE_MODULES.get(task.moduleHash);
      if (language === undefined) return inner.run(task, signal);
      let input: CodeEvalInput;
      try {
        input = CodeEvalInput.parse(JSON.parse(new TextDecoder().decode(task.input)));
      } catch (err) {
        return { ok: false, fuel: 0, error: { code: 'IM_VALIDATION', message: `not a code task: ${(err as Error).message.slice(0, 500)}` } };
      }
      const r = await code.run({ language, program: input.program, tests: input.tests, limits: task.limits, ...(input.seed !== undefined ? { seed: input.seed } : {}) }, signal);
      if (r.error?.code === 'IM_UNAVAILABLE' || (r.error?.code === 'IM_AGENT_ERROR' && r.verdict === 'errored')) return { ok: false, fuel: r.fuel, error: r.error };
      const out = { verdict: r.verdict, stdout: r.stdout, stderr: r.stderr, ...(r.error ? { error: r.error } : {}) };
      return { ok: true, output: new TextEncoder().encode(JSON.stringify(out)), fuel: r.fuel };
    },
    async close() {
      await Promise.all([inner.close(), code.close()]);
    },
  };
}
