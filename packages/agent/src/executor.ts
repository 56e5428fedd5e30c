import { base64ToBytes, bytesToBase64, sha256HexSync } from '@idlemesh/protocol';
import { RUNTIME_VERSION } from '@idlemesh/runtime';
import type { LeasedTask, TaskOutcome } from '@idlemesh/protocol';
import type { Clock } from './limits.js';
import type { ModuleCache } from './modules.js';
import type { RunResult, TaskSandbox } from './sandbox.js';

/** How long past the job's timeoutMs the agent waits before it stops a task the sandbox did not. */
const BACKSTOP_GRACE_MS = 5_000;
/**
 * Tiny tasks are handed to the sandbox several per slot, so its workers get
 * them in batches instead of one message round trip each. Aim for this much
 * queued work per slot, at most PIPELINE_MAX tasks.
 */
const PIPELINE_TARGET_MS = 10;
const PIPELINE_MAX = 16;

export interface TaskRef {
  taskId: string;
  attempt: number;
}

interface Entry {
  task: LeasedTask;
  key: string;
  /** Revoked or released: its outcome, if any, is dropped. */
  cancelled: boolean;
  abort: AbortController;
}

function keyOf(t: TaskRef): string {
  return `${t.taskId}#${t.attempt}`;
}

/**
 * Holds leased tasks: runs up to maxTasks at once in the sandbox, queues the
 * rest, and turns each run into a TaskOutcome. Cancelled tasks report nothing.
 */
export class Executor {
  private queue: Entry[] = [];
  private head = 0;
  private readonly running = new Map<string, Entry>();
  private idleWaiters: (() => void)[] = [];
  private memoryInUse = 0;
  /** Moving average of one task's run time (ms), from tasks run without queueing. */
  private taskMs = 50;

