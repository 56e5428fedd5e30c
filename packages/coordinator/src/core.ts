import {
  DEFAULT_LIMITS,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETRY_BACKOFF_MS,
  ImError,
  WASM_PAGE_BYTES,
  base64ToBytes,
  bytesToBase64,
  canonicalJson,
  errorFrom,
  newJobId,
  taskId,
} from '@idlemesh/protocol';
import { createHash } from 'node:crypto';
import { setImmediate as breath } from 'node:timers/promises';
import { merkleLeafHash, merkleRoot, openNote, parseCheckpoint, utf8 } from '@idlemesh/protocol';
import type { Transfer } from './ledger/index.js';
import type { Capabilities, JobLimits, JobView, LeasedTask, ModuleInfo, ServerMessage, TaskResultView, Verification } from '@idlemesh/protocol';
import { CODE_RUNTIME_MODULE, CodeEvalInput, SubmitJobBody } from '@idlemesh/protocol';
import type { z } from 'zod';
import { Instrumenter } from './modules/index.js';
import { ACCOUNTS, Money } from './money.js';
import { Deposits, Payouts, treasuryFromOptions } from './treasury/index.js';
import { Identity, Passkeys } from './identity/index.js';
import { ipPrefix } from './identity/prefix.js';
import { Governance } from './governance/index.js';
import { AuditLog } from './audit/index.js';
import { ReceiptSigner } from './receipts.js';
import { Referee } from './referee.js';
import { Verifier, isReplicated, maxExecutions, modeParams } from './verifier.js';
import { defaultVerification } from './verify-default.js';
import { Inference } from './inference.js';
import { IssuanceService } from './issuance-service.js';
import { PROBE_CALLER } from './probes.js';
import { Federation } from './federation/index.js';
import type { AuditEvent } from './audit/index.js';
import type { RelyingParty } from './identity/index.js';
import { verificationOf } from './config.js';
import type { CoordinatorOptions } from './config.js';
import { timed } from './metrics.js';
import type { Metrics } from './metrics.js';
import { ProgressHub } from './progress.js';
import { eligible, schedule } from './scheduler/index.js';
import type { SchedAgent } from './scheduler/index.js';
import type { Claim, ClaimedTask, FirstLeases, JobRecord, NewJob, Placement, RunnableJob, Store, StoreEvent, StoredModule, TaskRef, TaskRow } from './store/index.js';
import { JobFactsCache } from './job-facts.js';

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
}

/** One connected, authenticated agent as the dispatcher sees it. */
export interface AgentSession {
  readonly nodeId: string;
  capabilities: Capabilities;
  credit: number;
  state: 'active' | 'paused' | 'draining';
  /** The address the agent connects from (capacity probes group nodes by its prefix); absent for virtual sessions. */
  remote?: string;
  send(msg: ServerMessage): void;
}

/**
 * The coordinator's state machine between the transport (HTTP, WebSocket)
 * and the store: submits jobs, runs the scheduler, grants leases, takes
 * results. Transport code calls in; it never touches the store itself.
 */
export class Core {
  readonly sessions = new Map<string, AgentSession>();
  readonly nonces = new NonceCache();
  private readonly instrumenter: Instrumenter;
  private readonly modules = new Map<string, StoredModule>();
  readonly progress: ProgressHub;
  readonly money: Money;
  readonly deposits: Deposits;
  readonly payouts: Payouts;
  readonly identity: Identity;
  readonly governance: Governance;
  readonly receipts: ReceiptSigner;
  readonly referee: Referee;
  /** What never changes about a job, read once: shared by the referee, the verifier and the issuance. */
  readonly jobFacts: JobFactsCache;
  readonly verifier: Verifier;
  readonly inference: Inference;
  readonly issuance: IssuanceService;
  private passkeyService: Passkeys | undefined;
  private auditLog: AuditLog | undefined;
  private federation: Federation | undefined;
  private auditLedgerChain: Promise<void> = Promise.resolve();
  private knownNodes: Set<string> | undefined;
  private readonly enrolments = new Map<string, number[]>();
  /** Jobs whose crossing to public capacity is already in the audit log. */
  private readonly crossed = new Set<string>();
  private lastChainPoll = 0;
  private lastBatch = Date.now();
  private dispatching = false;
  private dispatchAgain = false;
  /**
   * False only after a round found no runnable job and nothing announced work
   * since: a result or a credit then costs no query. Anything that can make
   * tasks runnable (a submit, a requeue, a governance change, another
   * coordinator, the sweep) sets it through announceWork.
   */
  private workMaybe = true;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private lastNoncePurge = 0;
  private closed = false;
  private unsubscribe: (() => Promise<void>) | undefined;
  private outgoingTimer: NodeJS.Timeout | undefined;
  private outgoingWork = false;
  private readonly outgoingProgress = new Set<string>();

