/**
 * Code evaluation for AI coding workloads: a candidate program and its tests
 * in a fresh, isolated, deterministic and fuel-metered interpreter (Pyodide
 * for Python, QuickJS for JS). See docs/code-eval.md.
 */
export { CodeSandbox, runCode, resolveCodeSandboxOptions } from './sandbox.js';
export { CODE_LANGUAGE_OF, runCodeTask } from './code-task.js';
export type { CodeTaskResult } from './code-task.js';
export type { RunCodeOptions } from './sandbox.js';
export { JS_FUEL_PER_INTERRUPT } from './js/meter.js';
export { FIXED_EPOCH_MS, CLOCK_STEP_MS } from './determinism.js';
export type { CodeError, CodeLanguage, CodeLimits, CodeResult, CodeSandboxOptions, CodeTask, CodeVerdict } from './types.js';
