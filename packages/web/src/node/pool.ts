/**
 * A pool of task workers sized to the device: navigator.hardwareConcurrency ×
 * the owner's CPU share. Modules are fetched once from the coordinator
 * (content-addressed: the bytes must hash to the name), compiled once, and
 * handed to every worker. A task that must stop (pause, revoke, timeout) stops
 * with its worker, which is replaced.
 */
import { sha256Hex } from '@idlemesh/protocol';
import type { JobLimits, ModuleAbi } from '@idlemesh/protocol';
import type { FromWorker, RunResult, ToWorker } from './messages.js';

/** How long past the job's timeoutMs a task may run before its worker is stopped. */
const BACKSTOP_GRACE_MS = 5_000;

export interface PoolTask {
  hash: string;
  input: Uint8Array;
  limits: JobLimits;
}

interface Slot {
  worker: Worker;
  busy: { id: number; resolve: (r: RunResult) => void; timer: ReturnType<typeof setTimeout> } | undefined;
  /** Shrinking: terminate once the current task is done. */
  retire: boolean;
}

interface Waiting { id: number; task: PoolTask; resolve: (r: RunResult) => void; signal: AbortSignal | undefined }

export class WorkerPool {
  private slots: Slot[] = [];
  private queue: Waiting[] = [];
  private nextId = 1;
  private target: number;
  private readonly modules = new Map<string, { module: WebAssembly.Module; abi: ModuleAbi }>();
  private readonly loading = new Map<string, Promise<void>>();

  constructor(size: number, private readonly origin: string = location.origin) {
    this.target = Math.max(1, size);
    this.fill();
  }

  get size(): number {
    return this.target;
  }

  get busyCount(): number {
    return this.slots.filter((s) => s.busy !== undefined).length;
  }

  resize(size: number): void {
    this.target = Math.max(1, size);
    const live = this.slots.filter((s) => !s.retire);
    for (const s of live.slice(this.target)) {
      s.retire = true;
      if (s.busy === undefined) this.drop(s);
    }
    this.fill();
    this.pump();
  }

  /** Fetches, checks and compiles a module once; every worker gets it. */
  ensureModule(hash: string): Promise<void> {
    if (this.modules.has(hash)) return Promise.resolve();
    let p = this.loading.get(hash);
    if (p === undefined) {
      p = this.load(hash).finally(() => this.loading.delete(hash));
      this.loading.set(hash, p);
    }
    return p;
  }

  run(task: PoolTask, signal?: AbortSignal): Promise<RunResult> {
    return new Promise((resolve) => {
      const w: Waiting = { id: this.nextId++, task, resolve, signal };
      if (signal?.aborted) {
        resolve(aborted());
        return;
      }
      signal?.addEventListener('abort', () => this.abort(w.id), { once: true });
      this.queue.push(w);
      this.pump();
    });
  }

  /** Measures fuel per second in a worker of its own (not one of the task slots). */
  calibrate(durationMs = 300): Promise<number> {
    return new Promise((resolve) => {
      const w = newWorker();
      const done = (v: number): void => {
        w.terminate();
        resolve(v);
      };
      w.onmessage = (e: MessageEvent<FromWorker>) => done(e.data.t === 'calibrated' ? e.data.fuelPerSec : 0);
      w.onerror = () => done(0);
      w.postMessage({ t: 'calibrate', durationMs } satisfies ToWorker);
    });
  }

  close(): void {
    for (const w of this.queue) w.resolve(aborted());
    this.queue = [];
    for (const s of this.slots) this.drop(s, aborted());
    this.slots = [];
  }

  private async load(hash: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`invalid module hash ${hash}`);
    const url = `${this.origin}/v1/modules/${hash}/instrumented`;
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) {
      const body = await res.text().catch(() => '');
      throw new Error(`GET ${url} answered ${res.status}${body === '' ? '' : `: ${body.slice(0, 300)}`}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const abi = res.headers.get('x-idlemesh-abi');
    if (abi !== 'idlemesh/1' && abi !== 'wasi_snapshot_preview1') throw new Error(`GET ${url}: missing or unknown x-idlemesh-abi header`);
    if ((await sha256Hex(bytes)) !== hash) throw new Error(`GET ${url}: body does not match its sha256`);
    const module = await WebAssembly.compile(bytes);
    this.modules.set(hash, { module, abi });
    for (const s of this.slots) s.worker.postMessage({ t: 'module', hash, module, abi } satisfies ToWorker);
  }

  private fill(): void {
    while (this.slots.filter((s) => !s.retire).length < this.target) {
      const worker = newWorker();
      const slot: Slot = { worker, busy: undefined, retire: false };
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.onResult(slot, e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        this.replace(slot, { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: `worker failed: ${e.message}` } });
      };
      for (const [hash, m] of this.modules) worker.postMessage({ t: 'module', hash, module: m.module, abi: m.abi } satisfies ToWorker);
      this.slots.push(slot);
    }
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.busy !== undefined || slot.retire) continue;
      const w = this.queue.shift();
      if (w === undefined) return;
      const timer = setTimeout(() => {
        this.replace(slot, { ok: false, fuel: 0, error: { code: 'IM_TIMEOUT', message: `task ran past ${w.task.limits.timeoutMs} ms` } });
      }, w.task.limits.timeoutMs + BACKSTOP_GRACE_MS);
      slot.busy = { id: w.id, resolve: w.resolve, timer };
      // The input is copied, not transferred: the caller keeps it for the receipt.
      slot.worker.postMessage({ t: 'run', id: w.id, hash: w.task.hash, input: w.task.input, limits: w.task.limits } satisfies ToWorker);
    }
  }

  private onResult(slot: Slot, msg: FromWorker): void {
    if (msg.t !== 'result' || slot.busy?.id !== msg.id) return;
    const { resolve, timer } = slot.busy;
    clearTimeout(timer);
    slot.busy = undefined;
    resolve(msg.result);
    if (slot.retire) this.drop(slot);
    this.pump();
  }

  private abort(id: number): void {
    const i = this.queue.findIndex((w) => w.id === id);
    if (i >= 0) {
      const [w] = this.queue.splice(i, 1);
      w?.resolve(aborted());
      return;
    }
    const slot = this.slots.find((s) => s.busy?.id === id);
    if (slot) this.replace(slot, aborted());
  }

  /** Stops a slot's worker (its task ends with `result`) and starts a fresh one. */
  private replace(slot: Slot, result: RunResult): void {
    this.drop(slot, result);
    this.fill();
    this.pump();
  }

  private drop(slot: Slot, result?: RunResult): void {
    slot.worker.terminate();
    if (slot.busy) {
      clearTimeout(slot.busy.timer);
      slot.busy.resolve(result ?? aborted());
      slot.busy = undefined;
    }
    this.slots = this.slots.filter((s) => s !== slot);
  }
}

function newWorker(): Worker {
  return new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'idlemesh-task' });
}

function aborted(): RunResult {
  return { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: 'aborted' } };
}
