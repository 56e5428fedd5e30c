import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_VERSION, signMessage, signResults } from '@idlemesh/protocol';
import type { AgentMessage, AgentState, Capabilities, ModelOffer, NodeKeyPair, ServerMessage, TaskOutcome } from '@idlemesh/protocol';
import { buildCapabilities, detectGpus } from './capabilities.js';
import type { AgentOptions } from './config.js';
import { coordinatorUrls } from './config.js';
import { Connection, agentSocketUrl, httpBaseUrl } from './connection.js';
import { Witness } from './witness.js';
import type { Hello, Welcome } from './connection.js';
import { Emitter } from './events.js';
import type { AgentEvent } from './events.js';
import { Executor } from './executor.js';
import type { TaskRef } from './executor.js';
import { loadOrCreateKey } from './key.js';
import { LimitsEvaluator } from './limits.js';
import type { Clock } from './limits.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { ModuleCache } from './modules.js';
import { Outbox } from './outbox.js';
import { InferenceHost } from './inference.js';
import type { ModelBackend } from './inference.js';
import { PipelineHost } from './pipeline-host.js';
import { RpcMeshHost } from './split/mesh.js';
import type { SplitModelOptions } from './pipeline-host.js';
import { sysfsPowerSource } from './power.js';
import type { PowerSource } from './power.js';
import { loadRuntime } from './sandbox.js';
import type { Calibrate, TaskSandbox } from './sandbox.js';

export interface Agent {
  /** The node id: hex of the ed25519 public key. */
  readonly nodeId: string;
  /** Current state; `paused` carries `pauseReason`. */
  readonly state: AgentState | 'stopped';
  readonly pauseReason: string | undefined;
  on(listener: (e: AgentEvent) => void): () => void;
  /** drain (default true): finish running tasks first, up to timeoutMs (default drainTimeoutMs). */
  stop(opts?: { drain?: boolean; timeoutMs?: number }): Promise<void>;
}

export interface StartAgentOptions extends AgentOptions {
  /** The owner's clock, for --hours. Signed messages always carry the system time: the coordinator checks it. */
  clock?: Clock;
  power?: PowerSource;
  /** The machine's 1-minute load average (like os.loadavg()[0]); divided by cores here. */
  load?: () => number;
  /** A sandbox to use instead of @idlemesh/runtime's (the caller keeps ownership). */
  sandbox?: TaskSandbox;
  /** Skip calibration and advertise this score. */
  fuelPerSec?: number;
  /**
   * A task arriving while every slot is idle first runs on the agent's own
   * thread for up to this long, as fuel at the calibrated rate (Sandbox.setInlineFuel);
   * 0: always in a worker. Default 0.5 ms.
   */
  inlineTaskMs?: number;
  /** How often owner limits are re-evaluated (ms). */
  limitsIntervalMs?: number;
  /** How long finished results wait to be batched (ms). */
  resultFlushMs?: number;
  log?: Logger;
  /** Also run python and js code-evaluation tasks (Pyodide, QuickJS). */
  codeRuntimes?: boolean;
  /** Models this agent serves through the coordinator's OpenAI-compatible API (see inference.ts). */
  backends?: ModelBackend[];
  /** Hold part of this model in a split group (engine pipeline: pipeline-host.ts; llamacpp-rpc: split/mesh.ts). */
  split?: SplitModelOptions;
}

/** How long a task may try on the agent's thread before a worker takes it (see inlineTaskMs). */
const INLINE_TASK_MS = 0.5;
/** A credit smaller than prefetch/4 waits this long for more to join it. */
const CREDIT_FLUSH_MS = 5;
/** stop() waits this long for the coordinator to ack the last results. */
const ACK_WAIT_MS = 5_000;

