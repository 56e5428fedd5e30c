/**
 * Agent side: a pool of worker threads that run tasks of instrumented modules.
 * Modules are compiled once and shared with every worker; tasks are batched
 * per worker; a wall-clock backstop and AbortSignals stop a run by replacing
 * its worker, never by trusting the module to return.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ImError, type ErrorCode, type JobLimits } from '@idlemesh/protocol';
import type { ModuleAbi } from '../abi.js';
import { runTask } from '../exec/run.js';
import type { RunResult } from '../exec/types.js';
import { ABORTED, F64_STARTED, I32_CANCEL, I32_CURRENT, MAX_BATCH, PROGRESS_BYTES, progressViews, type FromWorker, type Progress, type ToWorker, type WireTask } from './messages.js';

export interface SandboxOptions {
  /** Worker threads, i.e. tasks run at once. */
  workers: number;
  /**
   * Fuel a task may first try on the calling thread when every worker is
   * idle (0, the default: never). See Sandbox.setInlineFuel.
   */
  inlineFuel?: number;
}

export interface SandboxTask {
  moduleHash: string;
  input: Uint8Array;
  limits: JobLimits;
}

interface Pending {
  id: number;
  task: SandboxTask;
  resolve: (r: RunResult) => void;
  settled: boolean;
  slot: Slot | null;
  index: number;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Slot {
  worker: Worker;
  progress: Progress;
  batch: Pending[] | null;
  done: number;
  sentAt: number;
  timer: NodeJS.Timeout | null;
  dead: boolean;
}

/** A batch aims at this much work, so slow tasks are not held behind each other. */
const BATCH_TARGET_MS = 4;
/** Runs of a module not tried inline after one of them outran the inline fuel. */
const INLINE_SKIP = 64;
/** At most this many tasks inline per event-loop turn: each counts at least this share of the turn's fuel. */
const INLINE_PER_TURN = 64;
/** Workers that die this many times in a row, with no result in between, mean a broken install. */
const MAX_CONSECUTIVE_CRASHES = 5;
const WORKER_URL = new URL('./worker.js', import.meta.url);

function failure(code: ErrorCode, message: string): RunResult {
  return { ok: false, fuel: 0, error: { code, message } };
}

export class Sandbox {
  private readonly modules = new Map<string, { module: WebAssembly.Module; abi: ModuleAbi }>();
  private readonly slots = new Set<Slot>();
  private idle: Slot[] = [];
  private queue: Pending[] = [];
  private nextId = 1;
  private closed = false;
  /** Moving average of one task's run time, to size batches. */
  private taskMs = 1;
  private crashes = 0;
  private broken: string | null = null;
  private inlineFuel = 0;
  #inlineRuns = 0;
  /** Per module: runs left before it is tried inline again. */
  private readonly inlineSkips = new Map<string, number>();
  /** Fuel still allowed inline in this event-loop turn (inlineTurn: the turn's budget is set). */
  private inlineLeft = 0;
  private inlineTurn = false;

  constructor(opts: SandboxOptions) {
    const n = Math.max(1, Math.floor(opts.workers));
    for (let i = 0; i < n; i++) this.idle.push(this.spawn());
    this.setInlineFuel(opts.inlineFuel ?? 0);
  }

  /**
   * A task arriving while every worker is idle first runs on the calling
   * thread with at most this much fuel (about half a millisecond of work is
   * right): that saves the two thread wake-ups of a worker round trip, which
   * is most of a tiny task's latency. The budget is per event-loop turn: a
   * burst of tiny tasks runs inline until it is spent (each task counting at
   * least 1/64 of it), and the rest goes to the workers, in parallel. Fuel bounds the run (bulk memory is
   * metered by size), so the thread is never held longer. What it returns
   * stands only if a worker would return the same: a success, a non-zero
   * exit, output over the limit, or fuel exhausted when the task's own limit
   * was the bound. Anything else (out of the inline fuel, a trap that could
   * be the thread's smaller stack) runs again in a worker, the reference.
   */
  setInlineFuel(fuel: number): void {
    this.inlineFuel = Number.isFinite(fuel) && fuel > 0 ? Math.floor(fuel) : 0;
  }

  /** Tasks answered on the calling thread (setInlineFuel). */
  get inlineRuns(): number {
    return this.#inlineRuns;
  }

  hasModule(hash: string): boolean {
    return this.modules.has(hash);
  }

