/**
 * Agent side: warm pools of code interpreters. Every task gets an
 * interpreter no other task has touched: a worker thread that loaded it in
 * advance, runs that one task and is then terminated, while a fresh one is
 * started in the background. Crashes, aborts and wall-clock overruns end the
 * worker, never the process, and come back as results.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { ImError } from '@idlemesh/protocol';
import type { FromWorker, ToWorker, WorkerRole } from './messages.js';
import { quickJsModule } from './js/assets.js';
import { pythonAssets } from './python/assets.js';
import { checkTask, errored, result } from './task.js';
import type { CodeLanguage, CodeResult, CodeSandboxOptions, CodeTask } from './types.js';

const WORKER_URL = new URL('./worker.js', import.meta.url);
/** JS stops itself at its deadline; the outside cap waits this much longer before it kills the worker. */
const WALL_GRACE_MS = 250;
/** Interpreters that fail to start this many times in a row mean a broken install, not bad luck. */
const MAX_START_FAILURES = 3;
/**
 * The JS heap of a worker (Pyodide's file system and glue, not its wasm
 * heap) and the native stack the interpreters recurse on. Exceeding the heap
 * ends the worker, not the process.
 */
const LIMITS: Record<CodeLanguage, ResourceLimits> = {
  // CPython's C-recursion guard watches the shadow stack, which V8's native stack outgrows;
  // a large native stack keeps mixed Python/C recursion within the default recursion limit far from it.
  python: { maxOldGenerationSizeMb: 512, stackSizeMb: 64 },
  js: { maxOldGenerationSizeMb: 256, stackSizeMb: 16 },
};

export const ABORTED_MESSAGE = 'aborted';

interface ResolvedOptions {
  pythonPool: number;
  jsPool: number;
  cacheDir: string;
}

export function resolveCodeSandboxOptions(opts: CodeSandboxOptions): ResolvedOptions {
  const known = new Set(['pythonPool', 'jsPool', 'cacheDir']);
  const unknown = Object.keys(opts).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new ImError('IM_UNKNOWN_FIELD', `Unknown CodeSandbox options: ${unknown.join(', ')}.`);
  const pool = (name: string, v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    if (!Number.isInteger(v) || v < 0 || v > 64) throw new ImError('IM_VALIDATION', `${name} must be a whole number from 0 to 64.`);
    return v;
  };
  return {
    pythonPool: pool('pythonPool', opts.pythonPool, 1),
    jsPool: pool('jsPool', opts.jsPool, 1),
    cacheDir: opts.cacheDir ?? join(homedir(), '.cache', 'idlemesh'),
  };
}

interface Job {
  task: CodeTask;
  resolve: (r: CodeResult) => void;
  settled: boolean;
  slot: Slot | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Slot {
  worker: Worker | null;
  state: 'empty' | 'starting' | 'ready' | 'busy';
  job: Job | null;
  timer: NodeJS.Timeout | null;
}

class Pool {
  private readonly slots: Slot[];
  private queue: Job[] = [];
  private closed = false;
  private failures = 0;
  private broken: string | null = null;
  private waiters: Array<() => void> = [];
  private readonly stopping = new Set<Promise<number>>();

  constructor(
    private readonly language: CodeLanguage,
    size: number,
    private readonly warm: boolean,
    private readonly role: () => Promise<WorkerRole>,
  ) {
    this.slots = Array.from({ length: Math.max(1, size) }, (): Slot => ({ worker: null, state: 'empty', job: null, timer: null }));
    if (warm) this.fill();
  }

