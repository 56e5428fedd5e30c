/**
 * Worker thread of the Sandbox: runs batches of tasks one after another and
 * posts results back in groups, so tiny tasks do not pay a message each.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModuleAbi } from '../abi.js';
import { runTask } from '../exec/run.js';
import type { RunResult } from '../exec/types.js';
import { ABORTED, F64_STARTED, I32_CANCEL, I32_CURRENT, progressViews, type FromWorker, type ToWorker, type WireTask } from './messages.js';

/** Results wait at most this long for company before they are posted. */
const FLUSH_MS = 2;

if (parentPort === null) throw new Error('worker.js must run in a worker thread');
const port = parentPort;
const { f64, i32 } = progressViews((workerData as { progress: SharedArrayBuffer }).progress);
const modules = new Map<string, { module: WebAssembly.Module; abi: ModuleAbi }>();

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'module') modules.set(msg.hash, { module: msg.module, abi: msg.abi });
  else runBatch(msg.tasks);
});

function runBatch(tasks: WireTask[]): void {
  let results: FromWorker['results'] = [];
  let transfer: ArrayBuffer[] = [];
  let lastFlush = performance.now();
  const flush = (): void => {
    const msg: FromWorker = { t: 'results', results };
    port.postMessage(msg, transfer);
    results = [];
    transfer = [];
    lastFlush = performance.now();
  };
  for (let i = 0; i < tasks.length; i++) {
    const task = tasks[i] as WireTask;
    f64[F64_STARTED] = Date.now();
    Atomics.store(i32, I32_CURRENT, i);
    let result: RunResult;
    if (Atomics.load(i32, I32_CANCEL + i) === 1) {
      result = ABORTED;
    } else {
      const mod = modules.get(task.hash);
      result = mod === undefined
        ? { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: `worker has no module ${task.hash}` } }
        : runTask(mod.module, mod.abi, task.input, task.limits);
    }
    results.push({ id: task.id, result });
    if (result.ok) transfer.push(result.output.buffer as ArrayBuffer);
    if (i < tasks.length - 1 && performance.now() - lastFlush >= FLUSH_MS) flush();
  }
  Atomics.store(i32, I32_CURRENT, -1);
  flush();
}