export async function startAgent(opts: StartAgentOptions): Promise<Agent> {
  const clock = opts.clock ?? { now: () => Date.now() };
  const log = opts.log ?? createLogger({ level: opts.logLevel, json: opts.json, now: () => clock.now() });
  const { key } = await loadOrCreateKey(opts.keyFile, log);
  // Before the sandbox starts, so a bad --split-model fails fast and leaves nothing running.
  const pipeline = opts.split === undefined ? undefined
    : opts.split.engine === 'llamacpp-rpc' ? await RpcMeshHost.open(opts.split, key) : await PipelineHost.open(opts.split);

  let sandbox: TaskSandbox;
  let calibrate: Calibrate | undefined;
  let ownsSandbox = false;
  if (opts.sandbox !== undefined) {
    sandbox = opts.sandbox;
  } else {
    ({ sandbox, calibrate } = loadRuntime(opts.maxTasks, opts.codeRuntimes === true));
    ownsSandbox = true;
  }
  let fuelPerSec = opts.fuelPerSec ?? 0;
  if (opts.fuelPerSec === undefined && calibrate !== undefined) {
    try {
      fuelPerSec = (await calibrate()).fuelPerSec;
    } catch (err) {
      log.warn(`calibration failed; advertising 0 fuel/s: ${(err as Error).message}`);
    }
  }
  sandbox.setInlineFuel?.(fuelPerSec * (opts.inlineTaskMs ?? INLINE_TASK_MS) / 1000);
  const capabilities = buildCapabilities({ maxTasks: opts.maxTasks, maxMemoryMb: opts.maxMemoryMb, fuelPerSec, gpus: await detectGpus(), name: opts.name, ask: opts.ask, region: opts.region });
  if (opts.codeRuntimes === true && opts.sandbox === undefined) capabilities.runtimes = ['wasm', 'python', 'js'];
  if (pipeline) {
    capabilities.split = pipeline.offer;
    log.info(`offering split stages of ${pipeline.offer.model}: ${pipeline.offer.blocks} layers of ${pipeline.offer.layerBytes} bytes, ${opts.split?.memoryBytes ?? 0} bytes lent`);
  }
  const agent = new AgentImpl(opts, { clock, log, key, sandbox, ownsSandbox, capabilities, pipeline });
  const models = await agent.loadModels();
  if (models.length > 0) {
    capabilities.models = models;
    log.info(`serving ${models.length} model(s): ${models.map((m) => `${m.id} (${m.sizeClass}, ${m.device})`).join(', ')}`);
  }
  await agent.start();
  return agent;
}

class AgentImpl implements Agent {
  readonly nodeId: string;
  private mode: AgentState | 'stopped' = 'active';
  private reason: string | undefined;
  private readonly emitter = new Emitter();
  private readonly conn: Connection;
  private readonly executor: Executor;
  private readonly outbox: Outbox;
  private readonly limits: LimitsEvaluator;
  /** Credit the coordinator still holds for us on this connection. */
  private serverCredit = 0;
  private creditTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private limitsTimer: NodeJS.Timeout | undefined;
  private checking = false;
  /** Releases that could not be sent while disconnected. */
  private pendingRelease: { tasks: TaskRef[]; reason: string }[] = [];
  private stopping: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly witness: Witness;
  private readonly inference: InferenceHost;

