/**
 * LLM inference through the mesh, behind the OpenAI-compatible API.
 *
 * One request is one job of one `llm` task: the task's module is the model's
 * hash, its input the request. It is leased straight to the agent chosen here
 * (models are not scheduled like wasm work), and everything else is the
 * ordinary machinery: the escrow hold at submit, the signed result with its
 * receipt (output: the whole completion; fuel: tokens × the model's size
 * weight), charges at the serving node's ask, settlement, the audit trail.
 * While it runs, the agent streams OpenAI chunks (`stream` messages) that are
 * relayed as they come.
 *
 * Routing: agents that advertise the model, active, lowest ask first, then
 * fewest requests in flight. An agent that fails before the first chunk is
 * replaced by the next; after the first chunk the stream ends with an error
 * event. No agent with room: 429 with Retry-After; no agent with the model:
 * 404 model_not_found.
 */
import { FUEL_PER_TOKEN, ImError, SIZE_CLASS_WEIGHT, newJobId, taskId } from '@idlemesh/protocol';
import type { LeasedTask, ModelOffer } from '@idlemesh/protocol';
import { ACCOUNTS } from './settlement/index.js';
import type { AgentSession, Core } from './core.js';
import type { Outcome, OutcomeStatus } from './store/index.js';
import { SplitGroups, type SplitGroup, type SplitRun } from './split-service.js';
import type { HostOffer } from './model-registry.js';
import { InferenceChecker } from './inference-check.js';

/** Requests one agent serves at once before the next goes elsewhere (it queues per model inside). */
export const MAX_IN_FLIGHT_PER_NODE = 4;
const DEFAULT_MAX_TOKENS = 512;
const TIMEOUT_MS = 300_000;

export type InferenceKind = 'chat' | 'completion';

export interface InferenceRequest {
  caller: string;
  kind: InferenceKind;
  /** The OpenAI request body, as received (the agent's backend validates the rest). */
  body: Record<string, unknown>;
  /** Chunks (OpenAI JSON text) as they arrive; only for streaming requests. */
  onChunk?: (data: string) => void;
  signal: AbortSignal;
}

export interface InferenceResult {
  jobId: string;
  nodeId: string;
  /** The final OpenAI response object (JSON text) the agent signed. */
  output: string;
  fuel: number;
}

interface Pending {
  nodeId: string;
  attempt: number;
  chunks: number;
  onChunk: ((data: string) => void) | undefined;
  settle: (r: RunOutcome) => void;
  /** Leased ahead of its commit (see leaseAhead): chunks wait here until the job, its hold and the claim are stored. */
  held?: string[];
}

type RunOutcome = { ok: true; output: string; fuel: number } | { ok: false; error: ImError; retry: boolean };

/** An OpenAI-shaped failure: the HTTP layer renders it as {error:{message,type,param,code}}. */
export class OpenAiError extends Error {
  constructor(readonly status: number, readonly type: string, readonly code: string | null, message: string, readonly param: string | null = null, readonly retryAfterSec?: number) {
    super(message);
  }
}

export class Inference {
  private readonly pending = new Map<string, Pending>();
  private readonly inFlight = new Map<string, number>();
  /** Leases sent ahead of their commit (leaseAhead): resolves true once stored, false if storing failed. */
  private readonly persisting = new Map<string, Promise<boolean>>();
  /** Samples greedy answers for a teacher-forced check by a second node (reputation only). */
  readonly checker: InferenceChecker;
  /** Split groups: models served by several agents, each holding some layers (split-service.ts). */
  readonly split: SplitGroups;
  /** Split requests in flight, by task id: their stages, for the charges. */
  private readonly splitRuns = new Map<string, { nodeId: string; attempt: number; run: SplitRun }>();

  constructor(private readonly core: Core) {
    this.checker = new InferenceChecker(core, core.opts.inferenceCheckRate);
    this.split = new SplitGroups(core);
  }

