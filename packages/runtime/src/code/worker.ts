/**
 * Entry of every code worker thread. An interpreter worker pins the guest's
 * clock before its interpreter loads, reports ready, runs the one task it is
 * sent and reports its result; the sandbox then terminates it, so no state
 * of one task can reach another.
 */
import { rename, readFile, writeFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { GuestClock, pinHostTime, type RealClock } from './determinism.js';
import type { FromWorker, ToWorker, WorkerRole } from './messages.js';
import { errored } from './task.js';
import type { CodeResult, CodeTask } from './types.js';

if (parentPort === null) throw new Error('code/worker.js must run in a worker thread');
const port = parentPort;
const role = workerData as WorkerRole;
const post = (msg: FromWorker): void => port.postMessage(msg);

// Interpreters report problems through results; their console chatter (Pyodide's fatal-error banner) would only reach the agent's log.
for (const k of ['log', 'info', 'debug', 'warn', 'error', 'trace'] as const) console[k] = () => {};

async function main(): Promise<void> {
  if (role.role === 'instrument') {
    const { meterPyodide } = await import('./python/meter.js');
    const metered = await meterPyodide(await readFile(role.source));
    // Written under a unique name then renamed, so a concurrent reader never sees half a file.
    const tmp = `${role.target}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, metered);
    await rename(tmp, role.target);
    post({ t: 'built', bytes: null });
    return;
  }
  const clock = new GuestClock();
  const realNow = pinHostTime(clock);
  if (role.role === 'snapshot') {
    const { makeSnapshot } = await import('./python/engine.js');
    const bytes = await makeSnapshot(role.module, role.indexURL);
    port.postMessage({ t: 'built', bytes } satisfies FromWorker, [bytes.buffer as ArrayBuffer]);
    return;
  }
  const run = await prepare(role, clock, realNow);
  port.once('message', (msg: ToWorker) => {
    let r: CodeResult;
    try {
      r = run(msg.task);
    } catch (err) {
      r = errored('IM_AGENT_ERROR', `the code worker failed: ${(err as Error).message}`);
    }
    post({ t: 'result', result: r });
  });
  post({ t: 'ready' });
}

async function prepare(r: Exclude<WorkerRole, { role: 'instrument' | 'snapshot' }>, clock: GuestClock, realNow: RealClock): Promise<(task: CodeTask) => CodeResult> {
  if (r.role === 'js') {
    const { loadQuickJs, runJs } = await import('./js/engine.js');
    const qjs = await loadQuickJs(r.module);
    return (task) => runJs(qjs, task, clock, realNow);
  }
  const { startPython } = await import('./python/engine.js');
  // Pyodide decodes parts of the snapshot with TextDecoder, which refuses shared memory.
  const snapshot = new Uint8Array(r.snapshot.byteLength);
  snapshot.set(new Uint8Array(r.snapshot));
  const engine = await startPython(r.module, r.indexURL, snapshot, clock);
  return (task) => engine.run(task);
}

main().catch((err: unknown) => {
  post({ t: 'fatal', message: err instanceof Error ? `${err.message}` : String(err) });
});