  async addModule(hash: string, instrumentedBytes: Uint8Array, abi: ModuleAbi): Promise<void> {
    if (this.closed) throw new ImError('IM_UNAVAILABLE', 'The sandbox is closed.');
    const actual = createHash('sha256').update(instrumentedBytes).digest('hex');
    if (actual !== hash) throw new ImError('IM_WASM_INVALID', `The module bytes hash to ${actual}, not ${hash}.`);
    if (this.modules.has(hash)) return;
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(instrumentedBytes as Uint8Array<ArrayBuffer>);
    } catch (err) {
      throw new ImError('IM_WASM_INVALID', `The instrumented module does not compile: ${(err as Error).message}`);
    }
    if (this.modules.has(hash) || this.closed) return;
    this.modules.set(hash, { module, abi });
    const msg: ToWorker = { t: 'module', hash, module, abi };
    for (const slot of this.slots) slot.worker.postMessage(msg);
  }

  run(task: SandboxTask, signal?: AbortSignal): Promise<RunResult> {
    if (this.closed) return Promise.reject(new ImError('IM_UNAVAILABLE', 'The sandbox is closed.'));
    if (!this.modules.has(task.moduleHash)) return Promise.reject(new ImError('IM_MODULE_NOT_FOUND', `No module ${task.moduleHash} in this sandbox; call addModule first.`));
    if (signal?.aborted === true) return Promise.resolve(ABORTED);
    if (this.broken !== null) return Promise.resolve(failure('IM_AGENT_ERROR', this.broken));
    if (this.inlineFuel > 0 && this.queue.length === 0 && this.idle.length === this.slots.size) {
      const result = this.runInline(task);
      if (result !== null) return Promise.resolve(result);
    }
    return new Promise<RunResult>((resolve) => {
      const p: Pending = { id: this.nextId++, task, resolve, settled: false, slot: null, index: -1, signal, onAbort: undefined };
      if (signal !== undefined) {
        p.onAbort = () => this.abort(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.pump();
    });
  }

  private runInline(task: SandboxTask): RunResult | null {
    if (!this.inlineTurn) {
      this.inlineTurn = true;
      this.inlineLeft = this.inlineFuel;
      setImmediate(() => {
        this.inlineTurn = false;
      });
    }
    const least = Math.ceil(this.inlineFuel / INLINE_PER_TURN);
    if (this.inlineLeft < least) return null;
    const { moduleHash, limits } = task;
    const skip = this.inlineSkips.get(moduleHash) ?? 0;
    if (skip > 0) {
      this.inlineSkips.set(moduleHash, skip - 1);
      return null;
    }
    const m = this.modules.get(moduleHash);
    if (m === undefined) return null;
    const budget = this.inlineLeft;
    const fuel = Math.min(limits.fuel, budget);
    const result = runTask(m.module, m.abi, task.input, fuel === limits.fuel ? limits : { ...limits, fuel });
    this.inlineLeft -= Math.max(least, result.fuel);
    const code = result.ok ? null : result.error.code;
    if (code === null || code === 'IM_EXIT_NONZERO' || code === 'IM_OUTPUT_TOO_LARGE' || (code === 'IM_FUEL_EXHAUSTED' && fuel === limits.fuel)) {
      this.#inlineRuns++;
      return result;
    }
    // Out of a whole turn's inline fuel (not just what this turn had left): too long to try inline for a while.
    if (code === 'IM_FUEL_EXHAUSTED' && budget >= this.inlineFuel) this.inlineSkips.set(moduleHash, INLINE_SKIP);
    return null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.queue) this.settle(p, failure('IM_AGENT_ERROR', 'sandbox closed'));
    this.queue = [];
    const stopping: Array<Promise<number>> = [];
    for (const slot of this.slots) {
      for (const p of slot.batch ?? []) this.settle(p, failure('IM_AGENT_ERROR', 'sandbox closed'));
      stopping.push(this.retire(slot));
    }
    this.idle = [];
    await Promise.all(stopping);
  }

  private spawn(): Slot {
    const sab = new SharedArrayBuffer(PROGRESS_BYTES);
    const worker = new Worker(WORKER_URL, { workerData: { progress: sab } });
    const slot: Slot = { worker, progress: progressViews(sab), batch: null, done: 0, sentAt: 0, timer: null, dead: false };
    Atomics.store(slot.progress.i32, I32_CURRENT, -1);
    worker.on('message', (msg: FromWorker) => this.onResults(slot, msg));
    worker.on('error', (err) => this.onCrash(slot, `worker crashed: ${err.message}`));
    worker.on('exit', (code) => this.onCrash(slot, `worker exited with code ${code}`));
    for (const [hash, m] of this.modules) worker.postMessage({ t: 'module', hash, module: m.module, abi: m.abi } satisfies ToWorker);
    this.slots.add(slot);
    return slot;
  }

  private retire(slot: Slot): Promise<number> {
    slot.dead = true;
    slot.batch = null;
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    this.slots.delete(slot);
    this.idle = this.idle.filter((s) => s !== slot);
    return slot.worker.terminate().catch(() => -1);
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const slot = this.idle.pop();
      if (slot === undefined) return;
      const byWork = Math.max(1, Math.floor(BATCH_TARGET_MS / this.taskMs));
      const fair = Math.ceil(this.queue.length / (this.idle.length + 1));
      const batch = this.queue.splice(0, Math.min(MAX_BATCH, byWork, fair));
      this.send(slot, batch);
    }
  }

