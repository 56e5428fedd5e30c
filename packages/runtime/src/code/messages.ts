/**
 * What a code worker is started as, and the messages it exchanges with the
 * CodeSandbox. An interpreter worker serves exactly one task and is then
 * terminated; build workers produce the cached Pyodide assets.
 */
import type { CodeResult, CodeTask } from './types.js';

export type WorkerRole =
  | { role: 'js'; module: WebAssembly.Module }
  | { role: 'python'; module: WebAssembly.Module; snapshot: SharedArrayBuffer; indexURL: string }
  | { role: 'instrument'; source: string; target: string }
  | { role: 'snapshot'; module: WebAssembly.Module; indexURL: string };

export type ToWorker = { t: 'run'; task: CodeTask };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'result'; result: CodeResult }
  | { t: 'built'; bytes: Uint8Array | null }
  | { t: 'fatal'; message: string };
