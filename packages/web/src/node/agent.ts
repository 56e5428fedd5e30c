/**
 * A browser tab as a node: the agent protocol of packages/agent (hello →
 * signed auth → credit → lease → signed results → ack, heartbeats, release)
 * over the page's WebSocket, with the task runner of packages/runtime in Web
 * Workers. Results are signed like the Node agent's: one signature per batch,
 * over the head of the Merkle tree of their receipts (signResults).
 */
import {
  PROTOCOL_VERSION, ServerMessage, base64ToBytes, bytesToBase64, sha256HexSync, signMessage, signResults,
} from '@idlemesh/protocol';
import type { AgentMessage, Capabilities, LeasedTask, NodeKeyPair, ResultAck, TaskOutcome } from '@idlemesh/protocol';
import { loadOrCreateNodeKey } from './key.js';
import type { RunResult } from './messages.js';
import { OwnerWatch, pauseReason } from './owner.js';
import type { OwnerState } from './owner.js';
import { WorkerPool } from './pool.js';

export const BROWSER_AGENT_VERSION = 'browser-0.1.0';
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const RESULTS_BATCH = 256;

export type NodeStatus = 'stopped' | 'starting' | 'connecting' | 'active' | 'paused';

export interface RecentTask {
  taskId: string;
  ok: boolean;
  fuel: number;
  ms: number;
  status: 'sent' | 'accepted' | 'duplicate' | 'rejected';
}

export interface NodeSnapshot {
  status: NodeStatus;
  nodeId: string | undefined;
  pauseReason: string | undefined;
  owner: OwnerState | undefined;
  workers: number;
  /** The task slots (maxTasks) the coordinator was last told: at auth, then by `slots` messages. */
  slots: number | undefined;
  share: number;
  /** Leases held (running or about to): never more than the slots. */
  running: number;
  /** Tasks leased to this node since it started. */
  leased: number;
  released: number;
  /** Results the coordinator accepted: succeeded and failed tasks. */
  accepted: number;
  failed: number;
  rejected: number;
  /** Fuel of the accepted results (1 EU = 1e9 fuel). */
  fuel: number;
  fuelPerSec: number;
  lastError: string | undefined;
  recent: RecentTask[];
}

interface Held {
  task: LeasedTask;
  abort: AbortController;
  cancelled: boolean;
}

const refKey = (t: { taskId: string; attempt: number }): string => `${t.taskId}#${t.attempt}`;

export function workersFor(share: number): number {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  return Math.max(1, Math.round(cores * share));
}

export class BrowserNode {
  private snap: NodeSnapshot;
  private readonly listeners = new Set<(s: NodeSnapshot) => void>();
  private key: NodeKeyPair | undefined;
  private pool: WorkerPool | undefined;
  private owner: OwnerWatch | undefined;
  private ws: WebSocket | undefined;
  private ready = false;
  private stopped = true;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private serverCredit = 0;
  private readonly held = new Map<string, Held>();
  private readonly unacked = new Map<string, TaskOutcome>();
  private toSend: TaskOutcome[] = [];
  /** Results being signed: out of `toSend`, not yet on the wire. */
  private signing = 0;
  private readonly batches = new Map<string, string[]>();
  private readonly taskMs = new Map<string, number>();

  constructor(private readonly opts: { origin: string; share: number; name?: string }) {
    this.snap = {
      status: 'stopped', nodeId: undefined, pauseReason: undefined, owner: undefined, workers: workersFor(opts.share), slots: undefined, share: opts.share,
      running: 0, leased: 0, released: 0, accepted: 0, failed: 0, rejected: 0, fuel: 0, fuelPerSec: 0, lastError: undefined, recent: [],
    };
  }

  get snapshot(): NodeSnapshot {
    return this.snap;
  }

