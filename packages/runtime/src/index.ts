/**
 * @idlemesh/runtime — deterministic metered WebAssembly.
 *
 * - instrumentModule (coordinator): checks a module against the task ABI and
 *   adds fuel metering; loads binaryen lazily, on first use.
 * - runTask, Sandbox, calibrate (agent, referee): run instrumented modules;
 *   never load binaryen.
 * The ABI is described in docs/wasm-abi.md.
 */
export { instrumentModule, DEFAULT_MAX_MODULE_BYTES, MAX_TABLE_ELEMENTS } from './instrument/index.js';
export type { InstrumentOptions, InstrumentedModule } from './instrument/index.js';
/** Named in every result receipt: what produced the output and counted the fuel. Bump when either could change. */
export const RUNTIME_VERSION = 'idlemesh-wasm/1 (fuel v1)';
export { runTask } from './exec/index.js';
export type { RunResult, JobLimits } from './exec/index.js';
export { Sandbox } from './sandbox/index.js';
export type { SandboxOptions, SandboxTask } from './sandbox/index.js';
export { calibrate } from './calibrate/index.js';
export type { CalibrateOptions } from './calibrate/index.js';
export { RESERVED_MODULE, TASK_MODULE, WASI_MODULE, TASK_IMPORTS, WASI_IMPORTS, BYTES_PER_FUEL } from './abi.js';
export type { ModuleAbi } from './abi.js';
export { CodeSandbox, runCode, resolveCodeSandboxOptions, CODE_LANGUAGE_OF, runCodeTask, JS_FUEL_PER_INTERRUPT, FIXED_EPOCH_MS, CLOCK_STEP_MS } from './code/index.js';
export type { CodeTaskResult, RunCodeOptions, CodeError, CodeLanguage, CodeLimits, CodeResult, CodeSandboxOptions, CodeTask, CodeVerdict } from './code/index.js';
