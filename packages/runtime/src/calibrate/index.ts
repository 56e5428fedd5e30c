/**
 * How fast this machine burns fuel, so an agent can advertise capacity and a
 * price per EU. Runs a built-in kernel in the current thread for ~durationMs.
 */
import { runTask } from '../exec/run.js';
import { KERNEL_BASE64 } from './kernel.generated.js';

export interface CalibrateOptions {
  durationMs?: number;
}

let kernel: Promise<WebAssembly.Module> | undefined;

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

export async function calibrate(opts: CalibrateOptions = {}): Promise<{ fuelPerSec: number }> {
  const durationMs = opts.durationMs ?? 300;
  kernel ??= WebAssembly.compile(decode(KERNEL_BASE64));
  const module = await kernel;
  const input = new Uint8Array(0);
  const start = performance.now();
  let fuel = 100_000;
  let best = 0;
  do {
    const t0 = performance.now();
    runTask(module, 'idlemesh/1', input, { fuel, memoryMb: 1, timeoutMs: 60_000, outputBytes: 0 });
    const ms = performance.now() - t0;
    // Short runs measure timer noise and baseline code; trust the longer ones.
    if (ms >= 2) best = Math.max(best, (fuel / ms) * 1000);
    const left = durationMs - (performance.now() - start);
    if (ms < left / 4) fuel *= 2;
    // Let the event loop breathe between runs.
    await new Promise<void>((resolve) => setImmediate(resolve));
  } while (performance.now() - start < durationMs);
  if (best === 0) best = fuel / Math.max(1e-3, performance.now() - start) * 1000;
  return { fuelPerSec: Math.round(best) };
}