  subscribe(fn: (s: NodeSnapshot) => void): () => void {
    this.listeners.add(fn);
    fn(this.snap);
    return () => {
      this.listeners.delete(fn);
    };
  }

  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.update({ status: 'starting', lastError: undefined });
    try {
      if (typeof crypto.subtle === 'undefined') throw new Error('WebCrypto needs a secure context (https, or http://localhost)');
      const { key } = await loadOrCreateNodeKey();
      this.key = key;
      this.update({ nodeId: key.publicKeyHex });
      this.owner = new OwnerWatch((s) => this.onOwner(s));
      await this.owner.ready();
      this.pool = new WorkerPool(workersFor(this.opts.share), this.opts.origin);
      this.update({ owner: this.owner.state, pauseReason: pauseReason(this.owner.state), workers: this.pool.size });
      this.update({ fuelPerSec: await this.pool.calibrate(300) });
    } catch (err) {
      this.stopped = true;
      this.update({ status: 'stopped', lastError: `cannot start: ${(err as Error).message}` });
      return;
    }
    if (this.stopped) return;
    this.connect();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.abortHeld('stopping');
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.clearConnTimers();
    this.ws?.close(1000, 'node stopped');
    this.ws = undefined;
    this.ready = false;
    this.owner?.close();
    this.owner = undefined;
    this.pool?.close();
    this.pool = undefined;
    this.update({ status: 'stopped', running: 0 });
  }

  /**
   * The owner's CPU share, 0…1: resizes the worker pool and tells the
   * coordinator the new slot count at once (`slots`), so it leases no more
   * than that. Leases beyond a smaller window go back now (the owner wants
   * the CPU back, as with Pause), the most recently leased first.
   */
  setShare(share: number): void {
    this.opts.share = share;
    const n = workersFor(share);
    this.pool?.resize(n);
    this.update({ share, workers: n });
    this.advertiseSlots();
  }

  /** Tells the coordinator the pool's size when it differs from what it was told (a reconnect's auth tells it anyway). */
  private advertiseSlots(): void {
    const n = this.pool?.size;
    if (!this.ready || n === undefined || n === this.snap.slots) return;
    const excess = [...this.held].slice(n);
    for (const [k, h] of excess) this.cancel(k, h);
    this.release(excess.map(([, h]) => ({ taskId: h.task.taskId, attempt: h.task.attempt })), 'the owner lowered the CPU share');
    // The coordinator forgets this node's credit on `slots`; it is granted again for the new window.
    if (this.send({ type: 'slots', maxTasks: n })) {
      this.serverCredit = 0;
      this.update({ slots: n, running: this.held.size });
    }
    this.maybeCredit();
  }

  setPausedByOwner(paused: boolean): void {
    this.owner?.setPausedByOwner(paused);
  }

  // ---- connection ---------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    const url = new URL('/v1/agent', this.opts.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.update({ status: 'connecting' });
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e: MessageEvent) => {
      if (this.ws === ws && typeof e.data === 'string') this.onData(ws, e.data);
    };
    ws.onclose = (e: CloseEvent) => {
      if (this.ws !== ws) return;
      this.onClose(e.code, e.reason);
    };
  }

  private onData(ws: WebSocket, text: string): void {
    let msg: ServerMessage;
    try {
      const r = ServerMessage.safeParse(JSON.parse(text));
      if (!r.success) return;
      msg = r.data;
    } catch {
      return;
    }
    if (!this.ready) {
      if (msg.type === 'hello') void this.auth(ws, msg.challenge, msg.v);
      else if (msg.type === 'welcome') this.onWelcome(msg.heartbeatMs);
      else if (msg.type === 'error') {
        this.update({ lastError: `${msg.error.code}: ${msg.error.message}` });
        if (!msg.error.retryable) this.attempt = Math.max(this.attempt, 6);
      }
      return;
    }
    switch (msg.type) {
      case 'lease':
        this.onLease(msg.tasks);
        return;
      case 'ack':
        this.onAck(msg.batch, msg.results);
        return;
      case 'revoke': {
        // The coordinator credits a revoked lease back itself (its result never comes): so does this side.
        const revoked = new Set(msg.taskIds);
        for (const [k, h] of this.held) {
          if (!revoked.has(h.task.taskId)) continue;
          this.cancel(k, h);
          this.serverCredit++;
        }
        for (const o of this.unacked.values()) if (revoked.has(o.taskId)) this.serverCredit++;
        this.update({ running: this.held.size });
        this.maybeCredit();
        return;
      }
      case 'error':
        this.onError(msg.error.code, msg.error.message, msg.error.retryable, msg.ref);
        return;
      default:
        return;
    }
  }

  private async auth(ws: WebSocket, challenge: string, v: number): Promise<void> {
    if (!this.key) return;
    if (v !== PROTOCOL_VERSION) this.update({ lastError: `the coordinator speaks protocol ${v}, this page ${PROTOCOL_VERSION}` });
    try {
      const capabilities = this.capabilities();
      const msg = await signMessage(this.key, 'auth', { v: PROTOCOL_VERSION, challenge, capabilities }, Date.now());
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify(msg));
        this.update({ slots: capabilities.maxTasks });
      }
    } catch (err) {
      this.update({ lastError: `cannot sign: ${(err as Error).message}` });
      ws.close();
    }
  }

  private capabilities(): Capabilities {
    const cores = Math.min(4096, Math.max(1, navigator.hardwareConcurrency || 1));
    const gib = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 2;
    const caps: Capabilities = {
      runtimes: ['wasm'],
      cores,
      memoryMb: Math.max(256, Math.min(4096, Math.floor((gib * 1024) / 2))),
      arch: 'wasm32',
      os: browserName().slice(0, 32),
      gpus: [],
      maxTasks: Math.min(1024, this.pool?.size ?? 1),
      benchmark: { fuelPerSec: Math.max(0, this.snap.fuelPerSec) },
      agentVersion: BROWSER_AGENT_VERSION,
      name: (this.opts.name ?? `browser ${browserName()}`).slice(0, 200),
    };
    return caps;
  }

  private onWelcome(heartbeatMs: number): void {
    this.ready = true;
    this.attempt = 0;
    this.serverCredit = 0;
    const reason = this.owner ? pauseReason(this.owner.state) : undefined;
    this.update({ status: reason === undefined ? 'active' : 'paused', pauseReason: reason, lastError: undefined });
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), Math.max(100, heartbeatMs));
    this.send({ type: 'holding', tasks: [...[...this.held.values()].map((h) => ({ taskId: h.task.taskId, attempt: h.task.attempt })), ...[...this.unacked.values()].map((o) => ({ taskId: o.taskId, attempt: o.attempt }))] });
    this.batches.clear();
    this.toSend = [...this.unacked.values()];
    this.flushSoon(0);
    // The share may have changed between the signed auth and this welcome.
    this.advertiseSlots();
    this.maybeCredit();
  }

  private onClose(code: number, reason: string): void {
    const was = this.ready;
    this.ready = false;
    this.ws = undefined;
    this.serverCredit = 0;
    this.clearConnTimers();
    // The coordinator hands a disconnected node's leases to others: stop ours.
    for (const [k, h] of this.held) this.cancel(k, h);
    if (this.stopped) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.update({ status: 'connecting', running: 0, ...(was || code !== 1006 ? { lastError: `disconnected (${code}${reason ? ` ${reason}` : ''}); reconnecting in ${Math.round(delay / 100) / 10} s` } : { lastError: `cannot reach the coordinator; retrying in ${Math.round(delay / 100) / 10} s` }) });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
  }

  private clearConnTimers(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.heartbeatTimer = undefined;
    this.flushTimer = undefined;
  }

  private send(msg: AgentMessage): boolean {
    if (!this.ready || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private sendHeartbeat(): void {
    const paused = this.snap.status === 'paused';
    const hb: AgentMessage = { type: 'heartbeat', state: paused ? 'paused' : 'active', running: this.held.size };
    if (paused && this.snap.pauseReason !== undefined) hb.reason = this.snap.pauseReason.slice(0, 200);
    this.send(hb);
  }

  // ---- owner limits -------------------------------------------------------------

  private onOwner(s: OwnerState): void {
    const reason = pauseReason(s);
    const status = this.snap.status;
    this.update({ owner: s, pauseReason: reason });
    if (!this.ready) return;
    if (reason !== undefined && status === 'active') {
      // Paused: no credit, nothing held. What was leased goes back at once.
      this.update({ status: 'paused' });
      this.serverCredit = 0;
      this.sendHeartbeat();
      this.abortHeld(reason);
    } else if (reason !== undefined && status === 'paused') {
      this.sendHeartbeat();
    } else if (reason === undefined && status === 'paused') {
      this.update({ status: 'active' });
      this.sendHeartbeat();
      this.maybeCredit();
    }
  }

  private abortHeld(reason: string): void {
    const refs: Array<{ taskId: string; attempt: number }> = [];
    for (const [k, h] of this.held) {
      refs.push({ taskId: h.task.taskId, attempt: h.task.attempt });
      this.cancel(k, h);
    }
    this.release(refs, reason);
    this.update({ running: 0 });
  }

  private cancel(k: string, h: Held): void {
    h.cancelled = true;
    h.abort.abort();
    this.held.delete(k);
  }

  private release(tasks: Array<{ taskId: string; attempt: number }>, reason: string): void {
    if (tasks.length === 0) return;
    this.send({ type: 'release', tasks, reason: reason.slice(0, 200) });
    this.update({ released: this.snap.released + tasks.length });
  }

  // ---- work ---------------------------------------------------------------------

  /** Leases the coordinator counts against this node: held, plus finished ones whose result is not on the wire yet. */
  private outstanding(): number {
    return this.held.size + this.toSend.length + this.signing;
  }

  /**
   * Tops the coordinator's credit up to one lease per worker (the slots
   * advertised). Results go out before the credit that replaces them, and
   * the coordinator takes messages in order, so it never sees more leases
   * out than slots.
   */
  private maybeCredit(): void {
    if (!this.ready || this.snap.status !== 'active' || !this.pool) return;
    const want = this.pool.size - this.outstanding() - this.serverCredit;
    if (want <= 0) return;
    if (this.send({ type: 'credit', n: want })) this.serverCredit += want;
  }

  private onLease(tasks: LeasedTask[]): void {
    this.serverCredit = Math.max(0, this.serverCredit - tasks.length);
    if (tasks.length === 0) return;
    if (this.snap.status !== 'active') {
      // Leased before the coordinator saw the pause: hand them straight back.
      this.release(tasks.map((t) => ({ taskId: t.taskId, attempt: t.attempt })), this.snap.pauseReason ?? 'paused');
      return;
    }
    // Leased on credit granted before the CPU share was lowered: what does not fit goes straight back.
    const room = Math.max(0, (this.pool?.size ?? 0) - this.outstanding());
    if (tasks.length > room) {
      this.release(tasks.slice(room).map((t) => ({ taskId: t.taskId, attempt: t.attempt })), 'more than this node\'s slots');
      tasks = tasks.slice(0, room);
      if (tasks.length === 0) return;
    }
    this.update({ leased: this.snap.leased + tasks.length });
    for (const task of tasks) {
      const k = refKey(task);
      if (this.held.has(k)) continue;
      const h: Held = { task, abort: new AbortController(), cancelled: false };
      this.held.set(k, h);
      void this.run(k, h);
    }
    this.update({ running: this.held.size });
  }

  private async run(k: string, h: Held): Promise<void> {
    const { task } = h;
    const startedAt = Date.now();
    const t0 = performance.now();
    let result: RunResult;
    const pool = this.pool;
    try {
      if (!pool) throw new Error('the node stopped');
      try {
        await pool.ensureModule(task.module);
      } catch (err) {
        throw new Error(`module ${task.module} unavailable: ${(err as Error).message}`, { cause: err });
      }
      result = h.cancelled ? { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: 'aborted' } } : await pool.run({ hash: task.module, input: base64ToBytes(task.input), limits: task.limits }, h.abort.signal);
    } catch (err) {
      result = { ok: false, fuel: 0, error: { code: 'IM_AGENT_ERROR', message: (err as Error).message } };
    }
    if (h.cancelled) return;
    this.held.delete(k);
    const outcome = toOutcome(task, result, startedAt, Date.now());
    this.taskMs.set(k, performance.now() - t0);
    this.unacked.set(k, outcome);
    this.toSend.push(outcome);
    // At once: a worker is free, and its next lease waits for this result (results of the same tick share a signature).
    this.flushSoon(0);
    this.update({ running: this.held.size });
  }

  private flushSoon(ms: number): void {
    if (this.flushTimer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.flushTimer);
    }
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, ms);
  }

  private async flush(): Promise<void> {
    while (this.toSend.length > 0 && this.ready && this.key) {
      const batch = this.toSend.splice(0, RESULTS_BATCH).filter((o) => this.unacked.has(refKey(o)));
      if (batch.length === 0) continue;
      this.signing += batch.length;
      let msg;
      try {
        msg = await signResults(this.key, batch, Date.now());
      } finally {
        this.signing -= batch.length;
      }
      if (!this.send(msg)) {
        this.toSend.unshift(...batch);
        return;
      }
      this.batches.set(msg.nonce, batch.map(refKey));
      this.remember(batch.map((o) => ({ taskId: o.taskId, ok: o.ok, fuel: o.fuel, ms: Math.round(this.taskMs.get(refKey(o)) ?? 0), status: 'sent' as const })));
    }
    this.maybeCredit();
  }

  private onAck(batch: string, results: ResultAck[]): void {
    this.batches.delete(batch);
    let { accepted, failed, rejected, fuel } = this.snap;
    const statuses = new Map<string, RecentTask['status']>();
    for (const r of results) {
      const k = refKey(r);
      const o = this.unacked.get(k);
      if (!o) continue;
      this.unacked.delete(k);
      this.taskMs.delete(k);
      statuses.set(r.taskId, r.status);
      if (r.status === 'accepted') {
        accepted++;
        fuel += o.fuel;
        if (!o.ok) failed++;
      } else if (r.status === 'rejected') rejected++;
    }
    const recent = this.snap.recent.map((t) => (statuses.has(t.taskId) ? { ...t, status: statuses.get(t.taskId) as RecentTask['status'] } : t));
    this.update({ accepted, failed, rejected, fuel, recent });
  }

  private onError(code: string, message: string, retryable: boolean, ref: string | undefined): void {
    this.update({ lastError: `${code}: ${message}` });
    if (ref === undefined) return;
    const keys = this.batches.get(ref);
    if (!keys) return;
    this.batches.delete(ref);
    if (retryable) {
      for (const k of keys) {
        const o = this.unacked.get(k);
        if (o) this.toSend.push(o);
      }
      this.flushSoon(1000);
    } else {
      for (const k of keys) this.unacked.delete(k);
    }
  }

  private remember(tasks: RecentTask[]): void {
    this.update({ recent: [...tasks.reverse(), ...this.snap.recent].slice(0, 20) });
  }

  private update(patch: Partial<NodeSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    for (const l of this.listeners) l(this.snap);
  }
}