  constructor(
    readonly store: Store,
    readonly opts: CoordinatorOptions,
    readonly metrics: Metrics,
    readonly log: Logger,
    readonly now: () => number = Date.now,
  ) {
    this.progress = new ProgressHub((id) => store.getJob(id));
    this.instrumenter = new Instrumenter({ maxMemoryMb: opts.maxMemoryMb, maxBytes: opts.moduleLimitBytes });
    this.money = new Money(store, opts, log, now, metrics);
    this.identity = new Identity(store, log, now);
    this.receipts = new ReceiptSigner(store, now);
    this.jobFacts = new JobFactsCache(store);
    this.inference = new Inference(this);
    this.issuance = new IssuanceService(this, opts.issuanceHourMs, opts.probeIntervalMs);
    this.referee = new Referee(store, this.money, metrics, log, now, verificationOf(opts.verify), this.jobFacts);
    this.verifier = new Verifier(this);
    this.referee.onConvicted = (nodeId) => this.verifier.reverse(nodeId);
    this.governance = new Governance(store, log, now, BigInt(opts.publicMinBondMsat), opts.enrolPerOperatorPerHour);
    const t = treasuryFromOptions(opts);
    this.deposits = new Deposits({ store, log, now, account: t.account, chain: t.chain, lightning: t.lightning, minConf: opts.minConf, gap: opts.depositGap, network: opts.network });
    this.payouts = new Payouts({
      store, log, now, network: opts.network, account: t.account, chain: t.chain, lightning: t.lightning,
      minConf: opts.minConf, minWithdrawalSats: opts.minWithdrawalSats, lnMaxFeeBps: opts.lnMaxFeeBps,
      anchor: opts.anchorAudit ? async () => {
        if (!this.auditLog) return undefined;
        await this.auditLedger(); // the money movements so far are in what gets anchored
        await this.auditLog.checkpointIfDue(true);
        const c = await this.store.auditCheckpoint();
        if (!c) return undefined;
        const cp = parseCheckpoint(openNote(c.note, []).body);
        return { size: cp.size, root: cp.rootHash };
      } : undefined,
    });
  }

  /**
   * Sybil resistance: at most `enrolPerPrefixPerHour` new node identities per
   * network prefix and hour on this coordinator; nodes it knows reconnect freely.
   */
  async admitNode(nodeId: string, remote: string): Promise<void> {
    const limit = this.opts.enrolPerPrefixPerHour;
    if (limit === 0) return;
    this.knownNodes ??= new Set((await this.store.listNodes()).map((n) => n.id));
    if (this.knownNodes.has(nodeId)) return;
    const prefix = ipPrefix(remote);
    const now = this.now();
    const recent = (this.enrolments.get(prefix) ?? []).filter((t) => now - t < 3_600_000);
    if (recent.length >= limit) {
      this.enrolments.set(prefix, recent);
      throw new ImError('IM_RATE_LIMITED', `too many new nodes from ${prefix} this hour (at most ${limit}); try again later`, { retryAfterMs: 3_600_000 - (now - (recent[0] ?? now)) });
    }
    recent.push(now);
    this.enrolments.set(prefix, recent);
    this.knownNodes.add(nodeId);
  }

  /** Passkeys and the audit log's name are bound to the URL people open; known once the server listens. */
  setRelyingParty(rp: RelyingParty, auditOrigin: string): void {
    this.passkeyService = new Passkeys(this.store, this.log, this.now, rp, async (orgId) => (await this.identity.org(orgId))?.root === true);
    this.auditLog = new AuditLog(this.store, this.log, this.now, auditOrigin, this.opts.auditWitnesses, this.opts.auditQuorum);
    const sink = { record: (...events: AuditEvent[]) => this.audit.record(...events) };
    this.identity.audit = sink;
    this.passkeyService.audit = sink;
    this.governance.audit = sink;
    this.payouts.audit = sink;
    this.money.audit = sink;
    this.referee.audit = sink;
  }

  get audit(): AuditLog {
    if (!this.auditLog) throw new ImError('IM_INTERNAL', 'the audit log is not set up yet');
    return this.auditLog;
  }

  get passkeys(): Passkeys {
    if (!this.passkeyService) throw new ImError('IM_INTERNAL', 'passkeys are not set up yet');
    return this.passkeyService;
  }