  /** Models some connected agent serves now, OpenAI's list shape plus where and how big. */
  models(): Array<{ id: string; object: 'model'; created: number; owned_by: string; hosts: number; size_class: string; context_size: number; hash: string }> {
    const byId = new Map<string, { offer: ModelOffer; hosts: number }>();
    for (const s of this.core.sessions.values()) {
      if (s.state !== 'active') continue;
      for (const m of s.capabilities.models ?? []) {
        const seen = byId.get(m.id);
        if (seen) seen.hosts++;
        else byId.set(m.id, { offer: m, hosts: 1 });
      }
    }
    const plain = [...byId.values()].sort((a, b) => a.offer.id.localeCompare(b.offer.id)).map(({ offer, hosts }) => ({
      id: offer.id, object: 'model' as const, created: 0, owned_by: 'idlemesh', hosts, size_class: offer.sizeClass, context_size: offer.contextSize, hash: offer.hash,
    }));
    // A split group is one more model (unless an agent serves the same id whole: that one is used).
    const split = this.split.list().filter((g) => !byId.has(g.model)).map((g) => ({
      id: g.model, object: 'model' as const, created: 0, owned_by: 'idlemesh-split', hosts: g.stages.length, size_class: g.sizeClass, context_size: g.contextSize, hash: g.hash,
      split: { engine: g.engine, group: g.id, blocks: g.blocks, stages: g.stages.map((s) => ({ node: s.nodeId, from: s.from, to: s.to })), spares: g.spares.length },
    }));
    return [...plain, ...split];
  }

  /** Every model offer of an active agent, with its ask and requests in flight: the registry's hosts. */
  hostOffers(): HostOffer[] {
    const out: HostOffer[] = [];
    for (const s of this.core.sessions.values()) {
      if (s.state !== 'active') continue;
      for (const offer of s.capabilities.models ?? []) out.push({ nodeId: s.nodeId, ask: s.capabilities.ask ?? 0, inFlight: this.inFlight.get(s.nodeId) ?? 0, offer });
    }
    return out;
  }

  /** Runs one request to the end; throws OpenAiError for what the caller should see. */
  async run(req: InferenceRequest): Promise<InferenceResult> {
    const model = req.body.model;
    if (typeof model !== 'string' || model.length === 0) throw new OpenAiError(400, 'invalid_request_error', null, 'model is required', 'model');
    const maxTokens = positiveInt(req.body.max_completion_tokens ?? req.body.max_tokens) ?? DEFAULT_MAX_TOKENS;
    const tried = new Set<string>();
    let jobId: string | undefined;
    for (;;) {
      const pick = this.choose(model, tried);
      if (pick === 'none' && tried.size === 0) {
        const group = this.split.group(model);
        if (group) return this.runSplit(req, group, maxTokens);
      }
      if (pick === 'none') throw new OpenAiError(404, 'invalid_request_error', 'model_not_found', `no agent serves the model ${model}`, 'model');
      if (pick === 'busy') throw new OpenAiError(429, 'rate_limit_error', 'no_capacity', `every agent serving ${model} is busy; retry shortly`, null, 1);
      const { session, offer } = pick;
      tried.add(session.nodeId);
      const weight = SIZE_CLASS_WEIGHT[offer.sizeClass];
      const ctx = offer.contextSize;
      // The most this request can cost: the context's worth of tokens (prompt + completion) at the node's ask.
      const fuelLimit = Math.min(ctx, maxTokens + ctx) * weight * FUEL_PER_TOKEN;
      let outcome: RunOutcome;
      if (jobId === undefined) {
        const ahead = await this.leaseAhead(req, offer, session, fuelLimit);
        jobId = ahead.jobId;
        outcome = await ahead.outcome;
      } else {
        const lease = await this.lease(jobId, session);
        if (!lease) continue; // the agent left between the choice and the claim
        outcome = await this.await(lease, session, req);
      }
      if (outcome.ok) {
        this.checker.consider({ nodeId: session.nodeId, offer, kind: req.kind, body: req.body, output: outcome.output, jobId });
        return { jobId, nodeId: session.nodeId, output: outcome.output, fuel: outcome.fuel };
      }
      if (!outcome.retry) throw toOpenAi(outcome.error);
      this.core.log.warn({ job: jobId, node: session.nodeId.slice(0, 12), err: outcome.error.message }, 'inference failed before its first chunk; trying another agent');
    }
  }