  submit(task: CodeTask, signal: AbortSignal | undefined): Promise<CodeResult> {
    if (this.broken !== null) return Promise.resolve(errored('IM_AGENT_ERROR', this.broken));
    return new Promise<CodeResult>((resolve) => {
      const job: Job = { task, resolve, settled: false, slot: null, signal, onAbort: undefined };
      if (signal !== undefined) {
        job.onAbort = () => this.abort(job);
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  /** Resolves once every slot holds a started interpreter (or the pool gave up). */
  warmed(): Promise<void> {
    if (!this.warm || this.isWarm()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue) this.settle(job, errored('IM_UNAVAILABLE', 'The code sandbox was closed before the task ran.'));
    this.queue = [];
    for (const slot of this.slots) {
      const job = slot.job;
      this.retire(slot);
      if (job !== null) this.settle(job, errored('IM_UNAVAILABLE', 'The code sandbox was closed while the task ran.'));
    }
    this.wake();
    await Promise.all([...this.stopping]);
  }

  private isWarm(): boolean {
    return this.broken !== null || this.closed || this.slots.every((s) => s.state === 'ready' || s.state === 'busy');
  }

  private wake(): void {
    if (!this.isWarm() && !this.closed) return;
    for (const w of this.waiters.splice(0)) w();
  }

  /** Starts interpreters: all slots when warm, else as many as queued tasks need. */
  private fill(): void {
    if (this.closed || this.broken !== null) return;
    let wanted = this.warm ? Infinity : this.queue.length - this.slots.filter((s) => s.state === 'starting' || s.state === 'ready').length;
    for (const slot of this.slots) {
      if (wanted <= 0) break;
      if (slot.state !== 'empty') continue;
      wanted--;
      this.start(slot);
    }
  }

  private start(slot: Slot): void {
    slot.state = 'starting';
    this.role().then((role) => {
      if (this.closed || slot.state !== 'starting' || slot.worker !== null) return;
      // No environment and no inherited flags (loaders, --input-type, inspectors): the worker runs only its interpreter.
      const w = new Worker(WORKER_URL, { workerData: role, env: {}, execArgv: [], resourceLimits: LIMITS[this.language] });
      slot.worker = w;
      w.on('message', (msg: FromWorker) => this.onMessage(slot, w, msg));
      w.on('error', (err: Error & { code?: string }) => this.onDeath(slot, w, err.message, err.code));
      w.on('exit', (code) => this.onDeath(slot, w, `exited with code ${code}`));
    }, (err: unknown) => {
      slot.state = 'empty';
      this.startFailed(err instanceof Error ? err.message : String(err));
    });
  }

  private onMessage(slot: Slot, w: Worker, msg: FromWorker): void {
    if (slot.worker !== w) return;
    if (msg.t === 'ready') {
      slot.state = 'ready';
      this.failures = 0;
      this.wake();
      this.pump();
    } else if (msg.t === 'result') {
      const job = slot.job;
      this.retire(slot);
      if (job !== null) this.settle(job, msg.result);
      this.refill();
    } else if (msg.t === 'fatal') {
      this.onDeath(slot, w, msg.message);
    }
  }

  private onDeath(slot: Slot, w: Worker, message: string, code?: string): void {
    if (slot.worker !== w) return;
    const job = slot.job;
    const wasStarting = slot.state === 'starting';
    this.retire(slot);
    if (job !== null) {
      this.settle(job, code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? errored('IM_MEMORY_EXCEEDED', 'The interpreter ran out of host memory and was stopped.')
        : errored('IM_TRAP', `The interpreter's worker died: ${message}`));
    } else if (wasStarting) {
      this.startFailed(message);
    }
    this.refill();
  }

  private startFailed(message: string): void {
    if (++this.failures >= MAX_START_FAILURES && this.broken === null) {
      this.broken = `The ${this.language} sandbox cannot start an interpreter: ${message}`;
      for (const job of this.queue) this.settle(job, errored('IM_AGENT_ERROR', this.broken));
      this.queue = [];
      this.wake();
      return;
    }
    this.refill();
  }

  private refill(): void {
    this.fill();
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const slot = this.slots.find((s) => s.state === 'ready');
      if (slot === undefined) {
        this.fill();
        return;
      }
      this.dispatch(slot, this.queue.shift() as Job);
    }
  }

  private dispatch(slot: Slot, job: Job): void {
    slot.state = 'busy';
    slot.job = job;
    job.slot = slot;
    (slot.worker as Worker).postMessage({ t: 'run', task: job.task } satisfies ToWorker);
    const ms = job.task.limits.timeoutMs + WALL_GRACE_MS;
    slot.timer = setTimeout(() => {
      if (slot.job !== job) return;
      this.retire(slot);
      this.settle(job, result('timed-out', 0, '', '', 'IM_TIMEOUT', `The task ran past its wall-clock cap of ${job.task.limits.timeoutMs} ms and its interpreter was stopped.`));
      this.refill();
    }, ms);
  }

  private abort(job: Job): void {
    if (job.settled) return;
    const slot = job.slot;
    if (slot === null) this.queue = this.queue.filter((q) => q !== job);
    else this.retire(slot);
    this.settle(job, errored('IM_AGENT_ERROR', ABORTED_MESSAGE));
    this.refill();
  }

  private retire(slot: Slot): void {
    const w = slot.worker;
    if (slot.timer !== null) clearTimeout(slot.timer);
    slot.timer = null;
    slot.worker = null;
    slot.job = null;
    slot.state = 'empty';
    if (w !== null) {
      const p = w.terminate().catch(() => -1);
      this.stopping.add(p);
      void p.then(() => this.stopping.delete(p));
    }
  }

  private settle(job: Job, r: CodeResult): void {
    if (job.settled) return;
    job.settled = true;
    job.slot = null;
    if (job.signal !== undefined && job.onAbort !== undefined) job.signal.removeEventListener('abort', job.onAbort);
    job.resolve(r);
  }
}

export class CodeSandbox {
  private readonly pools: Record<CodeLanguage, Pool>;
  private closed = false;

  constructor(opts: CodeSandboxOptions = {}) {
    const o = resolveCodeSandboxOptions(opts);
    const python = (): Promise<WorkerRole> => pythonAssets(o.cacheDir).then((a) => ({ role: 'python', module: a.module, snapshot: a.snapshot, indexURL: a.indexURL }));
    this.pools = {
      js: new Pool('js', o.jsPool, o.jsPool > 0, () => quickJsModule().then((module) => ({ role: 'js', module }))),
      python: new Pool('python', o.pythonPool, o.pythonPool > 0, python),
    };
  }

  /** Resolves when the warm pools are full; a task sent before that waits for its interpreter. */
  async ready(): Promise<void> {
    await Promise.all([this.pools.js.warmed(), this.pools.python.warmed()]);
  }

  /** Never rejects: every failure, the sandbox's own included, is a result. */
  run(task: CodeTask, signal?: AbortSignal): Promise<CodeResult> {
    let problem: string | null;
    try {
      problem = checkTask(task);
    } catch (err) {
      problem = `the task could not be read: ${(err as Error).message}`;
    }
    if (problem !== null) return Promise.resolve(errored('IM_VALIDATION', `The task is invalid: ${problem}.`));
    if (this.closed) return Promise.resolve(errored('IM_UNAVAILABLE', 'The code sandbox is closed.'));
    if (signal?.aborted === true) return Promise.resolve(errored('IM_AGENT_ERROR', ABORTED_MESSAGE));
    return this.pools[task.language].submit(task, signal);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.pools.js.close(), this.pools.python.close()]);
  }
}

export interface RunCodeOptions {
  signal?: AbortSignal;
  /** See CodeSandboxOptions.cacheDir. */
  cacheDir?: string;
}

/**
 * One task in an interpreter started for it: pays the interpreter's start
 * (about half a second for Python once its assets are cached). Agents keep a
 * CodeSandbox instead.
 */
export async function runCode(task: CodeTask, opts: RunCodeOptions = {}): Promise<CodeResult> {
  const sb = new CodeSandbox({ pythonPool: 0, jsPool: 0, ...(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir }) });
  try {
    return await sb.run(task, opts.signal);
  } finally {
    await sb.close();
  }
}