  async start(): Promise<void> {
    if (this.opts.upstream !== undefined) {
      this.federation = new Federation(this, {
        url: this.opts.upstream, bid: this.opts.upstreamBid, budgetMsat: this.opts.upstreamBudgetMsat, slots: this.opts.upstreamSlots,
        ...(this.opts.upstreamKey !== undefined ? { apiKey: this.opts.upstreamKey } : {}),
      });
      await this.federation.start();
      this.log.info({ upstream: this.opts.upstream, node: this.federation.nodeId.slice(0, 12) }, 'federated: overflow can go upstream');
    }
    this.unsubscribe = await this.store.subscribe((e) => this.onStoreEvent(e));
    this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepMs);
    this.sweepTimer.unref();
  }

  // ---- other coordinators on the same store ---------------------------------------

  /** What another coordinator sharing the store tells us. */
  private onStoreEvent(e: StoreEvent): void {
    if (this.closed) return;
    switch (e.type) {
      case 'work':
        this.workMaybe = true;
        this.kick();
        return;
      case 'progress':
        this.progress.notify(e.jobs);
        return;
      case 'revoke': {
        const s = this.sessions.get(e.nodeId);
        if (s) {
          s.send({ type: 'revoke', taskIds: e.taskIds, reason: e.reason });
          s.credit += e.taskIds.length;
          this.kick();
        }
        return;
      }
    }
  }

  /** Tasks became available: dispatch here, and tell the other coordinators. */
  announceWork(): void {
    this.workMaybe = true;
    this.kick();
    this.outgoingWork = true;
    this.flushOutgoingSoon();
  }

  /**
   * A job was just created. When no other work was known (the last round
   * found none and none was announced since) and no round is running, it is
   * the only runnable job here: a round starts at once with it, without
   * reading the queue back — an idle mesh's path from a submit to its first
   * lease. Otherwise it is work like any other.
   */
  private announceJob(job: JobRecord): void {
    if (this.workMaybe || this.dispatching || this.closed) {
      this.announceWork();
      return;
    }
    this.dispatching = true;
    void this.dispatchLoop(runnableOf(job, job.counts.queued, job.counts.leased));
  }

  /** Work may be runnable here (the sweep's look for retries whose backoff passed); the others have their own sweeps. */
  announceWorkHere(): void {
    this.workMaybe = true;
    this.kick();
  }

  /**
   * Jobs changed: push to this coordinator's watchers now, and to the others' soon.
   * `running`: the change cannot have ended them (a lease), so watchers waiting only
   * for the end are not disturbed.
   */
  notifyJobs(jobs: Iterable<string>, opts: { running?: boolean } = {}): void {
    if (this.store.shared) for (const id of jobs) this.outgoingProgress.add(id);
    this.progress.notify(jobs, opts.running === true);
    this.flushOutgoingSoon();
  }

  /** Events to other coordinators are coalesced: at most one of each kind per 20 ms. */
  private flushOutgoingSoon(): void {
    // Nobody else shares a SQLite store: no timer to wake for.
    if (this.outgoingTimer || this.closed || !this.store.shared) return;
    this.outgoingTimer = setTimeout(() => {
      this.outgoingTimer = undefined;
      const jobs = [...this.outgoingProgress];
      this.outgoingProgress.clear();
      const work = this.outgoingWork;
      this.outgoingWork = false;
      const sends: Array<Promise<void>> = [];
      if (work) sends.push(this.store.publish({ type: 'work' }));
      if (jobs.length > 0) sends.push(this.store.publish({ type: 'progress', jobs }));
      Promise.all(sends).catch((err: unknown) => this.log.warn({ err }, 'could not notify other coordinators'));
    }, 20);
  }

  isClosing(): boolean {
    return this.closed;
  }

  async stop(): Promise<void> {
    this.closed = true;
    this.federation?.stop();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.outgoingTimer) clearTimeout(this.outgoingTimer);
    this.progress.close();
    this.issuance.close();
    await this.unsubscribe?.();
    await this.verifier.close();
    await this.referee.close();
    await this.instrumenter.close();
  }

  // ---- modules -------------------------------------------------------------

  async uploadModule(bytes: Uint8Array): Promise<{ info: ModuleInfo; created: boolean }> {
    if (bytes.byteLength > this.opts.moduleLimitBytes) throw new ImError('IM_WASM_TOO_LARGE');
    const hash = createHash('sha256').update(bytes).digest('hex');
    const existing = await this.store.getModule(hash);
    if (existing) return { info: moduleInfo(existing), created: false };
    const inst = await this.instrumenter.instrument(bytes);
    const m: StoredModule = {
      hash,
      instrumentedHash: createHash('sha256').update(inst.bytes).digest('hex'),
      abi: inst.abi,
      size: bytes.byteLength,
      instrumentedSize: inst.bytes.byteLength,
      initialPages: inst.memory.initialPages,
      maxPages: inst.memory.maxPages,
      bytes,
      instrumented: inst.bytes,
      createdAt: this.now(),
    };
    await this.store.putModule(m);
    this.log.info({ module: hash, abi: m.abi, size: m.size }, 'module instrumented');
    return { info: moduleInfo(m), created: true };
  }

  async getModule(hash: string): Promise<StoredModule> {
    const cached = this.modules.get(hash);
    if (cached) return cached;
    const m = await this.store.getModule(hash);
    if (!m) throw new ImError('IM_MODULE_NOT_FOUND', undefined, { details: { hash } });
    // Modules are immutable (content-addressed), so caching them is always safe.
    if (this.modules.size >= 64) this.modules.clear();
    this.modules.set(m.hash, m);
    this.modules.set(m.instrumentedHash, m);
    return m;
  }

  // ---- jobs ------------------------------------------------------------------

  async submitJob(caller: string, body: z.output<typeof SubmitJobBody>, headerKey: string | undefined): Promise<{ job: JobView; created: boolean }> {
    const key = headerKey ?? body.idempotencyKey;
    if (headerKey !== undefined && body.idempotencyKey !== undefined && headerKey !== body.idempotencyKey) {
      throw new ImError('IM_VALIDATION', 'Idempotency-Key header and idempotencyKey field differ');
    }
    if (body.runtime === 'llm') throw new ImError('IM_VALIDATION', 'llm work is requested through POST /v1/chat/completions or /v1/completions, not as a job');
    const code = body.runtime === 'python' || body.runtime === 'js' ? body.runtime : undefined;
    if (code === undefined && body.module === undefined) throw new ImError('IM_VALIDATION', 'module is required: upload it with POST /v1/modules');
    if (code !== undefined && body.module !== undefined) throw new ImError('IM_VALIDATION', `a ${code} job runs code from its inputs and names no module`);
    const module = code === undefined ? await this.getModule(body.module as string) : undefined;
    if (code !== undefined) checkCodeInputs(body.inputs);
    const limits: JobLimits = {
      fuel: body.limits?.fuel ?? DEFAULT_LIMITS.fuel,
      memoryMb: body.limits?.memoryMb ?? DEFAULT_LIMITS.memoryMb,
      timeoutMs: body.limits?.timeoutMs ?? DEFAULT_LIMITS.timeoutMs,
      outputBytes: body.limits?.outputBytes ?? DEFAULT_LIMITS.outputBytes,
    };
    const neededMb = module === undefined ? 0 : Math.ceil((module.initialPages * WASM_PAGE_BYTES) / (1024 * 1024));
    if (neededMb > limits.memoryMb) {
      throw new ImError('IM_WASM_MEMORY_LIMIT', `the module needs ${neededMb} MiB at start but the job allows ${limits.memoryMb} MiB`);
    }
    // Only a keyed request can be repeated, so only then is the request hashed.
    let requestHash = '';
    if (key !== undefined) {
      const { idempotencyKey: _k, ...rest } = body;
      requestHash = createHash('sha256').update(canonicalJson({ ...rest, module: module?.hash ?? null })).digest('hex');
    }
    const now = this.now();
    const inputs = body.inputs.map((b) => base64ToBytes(b));
    const id = newJobId(now);
    const bid = body.bid ?? 0;
    const buyer = ACCOUNTS.buyer(caller);
    // Explicit, else --verify, else by where the work may run (verify-default.ts).
    const verification = body.verification ?? defaultVerification(this.opts.verify, caller, body.label, this.governance, BigInt(this.opts.publicMinBondMsat));
    // The escrow covers every execution the mode may need (replicas included); only those run are charged.
    if (isReplicated(verification)) modeParams(verification, true); // refuses minQuorum > targetResults > maxTotalResults
    const hold = this.money.hold({ jobId: id, buyer, tasks: inputs.length, fuelLimit: limits.fuel, bid, maxExecutionsPerTask: maxExecutions(verification) });
    const job: NewJob = {
      id,
      caller,
      ...(key !== undefined ? { idempotencyKey: key } : {}),
      requestHash,
      ...(body.name !== undefined ? { name: body.name } : {}),
      module: module?.hash ?? CODE_RUNTIME_MODULE[code as 'python' | 'js'],
      instrumentedModule: module?.instrumentedHash ?? CODE_RUNTIME_MODULE[code as 'python' | 'js'],
      runtime: body.runtime,
      limits,
      bid,
      maxAttempts: body.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      retryBackoffMs: body.retryBackoffMs ?? DEFAULT_RETRY_BACKOFF_MS,
      priority: body.priority ?? 1,
      requirements: body.requirements ?? {},
      createdAt: now,
      ...(body.label !== undefined ? { label: body.label } : {}),
      ...(body.dataClasses !== undefined ? { dataClasses: body.dataClasses } : {}),
      verification,
      ...(hold ? { buyer, holdMsat: hold.amount, fees: this.money.fees } : {}),
    };
    const first = await this.firstLeases(runnableOf(job, inputs.length), verification, now);
    try {
      const result = await timed(this.metrics, 'submit', () => this.store.createJob(job, inputs, hold?.batch, first)).catch(async (err: unknown) => {
        throw hold ? await this.money.explainHoldFailure(err, buyer, hold.amount) : err;
      });
      if (result.created) {
        this.metrics.jobsSubmitted.inc();
        this.log.info({ job: result.job.id, tasks: inputs.length, caller }, 'job submitted');
        this.jobFacts.remember(result.job);
        if (first) {
          await this.sendLeases(result.leased);
          if (result.leased.length < inputs.length) this.announceWork();
        } else this.announceJob(result.job);
      }
      return { job: jobView(result.job), created: result.created };
    } finally {
      // The dispatcher goes back, through a round if work was announced meanwhile.
      if (first) void this.dispatchLoop();
    }
  }

  /**
   * A job submitted to an idle mesh (no other work known, no round running,
   * an agent with room, no organisations' policies): its first leases are
   * planned before it is stored and taken in the transaction that stores it,
   * so its path to an agent is one commit. Takes the dispatcher when it
   * returns leases (a round would otherwise plan with the same credit); the
   * caller hands it back.
   */
  private async firstLeases(job: RunnableJob, verification: Verification | undefined, now: number): Promise<FirstLeases | undefined> {
    if (this.workMaybe || this.dispatching || this.closed || job.caller === PROBE_CALLER || isReplicated(verification)) return undefined;
    const agents = this.agentsWithCredit();
    if (agents.length === 0) return undefined;
    this.dispatching = true;
    let planned: Awaited<ReturnType<Core['plan']>> | undefined;
    try {
      // Under organisations' policies, planning may file an approval request for the job (a crossing to public
      // capacity): a job that is not stored yet, and may never be (a refused escrow, a repeat under its key), must
      // not have one. Such jobs are planned by a dispatch round, once stored.
      if (!(await this.governance.active())) planned = await this.plan(agents, [job]);
    } catch (err) {
      this.log.warn({ err, job: job.id }, 'could not plan the first leases of a new job; a dispatch round will');
    }
    if (!planned || planned.plan.length === 0 || this.closed) {
      void this.dispatchLoop();
      return undefined;
    }
    const { plan, asks } = planned;
    return { leases: plan.map((p) => ({ nodeId: p.agentId, count: p.count, ask: asks.get(p.agentId) ?? 0 })), expiresAt: now + this.opts.leaseMs };
  }

  async getJob(id: string): Promise<JobView> {
    const job = await this.store.getJob(id);
    if (!job) throw new ImError('IM_NOT_FOUND', `no job ${id}`);
    return jobView(job);
  }

  async cancelJob(id: string): Promise<JobView> {
    const r = await this.store.cancelJob(id, this.now());
    if (!r) throw new ImError('IM_NOT_FOUND', `no job ${id}`);
    await this.revoke(r.revoked, 'job cancelled');
    this.notifyJobs([id]);
    this.kick();
    // The rest of the hold goes back to the buyer now; a failure here is retried by the sweep.
    await this.money.settle(id).catch((err: unknown) => this.log.error({ err, job: id }, 'settlement after cancel failed'));
    return jobView((await this.store.getJob(id)) ?? r.job);
  }

  /** Tells agents to drop leases that no longer count (a cancelled job, a task decided without them). */
  async revoke(leases: ReadonlyArray<TaskRef & { nodeId: string }>, reason: string): Promise<void> {
    const byNode = new Map<string, string[]>();
    for (const t of leases) {
      const list = byNode.get(t.nodeId) ?? [];
      list.push(taskId(t.jobId, t.index));
      byNode.set(t.nodeId, list);
    }
    for (const [nodeId, ids] of byNode) {
      const s = this.sessions.get(nodeId);
      if (s) {
        s.send({ type: 'revoke', taskIds: ids, reason });
        s.credit += ids.length; // the agent frees those slots without reporting
      } else {
        // Attached to another coordinator (or gone): whoever holds its socket tells it.
        await this.store.publish({ type: 'revoke', nodeId, taskIds: ids, reason });
      }
    }
  }

  /** Who runs a node and from where, so that replicas of a task stay apart (operator: as issuance counts it). */
  async placement(nodeId: string): Promise<Placement> {
    return { operator: await this.issuance.operatorOf(nodeId), prefix: ipPrefix(this.sessions.get(nodeId)?.remote ?? `node:${nodeId}`) };
  }

  // ---- dispatch ----------------------------------------------------------------

  /** Asks for a dispatch round soon; rounds never overlap, and requests while one runs coalesce. */
  kick(): void {
    if (this.closed) return;
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = true;
    setImmediate(() => void this.dispatchLoop());
  }

  /** Rounds until one leases nothing; the first may be given its one job (`announceJob`). */
  private async dispatchLoop(only?: RunnableJob): Promise<void> {
    try {
      do {
        this.dispatchAgain = false;
        const leased = await (only ? this.dispatchJob(only) : this.dispatchOnce());
        only = undefined;
        if (leased > 0) this.dispatchAgain = true;
      } while (this.dispatchAgain && !this.closed);
    } catch (err) {
      this.log.error({ err }, 'dispatch failed');
    } finally {
      this.dispatching = false;
    }
  }

  private async dispatchOnce(): Promise<number> {
    if (!this.workMaybe) return 0;
    const agents = this.agentsWithCredit();
    if (agents.length === 0) return 0;
    const now = this.now();
    // Cleared before the read: work announced while it runs sets it again.
    this.workMaybe = false;
    const jobs = await this.store.runnableJobs(now).catch((err: unknown) => {
      this.workMaybe = true;
      throw err;
    });
    if (jobs.length === 0) return 0;
    this.workMaybe = true;
    return this.lease(agents, jobs, now);
  }

  /** A round with one job known to be the only runnable one; what it does not lease is announced as work. */
  private async dispatchJob(job: RunnableJob): Promise<number> {
    const agents = this.agentsWithCredit();
    const leased = agents.length === 0 ? 0 : await this.lease(agents, [job], this.now()).catch((err: unknown) => {
      this.announceWork();
      throw err;
    });
    if (leased < job.queued) this.announceWork();
    return leased;
  }

  private agentsWithCredit(): AgentSession[] {
    return [...this.sessions.values()].filter((s) => s.state === 'active' && s.credit > 0);
  }

  /** Plans, claims and sends leases of these runnable jobs to these agents; returns how many tasks were leased. */
  private async lease(agents: AgentSession[], runnable: readonly RunnableJob[], now: number): Promise<number> {
    // Inference tasks are leased by inference.ts to an agent serving the model, never scheduled here;
    // capacity probes by probes.ts only.
    const jobs = runnable.filter((j) => j.runtime !== 'llm' && j.caller !== PROBE_CALLER);
    if (jobs.length === 0) return 0;
    const { plan, gate, schedAgents, asks } = await this.plan(agents, jobs);
    if (plan.length === 0) return 0;
    // Jobs verified by replication offer their queued replicas first, kept apart by operator and prefix.
    const placements = new Map<string, Placement>();
    const claims: Claim[] = [];
    for (const p of plan) {
      const replicated = await this.verifier.replicated(p.jobId);
      if (replicated && !placements.has(p.agentId)) placements.set(p.agentId, await this.placement(p.agentId));
      const where = replicated ? placements.get(p.agentId) : undefined;
      claims.push({ jobId: p.jobId, nodeId: p.agentId, count: p.count, ask: asks.get(p.agentId) ?? 0, ...(where ? { replicas: where } : {}) });
    }
    const claimed = await timed(this.metrics, 'claim', () => this.store.claimTasks(claims, now, this.opts.leaseMs));
    claimed.push(...await this.claimLeftovers(plan, claimed, schedAgents, jobs, gate, placements, now));
    if (gate) await this.recordCrossings(claimed, jobs);
    await this.sendLeases(claimed);
    return claimed.length;
  }

  /** Which agents take how many tasks of which jobs, as the scheduler and the organisations' policies decide. */
  private async plan(agents: readonly AgentSession[], jobs: readonly RunnableJob[]) {
    const gate = await this.governance.filter(agents.map((a) => ({ nodeId: a.nodeId, runtimes: a.capabilities.runtimes, free: a.credit, region: a.capabilities.region })), jobs);
    const schedAgents = agents.map((a) => ({
      id: a.nodeId, free: a.credit, runtimes: a.capabilities.runtimes, memoryMb: a.capabilities.memoryMb, cores: a.capabilities.cores,
      ask: a.capabilities.ask ?? 0,
    }));
    const plan = schedule(
      schedAgents,
      jobs,
      gate ? { maxPerAgent: this.opts.leaseBatch, allowed: gate.allowed, quota: gate.quota } : { maxPerAgent: this.opts.leaseBatch },
    );
    const asks = new Map(agents.map((a) => [a.nodeId, a.capabilities.ask ?? 0]));
    return { plan, gate, schedAgents, asks };
  }

  /** Sends claimed tasks to their agents; an agent gone meanwhile has its tasks handed straight back. */
  private async sendLeases(claimed: readonly ClaimedTask[]): Promise<void> {
    const byNode = new Map<string, LeasedTask[]>();
    for (const t of claimed) {
      const list = byNode.get(t.nodeId) ?? [];
      list.push({
        taskId: taskId(t.jobId, t.index),
        jobId: t.jobId,
        index: t.index,
        attempt: t.attempt,
        runtime: t.runtime,
        module: t.instrumentedModule,
        input: bytesToBase64(t.input),
        limits: t.limits,
        leaseExpiresAt: t.leaseExpiresAt,
      });
      byNode.set(t.nodeId, list);
    }
    for (const [nodeId, tasks] of byNode) {
      const s = this.sessions.get(nodeId);
      if (!s) {
        // The agent went away while we claimed: hand its tasks straight back.
        const r = await this.store.releaseTasks(nodeId, tasks.map((t) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt })), this.now());
        this.notifyJobs(r.jobs);
        this.announceWork();
        continue;
      }
      s.credit -= tasks.length;
      this.issuance.leased(nodeId, tasks.length);
      s.send({ type: 'lease', tasks });
    }
    this.metrics.tasksLeased.inc(claimed.length);
    this.notifyJobs(new Set(claimed.map((t) => t.jobId)), { running: true });
  }

  /**
   * The plan does not know which nodes a replica may go to (apart from its
   * task's other executions), so what the planned agent of a replicated job
   * could not take is offered, in the same round, to the agents with credit
   * left that may run the job. Without this, a deterministic plan could hand
   * the last replica to the node that ran the task, round after round.
   */
  private async claimLeftovers(plan: ReadonlyArray<{ jobId: string; agentId: string; count: number }>, claimed: readonly ClaimedTask[],
    agents: readonly SchedAgent[], jobs: readonly RunnableJob[], gate: Awaited<ReturnType<Governance['filter']>>, placements: Map<string, Placement>, now: number): Promise<ClaimedTask[]> {
    const short = new Map<string, number>();
    for (const p of plan) {
      if (!(await this.verifier.replicated(p.jobId))) continue;
      const got = claimed.filter((t) => t.jobId === p.jobId && t.nodeId === p.agentId).length;
      if (got < p.count) short.set(p.jobId, (short.get(p.jobId) ?? 0) + p.count - got);
    }
    if (short.size === 0) return [];
    const used = new Map<string, number>();
    for (const t of claimed) used.set(t.nodeId, (used.get(t.nodeId) ?? 0) + 1);
    const out: ClaimedTask[] = [];
    for (const [jobId, missing] of short) {
      const job = jobs.find((j) => j.id === jobId);
      if (!job) continue;
      let left = missing;
      for (const a of agents) {
        const free = Math.min(a.free - (used.get(a.id) ?? 0), this.opts.leaseBatch);
        if (left <= 0) break;
        if (free <= 0 || !eligible(a, job) || (gate && (!gate.allowed(a.id, jobId) || gate.quota?.key(a.id, jobId) !== undefined))) continue;
        const where = placements.get(a.id) ?? (await this.placement(a.id));
        placements.set(a.id, where);
        const got = await this.store.claimTasks([{ jobId, nodeId: a.id, count: Math.min(free, left), ask: a.ask ?? 0, replicas: where }], now, this.opts.leaseMs);
        used.set(a.id, (used.get(a.id) ?? 0) + got.length);
        left -= got.length;
        out.push(...got);
      }
    }
    return out;
  }

  /** Leader work: money movements into the log (one batch root per sweep), then a checkpoint when due. */
  private async auditSweep(): Promise<void> {
    if (!this.auditLog) return;
    try {
      await this.auditLedger();
      await this.audit.checkpointIfDue();
    } catch (err) {
      this.log.error({ err }, 'audit sweep failed; retrying');
    }
  }

  /** Ledger transfers since the last entry, as one audit entry carrying their Merkle root (one at a time in this process). */
  private auditLedger(): Promise<void> {
    const run = this.auditLedgerChain.then(() => this.auditLedgerOnce());
    this.auditLedgerChain = run.catch(() => undefined);
    return run;
  }

  private async auditLedgerOnce(): Promise<void> {
    {
      const [cur] = await this.store.records('cursor', { ids: ['audit-ledger'], limit: 1 });
      const after = (cur?.doc as { seq?: number } | undefined)?.seq ?? -1;
      const transfers = await this.store.ledgerTransfers({ afterSeq: after, limit: 10_000 });
      if (transfers.length > 0) {
        const last = transfers[transfers.length - 1]!;
        await this.audit.record({
          type: 'ledger.transfers', actor: 'system',
          data: { fromSeq: transfers[0]!.seq, toSeq: last.seq, count: transfers.length, root: ledgerBatchRoot(transfers) },
        });
        await this.store.commitRecords({ records: [{ kind: 'cursor', id: 'audit-ledger', state: 'ok', doc: { seq: last.seq } }] }, this.now());
      }
    }
  }

  /** Deposits from the chain and Lightning; an unreachable backend is logged and tried again next time. */
  private async pollTreasury(): Promise<void> {
    try {
      const r = await this.deposits.pollChain();
      if (r.credited + r.reversed > 0) this.log.info(r, 'chain deposits reconciled');
      this.metrics.depositsCredited.inc({ rail: 'chain', action: 'credit' }, r.credited);
      this.metrics.depositsCredited.inc({ rail: 'chain', action: 'reverse' }, r.reversed);
    } catch (err) {
      this.log.warn({ err: err instanceof ImError ? err.toWire() : err }, 'chain poll failed; retrying later');
    }
    try {
      this.metrics.depositsCredited.inc({ rail: 'lightning', action: 'credit' }, await this.deposits.pollLightning(0));
    } catch (err) {
      this.log.warn({ err: err instanceof ImError ? err.toWire() : err }, 'lightning poll failed; retrying later');
    }
    try {
      await this.payouts.sweep();
      if (this.deposits.onChain && this.now() - this.lastBatch >= this.opts.payoutIntervalMs) {
        this.lastBatch = this.now();
        await this.payouts.buildBatch();
      }
    } catch (err) {
      this.log.warn({ err: err instanceof ImError ? err.toWire() : err }, 'payouts sweep failed; retrying later');
    }
  }

  /** The first time an organisation's job runs outside its pool, the audit log says so. */
  private async recordCrossings(claimed: readonly { jobId: string; nodeId: string }[], runnable: readonly RunnableJob[]): Promise<void> {
    const members = await this.governance.memberships();
    const jobs = new Map(runnable.map((j) => [j.id, j]));
    const byJob = new Map<string, Array<{ jobId: string; nodeId: string }>>();
    for (const t of claimed) byJob.set(t.jobId, [...(byJob.get(t.jobId) ?? []), t]);
    for (const [jobId, tasks] of byJob) {
      const job = jobs.get(jobId); // what the round planned with: no read per job
      if (!job?.caller.startsWith('org:')) continue;
      const org = job.caller.slice(4);
      const out = tasks.filter((t) => members.get(t.nodeId)?.orgId !== org);
      if (out.length === 0) continue;
      await this.governance.countCrossing(jobId, out.length);
      if (this.crossed.has(jobId)) continue;
      this.crossed.add(jobId);
      await this.audit.record({ type: 'job.crossed', org, subject: jobId, actor: 'scheduler', data: { node: out[0]!.nodeId, label: job.label ?? 'public' } });
    }
  }

  // ---- results and leases -------------------------------------------------------

  private async sweep(): Promise<void> {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    try {
      const now = this.now();
      // Every coordinator meters its own agents.
      await this.issuance.tick(now).catch((err: unknown) => this.log.warn({ err }, 'issuance metering failed'));
      // Periodic work runs on one coordinator of those sharing the store: the lock holder.
      // Each step gives the event loop a turn first: with SQLite the steps run synchronously,
      // and requests and results waiting behind one long sweep is what the latency tail is made of.
      if (await this.store.holdsLock('sweep')) {
        await breath();
        const r = await this.store.expireLeases(now, errorFrom('IM_LEASE_EXPIRED'));
        if (r.requeued + r.failed > 0) {
          this.metrics.leasesExpired.inc(r.requeued + r.failed);
          this.log.warn({ requeued: r.requeued, failed: r.failed }, 'leases expired');
          this.notifyJobs(r.jobs);
          if (r.requeued > 0) this.announceWork();
        }
        // Nodes whose coordinator died with their socket never said goodbye.
        await this.store.markStaleNodes(now - Math.max(3 * this.opts.heartbeatMs, this.opts.leaseMs));
        await breath();
        await this.verifier.sweep().catch((err: unknown) => this.log.error({ err }, 'verification sweep failed'));
        await breath();
        await this.money.sweep();
        await breath();
        await this.issuance.leaderWork(now).catch((err: unknown) => this.log.error({ err }, 'issuance failed; retried next sweep'));
        await breath();
        await this.auditSweep();
        if (now - this.lastChainPoll >= this.opts.chainPollMs) {
          this.lastChainPoll = now;
          await this.pollTreasury();
        }
        if (now - this.lastNoncePurge > 60_000) {
          this.lastNoncePurge = now;
          await this.store.purgeNonces(now);
        }
      }
      // Also picks up tasks whose retry backoff has passed.
      this.announceWorkHere();
    } catch (err) {
      this.log.error({ err }, 'sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}

/** Nonces seen within the clock-skew window, in memory; old ones fall out as new ones arrive. */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  /** False if the nonce was seen and has not expired. */
  use(key: string, expiresAt: number, now: number): boolean {
    const prior = this.seen.get(key);
    if (prior !== undefined && prior > now) return false;
    this.seen.set(key, expiresAt);
    // Maps iterate in insertion order, and every entry lives equally long: drop from the front.
    for (const [k, exp] of this.seen) {
      if (exp > now) break;
      this.seen.delete(k);
    }
    return true;
  }
}

export function moduleInfo(m: StoredModule): ModuleInfo {
  return {
    hash: m.hash,
    instrumentedHash: m.instrumentedHash,
    size: m.size,
    instrumentedSize: m.instrumentedSize,
    abi: m.abi,
    memory: { initialPages: m.initialPages, maxPages: m.maxPages },
    createdAt: m.createdAt,
  };
}

/** A job as a dispatch round sees it (its queued and leased counts given). */
function runnableOf(job: Pick<NewJob, 'id' | 'runtime' | 'priority' | 'bid' | 'caller' | 'createdAt' | 'limits' | 'requirements' | 'label' | 'dataClasses'>, queued: number, leased = 0): RunnableJob {
  return {
    id: job.id, runtime: job.runtime, queued, leased, priority: job.priority, bid: job.bid,
    caller: job.caller, createdAt: job.createdAt, memoryMb: job.limits.memoryMb, requirements: job.requirements,
    ...(job.label !== undefined ? { label: job.label } : {}), ...(job.dataClasses !== undefined ? { dataClasses: job.dataClasses } : {}),
  };
}

export function jobView(j: JobRecord): JobView {
  const v: JobView = {
    id: j.id,
    state: j.state,
    module: j.module,
    runtime: j.runtime,
    limits: j.limits,
    bid: j.bid,
    maxAttempts: j.maxAttempts,
    retryBackoffMs: j.retryBackoffMs,
    priority: j.priority,
    requirements: j.requirements,
    counts: j.counts,
    fuelUsed: j.fuelUsed,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
  };
  if (j.name !== undefined) v.name = j.name;
  if (j.finishedAt !== undefined) v.finishedAt = j.finishedAt;
  if (j.buyer !== undefined) v.buyer = j.buyer;
  if (j.holdMsat !== undefined) v.holdMsat = j.holdMsat.toString();
  if (j.settledAt !== undefined) v.settledAt = j.settledAt;
  if (j.label !== undefined) v.label = j.label;
  if (j.dataClasses !== undefined) v.dataClasses = j.dataClasses;
  if (j.verification !== undefined) v.verification = j.verification;
  return v;
}

export function resultView(t: TaskRow): TaskResultView {
  const v: TaskResultView = { index: t.index, state: t.state, attempts: t.attempt };
  if (t.output !== undefined && t.state === 'succeeded') v.output = bytesToBase64(t.output);
  if (t.fuel !== undefined) v.fuel = t.fuel;
  if (t.error !== undefined && t.state !== 'succeeded') v.error = t.error;
  if (t.nodeId !== undefined) v.nodeId = t.nodeId;
  if (t.finishedAt !== undefined) v.finishedAt = t.finishedAt;
  return v;
}

/** The Merkle root (hex) over a batch of ledger transfers, each as canonical JSON: what the audit log commits to. */
export function ledgerBatchRoot(transfers: readonly Transfer[]): string {
  const leaves = transfers.map((t) => merkleLeafHash(utf8(canonicalJson({ ...t, amount: t.amount.toString() }))));
  return Buffer.from(merkleRoot(leaves)).toString('hex');
}

/** Each input of a python or js job is a CodeEvalInput (JSON): refused at submit, not on an agent. */
function checkCodeInputs(inputs: readonly string[]): void {
  inputs.forEach((b64, i) => {
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(base64ToBytes(b64)));
    } catch {
      throw new ImError('IM_VALIDATION', `input ${i} is not UTF-8 JSON: a code task is {"program", "tests", "seed"?}`);
    }
    const r = CodeEvalInput.safeParse(v);
    if (!r.success) throw new ImError('IM_VALIDATION', `input ${i}: ${r.error.issues.slice(0, 3).map((x) => `${x.path.join('.') || '(input)'}: ${x.message}`).join('; ')}`);
  });
}
