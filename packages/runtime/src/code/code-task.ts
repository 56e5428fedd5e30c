/**
 * A python/js task as a runtime task: its module is the runtime's id
 * (CODE_RUNTIME_MODULE), its input a CodeEvalInput, its output the verdict
 * with the captured output. The agent runs code tasks with this, and the
 * coordinator's referee re-runs them with it, so both produce the same bytes
 * and the same fuel for the same task.
 */
import { CODE_RUNTIME_MODULE, CodeEvalInput } from '@idlemesh/protocol';
import type { JobLimits } from '@idlemesh/protocol';
import type { CodeSandbox } from './sandbox.js';
import type { CodeLanguage } from './types.js';

/** The language of a code task's module, or undefined for any other module. */
export const CODE_LANGUAGE_OF: ReadonlyMap<string, CodeLanguage> = new Map(Object.entries(CODE_RUNTIME_MODULE).map(([lang, hash]) => [hash, lang as CodeLanguage]));

export type CodeTaskResult =
  | { ok: true; output: Uint8Array; fuel: number }
  | { ok: false; fuel: number; error: { code: string; message: string } };

/**
 * Runs one code task. The task succeeds whatever the verdict (it was
 * evaluated); only the sandbox's own failures, or an input that is not a
 * code task, fail it.
 */
export async function runCodeTask(code: CodeSandbox, language: CodeLanguage, task: { input: Uint8Array; limits: JobLimits }, signal?: AbortSignal): Promise<CodeTaskResult> {
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
}