  constructor(
    private readonly deps: {
      sandbox: TaskSandbox;
      modules: ModuleCache;
      maxTasks: number;
      /** Linear memory all running tasks may use together (their limits.memoryMb summed). */
      maxMemoryMb: number;
      clock: Clock;
      onOutcome: (o: TaskOutcome) => void;
      /** A task left the executor (finished or cancelled): capacity changed. */
      onSettled: () => void;
    },
  ) {}

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.queue.length - this.head;
  }

  /** Tasks held: running plus queued. */
  get held(): number {
    return this.running.size + this.queuedCount;
  }

  /** Every task held (running or queued) that still counts. */
  heldRefs(): TaskRef[] {
    const refs: TaskRef[] = [];
    for (const e of this.running.values()) if (!e.cancelled) refs.push({ taskId: e.task.taskId, attempt: e.task.attempt });
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i];
      if (e && !e.cancelled) refs.push({ taskId: e.task.taskId, attempt: e.task.attempt });
    }
    return refs;
  }

  add(tasks: readonly LeasedTask[]): void {
    for (const task of tasks) {
      const key = keyOf(task);
      if (this.running.has(key) || this.queue.some((e, i) => i >= this.head && e.key === key)) continue;
      this.queue.push({ task, key, cancelled: false, abort: new AbortController() });
    }
    this.pump();
  }

  /** Drops these tasks (any attempt): dequeues queued ones, aborts running ones. */
  revoke(taskIds: readonly string[]): TaskRef[] {
    const ids = new Set(taskIds);
    return [...this.removeQueued((e) => ids.has(e.task.taskId)), ...this.abortRunning((e) => ids.has(e.task.taskId))];
  }

  /** Removes every task not yet started and returns them (to release). */
  takeQueued(): TaskRef[] {
    return this.removeQueued(() => true);
  }

  /** Aborts every running task and returns them (to release); their outcomes are dropped. */
  abortAll(): TaskRef[] {
    return this.abortRunning(() => true);
  }

  /** Resolves when nothing runs (queued tasks are started first). */
  whenIdle(): Promise<void> {
    if (this.held === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private removeQueued(pred: (e: Entry) => boolean): TaskRef[] {
    const keep: Entry[] = [];
    const out: TaskRef[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i] as Entry;
      if (pred(e)) out.push({ taskId: e.task.taskId, attempt: e.task.attempt });
      else keep.push(e);
    }
    this.queue = keep;
    this.head = 0;
    if (out.length > 0) this.settled();
    return out;
  }

  private abortRunning(pred: (e: Entry) => boolean): TaskRef[] {
    const out: TaskRef[] = [];
    for (const e of this.running.values()) {
      if (e.cancelled || !pred(e)) continue;
      e.cancelled = true;
      e.abort.abort(new Error('task cancelled'));
      out.push({ taskId: e.task.taskId, attempt: e.task.attempt });
    }
    return out;
  }

  /** Observed run time of one task (ms), a moving average. */
  get averageTaskMs(): number {
    return this.taskMs;
  }

  /** Tasks handed to the sandbox at once: maxTasks run, the rest wait there in batches. */
  private get depth(): number {
    return Math.max(1, Math.min(PIPELINE_MAX, Math.floor(PIPELINE_TARGET_MS / this.taskMs)));
  }

  private pump(): void {
    // Memory is checked against every task in flight, as if all ran at once: never over the cap.
    while (this.running.size < this.deps.maxTasks * this.depth && this.head < this.queue.length) {
      const e = this.queue[this.head] as Entry;
      // A task that alone exceeds the cap still runs, by itself, rather than never.
      if (this.running.size > 0 && this.memoryInUse + e.task.limits.memoryMb > this.deps.maxMemoryMb) break;
      this.head++;
      this.running.set(e.key, e);
      this.memoryInUse += e.task.limits.memoryMb;
      void this.run(e);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private async run(e: Entry): Promise<void> {
    const { task } = e;
    const startedAt = this.deps.clock.now();
    const t0 = performance.now();
    const queuedBehind = Math.max(0, this.running.size - this.deps.maxTasks);
    const depth = this.depth;
    let timedOut = false;
    let backstop: NodeJS.Timeout | undefined;
    let result: RunResult | undefined;
    try {
      try {
        await this.deps.modules.ensure(task.module);
      } catch (err) {
        throw new Error(`module ${task.module} unavailable: ${(err as Error).message}`, { cause: err });
      }
      if (!e.cancelled) {
        backstop = setTimeout(() => {
          timedOut = true;
          e.abort.abort(new Error('timeout'));
        }, (task.limits.timeoutMs + BACKSTOP_GRACE_MS) * depth);
        result = await this.deps.sandbox.run({ moduleHash: task.module, input: base64ToBytes(task.input), limits: task.limits }, e.abort.signal);
      }
    } catch (err) {
      result = { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: (err as Error).message } };
    }
    if (backstop !== undefined) clearTimeout(backstop);
    if (result !== undefined && queuedBehind === 0) this.taskMs = 0.8 * this.taskMs + 0.2 * Math.max(0.01, performance.now() - t0);
    this.running.delete(e.key);
    this.memoryInUse -= task.limits.memoryMb;
    try {
      if (!e.cancelled && result !== undefined) {
        if (timedOut && !result.ok) result = { ok: false, fuel: result.fuel, error: { code: 'IM_TIMEOUT', message: `task ran past ${task.limits.timeoutMs} ms` } };
        this.deps.onOutcome(toOutcome(task, result, startedAt, this.deps.clock.now()));
      }
    } finally {
      this.pump();
      this.settled();
    }
  }

  private settled(): void {
    this.deps.onSettled();
    if (this.held === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}

function toOutcome(task: LeasedTask, r: RunResult, startedAt: number, endedAt: number): TaskOutcome {
  const fuel = Number.isFinite(r.fuel) ? Math.max(0, Math.floor(r.fuel)) : 0;
  // The receipt fields: which input ran, on what.
  const base = {
    taskId: task.taskId, attempt: task.attempt, fuel, startedAt, endedAt: Math.max(startedAt, endedAt),
    inputHash: sha256HexSync(base64ToBytes(task.input)), runtime: task.runtime, runtimeVersion: RUNTIME_VERSION,
  };
  if (r.ok) return { ...base, ok: true, output: bytesToBase64(r.output) };
  return { ...base, ok: false, error: { code: r.error.code.slice(0, 64), message: r.error.message.slice(0, 2000) } };
}