  /**
   * A split request: one `llm` task leased to the group's head (stage 0) with
   * the plan in its input; the head drives the other stages through the
   * coordinator (stage-frame). The hold covers the fuel limit × the split
   * multiplier at the highest ask of the group's agents; the charges are
   * the head's fuel × the multiplier, shared by layers (see charges()).
   */
  private async runSplit(req: InferenceRequest, group: SplitGroup, maxTokens: number): Promise<InferenceResult> {
    const weight = SIZE_CLASS_WEIGHT[group.sizeClass];
    const ctx = group.contextSize;
    const fuelLimit = Math.min(ctx, maxTokens + ctx) * weight * FUEL_PER_TOKEN;
    const bid = this.split.maxAsk(group);
    let jobId: string | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const head = this.core.sessions.get(group.stages[0]!.nodeId);
      if (!head) break;
      const plan = { group: group.id, engine: group.engine, model: group.model, hash: group.hash, blocks: group.blocks, stages: group.stages };
      jobId ??= await this.createJob(req, { id: group.model, hash: group.hash }, head, fuelLimit, { bid, holdFuel: Math.ceil(fuelLimit * this.split.multiplier), split: plan, name: `${req.kind} ${group.model} (split ${group.stages.length})` });
      const run = this.split.begin(group, bid);
      try {
        const lease = await this.lease(jobId, head);
        if (!lease) continue;
        this.splitRuns.set(lease.taskId, { nodeId: head.nodeId, attempt: lease.attempt, run });
        try {
          const outcome = await this.await(lease, head, req);
          if (outcome.ok) return { jobId, nodeId: head.nodeId, output: outcome.output, fuel: outcome.fuel };
          if (!outcome.retry) throw toOpenAi(outcome.error);
          this.core.log.warn({ job: jobId, group: group.id, err: outcome.error.message }, 'split request failed before its first chunk; trying once more');
        } finally {
          this.splitRuns.delete(lease.taskId);
        }
      } finally {
        this.split.end(run);
      }
      const again = this.split.group(group.model);
      if (!again) break;
      group = again;
    }
    throw new OpenAiError(503, 'server_error', 'IM_SPLIT_NO_GROUP', `no split group can serve ${group.model} now; retry shortly`, null, 1);
  }

  /**
   * Before a results batch is committed: a split request's success is
   * charged to its stages (the head's fuel × multiplier, by layers) instead
   * of to the head alone.
   */
  splitCharges(nodeId: string, outcomes: Outcome[]): void {
    for (const o of outcomes) {
      const r = this.splitRuns.get(taskId(o.jobId, o.index));
      if (!r || !o.ok || r.nodeId !== nodeId || r.attempt !== o.attempt) continue;
      o.charges = this.split.charges(r.run, o.fuel);
    }
  }

  /** A `stream` message from an agent: relayed if it belongs to a request in flight from that agent. */
  onStream(nodeId: string, t: { taskId: string; attempt: number; seq: number; data: string }): void {
    const p = this.pending.get(t.taskId);
    if (!p || p.nodeId !== nodeId || p.attempt !== t.attempt) return;
    p.chunks++;
    if (p.held) p.held.push(t.data);
    else p.onChunk?.(t.data);
  }

  /** After a results batch is committed: finishes the requests whose result it carried. */
  onResults(nodeId: string, outcomes: readonly Outcome[], statuses: readonly OutcomeStatus[]): void {
    outcomes.forEach((o, i) => {
      const id = taskId(o.jobId, o.index);
      const p = this.pending.get(id);
      if (!p || p.nodeId !== nodeId || p.attempt !== o.attempt) return;
      if (statuses[i] !== 'accepted') return;
      if (o.ok) p.settle({ ok: true, output: Buffer.from(o.output ?? new Uint8Array()).toString('utf8'), fuel: o.fuel });
      else {
        const code = o.error?.code === 'IM_VALIDATION' ? 'IM_VALIDATION' : 'IM_AGENT_ERROR';
        p.settle({ ok: false, error: new ImError(code, o.error?.message ?? 'inference failed'), retry: p.chunks === 0 && o.error?.retryable === true });
      }
    });
  }

  /** The agent's socket closed: its requests fail over if nothing was streamed yet. */
  nodeGone(nodeId: string): void {
    this.split.nodeGone(nodeId);
    for (const p of this.pending.values()) {
      if (p.nodeId === nodeId) p.settle({ ok: false, error: new ImError('IM_AGENT_ERROR', 'the agent disconnected'), retry: p.chunks === 0 });
    }
  }

  private choose(model: string, tried: ReadonlySet<string>): { session: AgentSession; offer: ModelOffer } | 'none' | 'busy' {
    let served = false;
    let best: { session: AgentSession; offer: ModelOffer } | undefined;
    // Lowest ask first, then fewest in flight; a node that failed an honesty check in the last hour comes last.
    const now = this.core.now();
    const load = (x: AgentSession): number => this.inFlight.get(x.nodeId) ?? 0;
    const before = (x: AgentSession, y: AgentSession): boolean => {
      const dx = this.checker.isDemoted(x.nodeId, now);
      const dy = this.checker.isDemoted(y.nodeId, now);
      if (dx !== dy) return dy;
      const ax = x.capabilities.ask ?? 0;
      const ay = y.capabilities.ask ?? 0;
      return ax !== ay ? ax < ay : load(x) < load(y);
    };
    for (const s of this.core.sessions.values()) {
      const offer = s.capabilities.models?.find((m) => m.id === model);
      if (!offer || s.state !== 'active') continue;
      served = true;
      if (tried.has(s.nodeId) || (this.inFlight.get(s.nodeId) ?? 0) >= MAX_IN_FLIGHT_PER_NODE) continue;
      if (!best || before(s, best.session)) best = { session: s, offer };
    }
    return best ?? (served ? 'busy' : 'none');
  }

  /** split: a split request's bid, hold and plan (the plan goes into the task input, so the head's receipt binds it). */
  private async createJob(req: InferenceRequest, offer: Pick<ModelOffer, 'id' | 'hash'>, session: AgentSession, fuelLimit: number,
    split?: { bid: number; holdFuel: number; split: object; name: string }, ahead?: { id: string; now: number; input: Uint8Array }): Promise<string> {
    const core = this.core;
    const now = ahead?.now ?? core.now();
    const id = ahead?.id ?? newJobId(now);
    const bid = split?.bid ?? session.capabilities.ask ?? 0;
    const buyer = ACCOUNTS.buyer(req.caller);
    const hold = core.money.hold({ jobId: id, buyer, tasks: 1, fuelLimit: split?.holdFuel ?? fuelLimit, bid, maxExecutionsPerTask: 1 });
    const input = ahead?.input ?? requestInput(req, split?.split);
    try {
      await core.store.createJob({
        id, caller: req.caller, requestHash: '', name: split?.name ?? `${req.kind} ${offer.id}`, module: offer.hash, instrumentedModule: offer.hash, runtime: 'llm',
        limits: limitsFor(fuelLimit),
        bid, maxAttempts: 3, retryBackoffMs: 0, priority: 1, requirements: {}, createdAt: now,
        verification: { mode: 'trusted' },
        ...(hold ? { buyer, holdMsat: hold.amount, fees: core.money.fees } : {}),
      }, [input], hold?.batch);
    } catch (err) {
      const e = hold ? await core.money.explainHoldFailure(err, buyer, hold.amount) : err;
      throw e instanceof ImError ? toOpenAi(e) : e;
    }
    core.metrics.jobsSubmitted.inc();
    return id;
  }

  /**
   * A request's first try: the lease goes to the agent first and the job,
   * its hold and the claim are stored while the agent already asks its
   * backend, instead of before (about a millisecond off the time to first
   * token). Until they are stored, the request's chunks are held back and its
   * result waits (persisted()); if storing fails (no balance, say), the
   * lease is revoked and the agent's work is thrown away unseen.
   */
  private async leaseAhead(req: InferenceRequest, offer: ModelOffer, session: AgentSession, fuelLimit: number): Promise<{ jobId: string; outcome: Promise<RunOutcome> }> {
    const core = this.core;
    const now = core.now();
    const id = newJobId(now);
    const input = requestInput(req);
    const lease: LeasedTask = {
      taskId: taskId(id, 0), jobId: id, index: 0, attempt: 1, runtime: 'llm', module: offer.hash,
      input: Buffer.from(input).toString('base64'), limits: limitsFor(fuelLimit), leaseExpiresAt: now + core.opts.leaseMs,
    };
    const outcome = this.await(lease, session, req);
    const p = this.pending.get(lease.taskId);
    if (p) p.held = [];
    let storedOk!: (ok: boolean) => void;
    this.persisting.set(lease.taskId, new Promise<boolean>((resolve) => (storedOk = resolve)));
    // Sent before the store is touched: with SQLite the commits below run synchronously.
    session.send({ type: 'lease', tasks: [lease] });
    try {
      await this.createJob(req, offer, session, fuelLimit, undefined, { id, now, input });
      const [t] = await core.store.claimTasks([{ jobId: id, nodeId: session.nodeId, count: 1, ask: session.capabilities.ask ?? 0 }], now, core.opts.leaseMs);
      if (!t || t.attempt !== lease.attempt || t.leaseExpiresAt !== lease.leaseExpiresAt) throw new OpenAiError(500, 'server_error', null, 'the inference task could not be leased');
      storedOk(true);
    } catch (err) {
      storedOk(false);
      session.send({ type: 'revoke', taskIds: [lease.taskId], reason: 'the request could not be stored' });
      p?.settle({ ok: false, error: new ImError('IM_CANCELLED', 'not stored'), retry: false });
      await outcome;
      throw err;
    } finally {
      this.persisting.delete(lease.taskId);
    }
    core.notifyJobs([id]);
    if (p?.held) {
      const held = p.held;
      delete p.held;
      for (const c of held) p.onChunk?.(c);
    }
    return { jobId: id, outcome };
  }

  /** Results of tasks leased ahead of their commit wait for it (with PostgreSQL, a fast agent can answer first). */
  persisted(taskIds: readonly string[]): Promise<unknown> | undefined {
    if (this.persisting.size === 0) return undefined;
    const waits = taskIds.map((t) => this.persisting.get(t)).filter((w) => w !== undefined);
    return waits.length > 0 ? Promise.all(waits) : undefined;
  }

  private async lease(jobId: string, session: AgentSession): Promise<LeasedTask | undefined> {
    const core = this.core;
    if (core.sessions.get(session.nodeId) !== session) return undefined;
    const now = core.now();
    const ask = session.capabilities.ask ?? 0;
    const [t] = await core.store.claimTasks([{ jobId, nodeId: session.nodeId, count: 1, ask }], now, core.opts.leaseMs);
    if (!t) throw new OpenAiError(500, 'server_error', null, 'the inference task could not be leased');
    const leased: LeasedTask = {
      taskId: taskId(t.jobId, t.index), jobId: t.jobId, index: t.index, attempt: t.attempt, runtime: 'llm', module: t.instrumentedModule,
      input: Buffer.from(t.input).toString('base64'), limits: t.limits, leaseExpiresAt: t.leaseExpiresAt,
    };
    session.send({ type: 'lease', tasks: [leased] });
    core.notifyJobs([jobId]);
    return leased;
  }

  /** Waits for a leased request's outcome; the wait is registered before the first await, so a caller may send the lease after calling. */
  private async await(lease: LeasedTask, session: AgentSession, req: InferenceRequest): Promise<RunOutcome> {
    const core = this.core;
    this.inFlight.set(session.nodeId, (this.inFlight.get(session.nodeId) ?? 0) + 1);
    const result = await new Promise<RunOutcome>((resolve) => {
      let done = false;
      const timer = setTimeout(() => settle({ ok: false, error: new ImError('IM_TIMEOUT', `no answer within ${TIMEOUT_MS / 1000} s`), retry: false }), TIMEOUT_MS);
      const onAbort = (): void => settle({ ok: false, error: new ImError('IM_CANCELLED', 'the client went away'), retry: false });
      req.signal.addEventListener('abort', onAbort, { once: true });
      const settle: Pending['settle'] = (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.signal.removeEventListener('abort', onAbort);
        this.pending.delete(lease.taskId);
        resolve(r);
      };
      this.pending.set(lease.taskId, { nodeId: session.nodeId, attempt: lease.attempt, chunks: 0, onChunk: req.onChunk, settle });
      if (req.signal.aborted) onAbort();
    });
    this.inFlight.set(session.nodeId, Math.max(0, (this.inFlight.get(session.nodeId) ?? 1) - 1));
    // A lease sent ahead: what to hand back or cancel exists only once it is stored.
    const storing = this.persisting.get(lease.taskId);
    if (storing && !(await storing)) return result;
    if (!result.ok) {
      if (result.retry) {
        // Hand the task back so the next agent can be leased it.
        const r = await core.store.releaseTasks(session.nodeId, [{ jobId: lease.jobId, index: lease.index, attempt: lease.attempt }], core.now());
        core.notifyJobs(r.jobs);
      } else {
        // Nothing more will come: stop the agent and end the job (the hold returns what was not used).
        await core.cancelJob(lease.jobId).catch((err: unknown) => core.log.warn({ err, job: lease.jobId }, 'could not cancel an abandoned inference job'));
      }
    }
    return result;
  }
}

function requestInput(req: InferenceRequest, split?: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ kind: req.kind, request: req.body, ...(split ? { split } : {}) }));
}

function limitsFor(fuelLimit: number): LeasedTask['limits'] {
  return { fuel: fuelLimit, memoryMb: 1, timeoutMs: TIMEOUT_MS, outputBytes: 4 * 1024 * 1024 };
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** Our errors in OpenAI's vocabulary. */
export function toOpenAi(e: ImError): OpenAiError {
  switch (e.code) {
    case 'IM_INSUFFICIENT_BALANCE':
      return new OpenAiError(402, 'insufficient_quota', 'insufficient_quota', e.message);
    case 'IM_UNAUTHORIZED':
    case 'IM_KEY_REVOKED':
      return new OpenAiError(401, 'authentication_error', 'invalid_api_key', e.message);
    case 'IM_FORBIDDEN':
      return new OpenAiError(403, 'permission_error', null, e.message);
    case 'IM_VALIDATION':
      return new OpenAiError(400, 'invalid_request_error', null, e.message);
    case 'IM_CANCELLED':
      return new OpenAiError(499, 'invalid_request_error', 'cancelled', e.message);
    default:
      return new OpenAiError(502, 'server_error', e.code, e.message);
  }
}