/** The outcome the Node agent would report for the same run (packages/agent/src/executor.ts). */
function toOutcome(task: LeasedTask, r: RunResult, startedAt: number, endedAt: number): TaskOutcome {
  const fuel = Number.isFinite(r.fuel) ? Math.max(0, Math.floor(r.fuel)) : 0;
  const base = {
    taskId: task.taskId, attempt: task.attempt, fuel, startedAt, endedAt: Math.max(startedAt, endedAt),
    inputHash: sha256HexSync(base64ToBytes(task.input)), runtime: task.runtime, runtimeVersion: __RUNTIME_VERSION__,
  };
  if (r.ok) return { ...base, ok: true, output: bytesToBase64(r.output) };
  return { ...base, ok: false, error: { code: r.error.code.slice(0, 64), message: r.error.message.slice(0, 2000) } };
}

function browserName(): string {
  const ua = navigator.userAgent;
  const m = /(Firefox|Edg|OPR|Chrome|Chromium|Safari)\/(\d+)/.exec(ua);
  const name = m ? ({ Edg: 'Edge', OPR: 'Opera' } as Record<string, string>)[m[1] as string] ?? m[1] : 'browser';
  const mobile = /Mobi|Android|iPhone|iPad/.test(ua) ? ' mobile' : '';
  return `${name}${m ? ` ${m[2]}` : ''}${mobile}`;
}