  private send(slot: Slot, batch: Pending[]): void {
    const { i32 } = slot.progress;
    for (let i = 0; i < batch.length; i++) Atomics.store(i32, I32_CANCEL + i, 0);
    const tasks: WireTask[] = batch.map((p, i) => {
      p.slot = slot;
      p.index = i;
      const input = p.task.input;
      // Structured clone copies the whole underlying buffer, so send a view of exactly the input.
      const own = input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? input : input.slice();
      return { id: p.id, hash: p.task.moduleHash, input: own, limits: p.task.limits };
    });
    slot.batch = batch;
    slot.done = 0;
    slot.sentAt = performance.now();
    slot.worker.postMessage({ t: 'batch', tasks } satisfies ToWorker);
    this.arm(slot, (batch[0] as Pending).task.limits.timeoutMs);
  }

  private arm(slot: Slot, ms: number): void {
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = setTimeout(() => this.check(slot), Math.max(1, ms));
  }

  /** The backstop: is the task the worker is running now past its timeout? */
  private check(slot: Slot): void {
    slot.timer = null;
    const batch = slot.batch;
    if (batch === null || slot.dead) return;
    const idx = Atomics.load(slot.progress.i32, I32_CURRENT);
    const p = batch[idx];
    if (p === undefined) {
      // Not started yet, or finished and its results are on their way.
      this.arm(slot, 10);
      return;
    }
    const deadline = slot.progress.f64[F64_STARTED] as number + p.task.limits.timeoutMs;
    const now = Date.now();
    if (now < deadline) {
      this.arm(slot, deadline - now);
      return;
    }
    this.replace(slot, idx, failure('IM_TIMEOUT', `The task ran past its wall-clock backstop of ${p.task.limits.timeoutMs} ms and was stopped.`));
  }

  private onResults(slot: Slot, msg: FromWorker): void {
    const batch = slot.batch;
    if (batch === null || slot.dead) return;
    this.crashes = 0;
    for (const { result } of msg.results) {
      const p = batch[slot.done++];
      if (p !== undefined) this.settle(p, result);
    }
    if (slot.done < batch.length) return;
    const perTask = (performance.now() - slot.sentAt) / batch.length;
    this.taskMs = this.taskMs * 0.8 + perTask * 0.2;
    slot.batch = null;
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    this.idle.push(slot);
    this.pump();
  }

  private onCrash(slot: Slot, message: string): void {
    if (slot.dead || this.closed) return;
    const idx = Atomics.load(slot.progress.i32, I32_CURRENT);
    if (++this.crashes >= MAX_CONSECUTIVE_CRASHES && this.broken === null) {
      this.broken = `sandbox workers keep crashing: ${message}`;
    }
    this.replace(slot, idx, failure('IM_AGENT_ERROR', message));
  }

  /**
   * Stops a worker mid-batch: the task it was running gets `result`, the
   * rest of its batch goes back to the front of the queue.
   */
  private replace(slot: Slot, runningIdx: number, result: RunResult): void {
    const batch = slot.batch ?? [];
    const done = slot.done;
    void this.retire(slot);
    const running = batch[runningIdx];
    if (running !== undefined) this.settle(running, result);
    const again = batch.slice(done).filter((p) => !p.settled);
    for (const p of again) {
      p.slot = null;
      p.index = -1;
    }
    this.queue.unshift(...again);
    if (this.broken !== null) {
      for (const p of this.queue) this.settle(p, failure('IM_AGENT_ERROR', this.broken));
      this.queue = [];
      return;
    }
    if (!this.closed) this.idle.push(this.spawn());
    this.pump();
  }

  private abort(p: Pending): void {
    if (p.settled) return;
    const slot = p.slot;
    if (slot === null) {
      this.queue = this.queue.filter((q) => q !== p);
      this.settle(p, ABORTED);
      return;
    }
    const { i32 } = slot.progress;
    Atomics.store(i32, I32_CANCEL + p.index, 1);
    // The worker publishes the index before it reads the cancel flag, so if
    // it is not at p yet it will see the flag; if it is at p, stop it.
    if (Atomics.load(i32, I32_CURRENT) === p.index) this.replace(slot, p.index, ABORTED);
    else this.settle(p, ABORTED);
  }

  private settle(p: Pending, result: RunResult): void {
    if (p.settled) return;
    p.settled = true;
    if (p.signal !== undefined && p.onAbort !== undefined) p.signal.removeEventListener('abort', p.onAbort);
    p.resolve(result);
  }
}