  constructor(
    private readonly opts: StartAgentOptions,
    private readonly deps: { clock: Clock; log: Logger; key: NodeKeyPair; sandbox: TaskSandbox; ownsSandbox: boolean; capabilities: Capabilities; pipeline?: PipelineHost | RpcMeshHost | undefined },
  ) {
    this.log = deps.log;
    this.nodeId = deps.key.publicKeyHex;
    this.witness = new Witness(opts.dataDir, deps.key, deps.log, opts.witnessMs);
    const urls = coordinatorUrls(opts.coordinator);
    const modules = new ModuleCache(() => httpBaseUrl(urls[this.conn.index] ?? opts.coordinator), join(opts.dataDir, 'modules'), deps.sandbox, deps.log);
    this.executor = new Executor({
      sandbox: deps.sandbox,
      modules,
      maxTasks: opts.maxTasks,
      maxMemoryMb: opts.maxMemoryMb,
      clock: deps.clock,
      onOutcome: (o) => this.onOutcome(o),
      onSettled: () => this.maybeCredit(),
    });
    this.inference = new InferenceHost({
      backends: opts.backends ?? [],
      sendChunk: (t, seq, data) => this.conn.send({ type: 'stream', taskId: t.taskId, attempt: t.attempt, seq, data }),
      onOutcome: (o) => this.onOutcome(o),
      log: deps.log,
      now: () => Date.now(),
    });
    deps.pipeline?.attach({
      send: (msg) => this.conn.send(msg),
      sendChunk: (t, seq, data) => this.conn.send({ type: 'stream', taskId: t.taskId, attempt: t.attempt, seq, data }),
      onOutcome: (o) => this.onOutcome(o),
      log: deps.log,
    });
    this.outbox = new Outbox({
      send: (results) => this.sendResults(results),
      canSend: () => this.conn.ready,
      flushMs: opts.resultFlushMs ?? 8,
    });
    this.limits = new LimitsEvaluator(opts, {
      clock: deps.clock,
      power: opts.power ?? sysfsPowerSource(opts.powerSupplyPath),
      load: opts.load ?? (() => loadavg()[0] ?? 0),
      cores: availableParallelism(),
    });
    this.conn = new Connection(urls.map(agentSocketUrl), {
      auth: (hello) => this.auth(hello),
      onWelcome: (w) => this.onWelcome(w),
      onMessage: (m) => this.onMessage(m),
      onRefused: (e) => this.onRefused(e),
      onClose: (info) => this.onClose(info),
      onConnectError: (err, attempt) => this.onConnectError(err, attempt),
    }, deps.log);
  }

  /** Loads the backends' models once, before the first connection advertises them. */
  loadModels(): Promise<ModelOffer[]> {
    return this.inference.load();
  }

  get state(): AgentState | 'stopped' {
    return this.mode;
  }

  get pauseReason(): string | undefined {
    return this.reason;
  }

  on(listener: (e: AgentEvent) => void): () => void {
    return this.emitter.on(listener);
  }

  async start(): Promise<void> {
    this.log.info('agent starting', { nodeId: this.nodeId, coordinator: this.opts.coordinator, maxTasks: this.opts.maxTasks, prefetch: this.opts.prefetch });
    const reason = await this.checkLimits();
    if (reason !== undefined) {
      this.mode = 'paused';
      this.reason = reason;
      this.log.info(`paused: ${reason}`);
      // Let the caller attach listeners before the first event.
      setImmediate(() => this.emit({ type: 'paused', reason }));
    }
    const every = this.opts.limitsIntervalMs ?? 1000;
    this.limitsTimer = setInterval(() => void this.tick(), every);
    this.conn.start();
  }

