/**
 * A task worker of the browser node: runs instrumented modules with runTask
 * from @idlemesh/runtime — the code the Node agent's sandbox runs — so the
 * fuel of a task is the same to the unit. One task at a time; the pool stops
 * a runaway task by terminating the worker.
 */
import { runTask } from '@idlemesh/runtime/exec';
import { KERNEL_BASE64 } from '@idlemesh/runtime/kernel';
import type { ModuleAbi } from '@idlemesh/protocol';
import type { FromWorker, RunResult, ToWorker } from './messages.js';

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(msg: FromWorker, transfer?: Transferable[]): void;
};
const modules = new Map<string, { module: WebAssembly.Module; abi: ModuleAbi }>();

scope.onmessage = (e) => {
  const m = e.data;
  switch (m.t) {
    case 'module':
      modules.set(m.hash, { module: m.module, abi: m.abi });
      return;
    case 'run': {
      const t0 = performance.now();
      const mod = modules.get(m.hash);
      const result: RunResult = mod === undefined
        ? { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: `worker has no module ${m.hash}` } }
        : runTask(mod.module, mod.abi, m.input, m.limits);
      const msg: FromWorker = { t: 'result', id: m.id, result, ms: performance.now() - t0 };
      scope.postMessage(msg, result.ok ? [result.output.buffer as ArrayBuffer] : []);
      return;
    }
    case 'calibrate':
      scope.postMessage({ t: 'calibrated', fuelPerSec: calibrate(m.durationMs) });
      return;
  }
};

/** Fuel per second on the runtime's calibration kernel, measured as the Node agent does. */
function calibrate(durationMs: number): number {
  const module = new WebAssembly.Module(Uint8Array.from(atob(KERNEL_BASE64), (c) => c.charCodeAt(0)));
  const start = performance.now();
  let fuel = 100_000;
  let best = 0;
  do {
    const t0 = performance.now();
    runTask(module, 'idlemesh/1', new Uint8Array(0), { fuel, memoryMb: 1, timeoutMs: 60_000, outputBytes: 0 });
    const ms = performance.now() - t0;
    if (ms >= 2) best = Math.max(best, (fuel / ms) * 1000);
    if (ms < (durationMs - (performance.now() - start)) / 4) fuel *= 2;
  } while (performance.now() - start < durationMs);
  return Math.round(best > 0 ? best : (fuel / Math.max(1e-3, performance.now() - start)) * 1000);
}