  stop(opts: { drain?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(opts.drain ?? true, opts.timeoutMs ?? this.opts.drainTimeoutMs);
    return this.stopping;
  }

  // ---- connection ---------------------------------------------------------

  private async auth(hello: Hello): Promise<AgentMessage> {
    if (hello.v !== PROTOCOL_VERSION) {
      this.log.warn(`coordinator speaks protocol ${hello.v}, this agent ${PROTOCOL_VERSION}`);
    }
    const skew = hello.serverTime - Date.now();
    if (Math.abs(skew) > 60_000) this.log.warn(`clock differs from the coordinator's by ${Math.round(skew / 1000)} s; signatures may be refused`);
    return signMessage(this.deps.key, 'auth', { v: PROTOCOL_VERSION, challenge: hello.challenge, capabilities: this.deps.capabilities }, Date.now());
  }

  private onWelcome(w: Welcome): void {
    if (w.nodeId !== this.nodeId) this.log.warn('coordinator welcomed a different node id', { expected: this.nodeId, got: w.nodeId });
    this.log.info('connected', { coordinator: this.opts.coordinator, nodeId: this.nodeId, heartbeatMs: w.heartbeatMs });
    this.serverCredit = 0;
    this.emit({ type: 'connected', coordinator: this.opts.coordinator, nodeId: this.nodeId });
    this.sendHeartbeat();
    // Witness the coordinator's audit log (at most once a minute).
    void this.witness.maybeWitness(httpBaseUrl(coordinatorUrls(this.opts.coordinator)[this.conn.index] ?? this.opts.coordinator));
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), Math.max(50, w.heartbeatMs));
    // Tell the coordinator what we still hold; it hands back any other lease
    // it has on record for this node (e.g. after its own crash and restart).
    this.conn.send({ type: 'holding', tasks: [...this.executor.heldRefs(), ...this.inference.heldRefs(), ...(this.deps.pipeline?.heldRefs() ?? []), ...this.outbox.unackedRefs()] });
    const pending = this.pendingRelease;
    this.pendingRelease = [];
    for (const r of pending) this.sendRelease(r.tasks, r.reason);
    this.outbox.onConnected();
    this.maybeCredit(true);
  }

  private onMessage(m: ServerMessage): void {
    switch (m.type) {
      case 'lease': {
        this.serverCredit = Math.max(0, this.serverCredit - m.tasks.length);
        if (m.tasks.length === 0) return;
        if (this.mode !== 'active') {
          // Leased before the coordinator saw our pause/drain: hand them straight back.
          this.release(m.tasks.map((t) => ({ taskId: t.taskId, attempt: t.attempt })), this.reason ?? this.mode);
          return;
        }
        this.log.debug(`leased ${m.tasks.length} tasks`);
        this.emit({ type: 'leased', count: m.tasks.length });
        // Inference requests go to the models, not the wasm sandbox, and use no task credit.
        const llm = m.tasks.filter((t) => t.runtime === 'llm');
        for (const t of llm) {
          if (this.deps.pipeline?.owns(t)) this.deps.pipeline.add(t);
          else this.inference.add(t);
        }
        this.executor.add(llm.length === 0 ? m.tasks : m.tasks.filter((t) => t.runtime !== 'llm'));
        return;
      }
      case 'ack': {
        const c = this.outbox.ack(m.batch, m.results);
        if (c.rejected > 0) this.log.warn(`coordinator rejected ${c.rejected} results`, { batch: m.batch, example: m.results.find((r) => r.status === 'rejected')?.error?.code });
        this.emit({ type: 'acked', ...c });
        return;
      }
      case 'revoke': {
        const dropped = this.executor.revoke(m.taskIds);
        this.inference.revoke(m.taskIds);
        this.deps.pipeline?.revoke(m.taskIds);
        this.log.info(`revoked ${m.taskIds.length} tasks (${dropped.length} held here): ${m.reason}`);
        this.emit({ type: 'revoked', taskIds: m.taskIds, reason: m.reason });
        return;
      }
      case 'error': {
        const dropped = m.ref === undefined ? undefined : this.outbox.refused(m.ref, m.error.retryable);
        const what = dropped === undefined ? '' : dropped > 0 ? ` (dropped ${dropped} results)` : ' (results will be sent again)';
        this.log.error(`coordinator error ${m.error.code}: ${m.error.message}${what}`, { ref: m.ref });
        this.emit({ type: 'error', code: m.error.code, message: m.error.message, retryable: m.error.retryable });
        return;
      }
      // Split inference (pipeline-host.ts).
      case 'split-assign':
        this.deps.pipeline?.assign(m.assignment);
        return;
      case 'stage-frame':
        if (this.deps.pipeline instanceof PipelineHost) void this.deps.pipeline.onFrame(m);
        return;
      case 'stage-reply':
        if (this.deps.pipeline instanceof PipelineHost) this.deps.pipeline.onReply(m);
        return;
      // Engine llamacpp-rpc: the group's stages and the tunnels relayed through the coordinator (split/mesh.ts).
      case 'split-members':
        if (this.deps.pipeline instanceof RpcMeshHost) this.deps.pipeline.onMembers(m);
        return;
      case 'tunnel-open':
        if (this.deps.pipeline instanceof RpcMeshHost) this.deps.pipeline.onTunnelOpen(m);
        else this.conn.send({ type: 'tunnel-close', stream: m.stream, error: { code: 'IM_SPLIT_NOT_MEMBER', message: 'this agent holds no llamacpp-rpc stage' } });
        return;
      case 'tunnel-data':
        if (this.deps.pipeline instanceof RpcMeshHost) this.deps.pipeline.onTunnelData(m);
        return;
      case 'tunnel-close':
        if (this.deps.pipeline instanceof RpcMeshHost) this.deps.pipeline.onTunnelClose(m);
        return;
      default:
        this.log.debug(`ignoring ${m.type} after welcome`);
    }
  }

  private onRefused(e: { code: string; message: string; retryable: boolean }): void {
    if (e.retryable) {
      this.log.warn(`coordinator refused the connection: ${e.code}: ${e.message}; retrying`);
    } else {
      this.log.error(`coordinator refused this agent: ${e.code}: ${e.message}; retrying every ${10} s until fixed`);
      this.conn.backOffFully();
    }
    this.emit({ type: 'error', code: e.code, message: e.message, retryable: e.retryable });
  }

  private onClose(info: { code: number; reason: string; welcomed: boolean; retryInMs: number }): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    this.serverCredit = 0;
    this.deps.pipeline?.onDisconnect();
    if (!info.welcomed) return;
    // A coordinator hands a disconnected node's leases back to the queue, so
    // tasks not yet started are someone else's now. Running ones finish and
    // their results are offered again after reconnecting.
    const dropped = this.executor.takeQueued();
    if (dropped.length > 0) this.log.debug(`dropped ${dropped.length} queued tasks on disconnect`);
    if (this.mode !== 'stopped' && this.stopping === undefined) {
      this.log.warn(`disconnected (${info.code}${info.reason === '' ? '' : ` ${info.reason}`}); reconnecting in ${info.retryInMs} ms`);
    }
    this.emit({ type: 'disconnected', code: info.code, reason: info.reason, retryInMs: info.retryInMs });
  }

  private onConnectError(err: Error, attempt: number): void {
    const message = `cannot reach ${this.opts.coordinator}: ${err.message}`;
    if (attempt === 0) {
      this.log.warn(message);
      this.emit({ type: 'error', code: 'IM_CONNECTION_FAILED', message, retryable: true });
    } else {
      this.log.debug(message, { attempt });
    }
  }

  // ---- flow control -------------------------------------------------------

  /**
   * How many tasks to hold: enough to cover ~50 ms of work per slot so tiny
   * tasks never wait on a round trip, few enough that long tasks are not
   * hoarded away from other agents. `prefetch` is the ceiling.
   */
  private window(): number {
    const perSlot = Math.min(256, Math.max(2, Math.ceil(50 / this.executor.averageTaskMs)));
    return Math.max(1, Math.min(this.opts.prefetch, this.opts.maxTasks * perSlot));
  }

  /** Tops the coordinator's credit up to prefetch − held; small top-ups wait a few ms to batch. */
  private maybeCredit(now = false): void {
    if (this.mode !== 'active' || !this.conn.ready) return;
    const want = this.window() - this.executor.held - this.serverCredit;
    if (want <= 0) return;
    if (now || want >= Math.max(1, Math.floor(this.window() / 4))) {
      if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
      this.creditTimer = undefined;
      if (this.conn.send({ type: 'credit', n: Math.min(100_000, want) })) this.serverCredit += Math.min(100_000, want);
      return;
    }
    this.creditTimer ??= setTimeout(() => {
      this.creditTimer = undefined;
      this.maybeCredit(true);
    }, CREDIT_FLUSH_MS);
  }

  private sendHeartbeat(): void {
    void this.witness.maybeWitness(httpBaseUrl(coordinatorUrls(this.opts.coordinator)[this.conn.index] ?? this.opts.coordinator));
    if (this.mode === 'stopped') return;
    const hb: AgentMessage = { type: 'heartbeat', state: this.mode, running: this.executor.runningCount };
    if (this.reason !== undefined && this.mode === 'paused') hb.reason = this.reason.slice(0, 200);
    this.conn.send(hb);
  }

  private release(tasks: TaskRef[], reason: string): void {
    if (tasks.length === 0) return;
    this.log.info(`released ${tasks.length} tasks: ${reason}`);
    this.emit({ type: 'released', count: tasks.length, reason });
    if (!this.conn.ready) {
      this.pendingRelease.push({ tasks, reason });
      return;
    }
    this.sendRelease(tasks, reason);
  }

  private sendRelease(tasks: TaskRef[], reason: string): void {
    for (let i = 0; i < tasks.length; i += 100_000) {
      this.conn.send({ type: 'release', tasks: tasks.slice(i, i + 100_000), reason: reason.slice(0, 200) });
    }
  }

  // ---- results ------------------------------------------------------------

  private onOutcome(o: TaskOutcome): void {
    const e: AgentEvent = { type: 'result', taskId: o.taskId, attempt: o.attempt, ok: o.ok, fuel: o.fuel };
    if (o.error !== undefined) e.errorCode = o.error.code;
    this.emit(e);
    this.outbox.add(o, this.executor.held === 0);
  }

  private async sendResults(results: TaskOutcome[]): Promise<string | undefined> {
    // One signature per batch: over the head of the Merkle tree of its receipts.
    const msg = await signResults(this.deps.key, results, Date.now());
    return this.conn.send(msg) ? msg.nonce : undefined;
  }

  // ---- owner limits -------------------------------------------------------

  private async checkLimits(): Promise<string | undefined> {
    this.limits.sampleOwnLoad(this.executor.runningCount);
    try {
      return await this.limits.check(this.mode === 'paused' ? this.reason : undefined);
    } catch (err) {
      this.log.warn(`cannot evaluate owner limits: ${(err as Error).message}`);
      return this.mode === 'paused' ? this.reason : undefined;
    }
  }

  private async tick(): Promise<void> {
    if (this.checking || this.mode === 'draining' || this.mode === 'stopped') return;
    this.checking = true;
    try {
      const reason = await this.checkLimits();
      // stop() may have begun while the check awaited.
      if (this.stopping !== undefined) return;
      if (reason !== undefined && this.mode === 'active') this.pause(reason);
      else if (reason !== undefined && reason !== this.reason) {
        this.reason = reason;
        this.sendHeartbeat();
      } else if (reason === undefined && this.mode === 'paused') this.resume();
    } finally {
      this.checking = false;
    }
  }

  private pause(reason: string): void {
    this.mode = 'paused';
    this.reason = reason;
    if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    // Assumed: a coordinator stops leasing to a paused node and forgets its credit.
    this.serverCredit = 0;
    this.log.info(`paused: ${reason}`);
    this.sendHeartbeat();
    this.release([...this.executor.takeQueued(), ...this.executor.abortAll()], reason);
    this.emit({ type: 'paused', reason });
  }

  private resume(): void {
    const was = this.reason;
    this.mode = 'active';
    this.reason = undefined;
    this.log.info(`resumed (was: ${was ?? 'paused'})`);
    this.sendHeartbeat();
    this.maybeCredit(true);
    this.emit({ type: 'resumed' });
  }

  // ---- shutdown -----------------------------------------------------------

  private async shutdown(drain: boolean, timeoutMs: number): Promise<void> {
    if (this.limitsTimer !== undefined) clearInterval(this.limitsTimer);
    this.limitsTimer = undefined;
    if (this.creditTimer !== undefined) clearTimeout(this.creditTimer);
    this.creditTimer = undefined;
    if (drain) {
      this.mode = 'draining';
      this.log.info(`draining: finishing ${this.executor.runningCount} running tasks (up to ${timeoutMs} ms)`);
      this.emit({ type: 'draining' });
      this.sendHeartbeat();
      this.release(this.executor.takeQueued(), 'draining');
      if (!(await within(this.executor.whenIdle(), timeoutMs))) {
        this.release(this.executor.abortAll(), 'drain timeout');
      }
      await this.outbox.flushNow();
      if (!(await within(this.outbox.whenEmpty(), ACK_WAIT_MS))) {
        this.log.warn(`${this.outbox.pending} results were not acknowledged before shutdown`);
      }
    } else {
      this.release([...this.executor.takeQueued(), ...this.executor.abortAll()], 'stopping');
    }
    this.mode = 'stopped';
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.outbox.close();
    await this.conn.close(1000, 'agent stopped');
    await this.inference.close();
    await this.deps.pipeline?.close();
    if (this.deps.ownsSandbox) await this.deps.sandbox.close();
    this.log.info('stopped');
    this.emit({ type: 'stopped' });
  }

  private emit(e: AgentEvent): void {
    this.emitter.emit(e);
  }
}

/** Whether p settled within ms; the timer never outlives the wait. */
async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
