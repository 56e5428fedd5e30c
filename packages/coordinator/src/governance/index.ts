/**
 * Governance wired to the store: each organisation's policy document, its
 * private pool (nodes join with an enrolment token or a domain token), the
 * approvals queue for crossings to public capacity, and the placement filter
 * the dispatcher applies. The decisions themselves are policy/ (pure).
 */
import { createHash, randomBytes } from 'node:crypto';
import { ImError, MAX_CLOCK_SKEW_MS, verifyRequest } from '@idlemesh/protocol';
import type { SignedRequest } from '@idlemesh/protocol';
import type { Logger } from '../core.js';
import {
  approvalDeadline, approvalOutcome, crossingNeeded, explain, parsePolicy, placement, policyFromObject, policyHash, resolveLabel,
} from '../policy/index.js';
import type { JobLabel, NodeDecision, Policy, PolicyJob, PolicyNode } from '../policy/index.js';
import type { RunnableJob, Store } from '../store/index.js';
import type { AuditSink } from '../identity/sink.js';

/** Without a policy document an organisation's jobs may run anywhere (label public); `policy set` tightens it. */
export const NO_POLICY: Policy = policyFromObject({ version: 1, defaultLabel: 'public' });

export interface Membership {
  nodeId: string;
  orgId: string;
  tokenId: string;
  domain?: string;
  /** Operated by the organisation in the public pool too (a `--public` token): it also takes other organisations' public work. */
  public?: boolean;
  admittedAt: number;
}

export interface EnrolToken {
  id: string;
  orgId: string;
  secretHash: string;
  usesLeft: number | null;
  expiresAt: number;
  /** A capacity domain: a site enrolled as one unit; revoking the token removes all its nodes. */
  domain?: string;
  /** Its nodes are the organisation's, and also serve the public pool (issuance counts them as the organisation's). */
  public?: boolean;
  nodes: string[];
  createdAt: number;
}

export interface Approval {
  id: string;
  orgId: string;
  jobId: string;
  createdAt: number;
  reason?: string;
  decidedBy?: string;
  decidedAt?: number;
}

/** What the dispatcher may lease: allowed (agent, job) pairs, and shared quotas (approved batches). */
export interface Gate {
  allowed: (agentId: string, jobId: string) => boolean;
  quota: { key: (agentId: string, jobId: string) => string | undefined; left: Map<string, number> };
}

export interface AgentView {
  nodeId: string;
  runtimes: readonly string[];
  free: number;
  region?: string | undefined;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const CACHE_MS = 1000;

export class Governance {
  audit: AuditSink | undefined;
  private cache: {
    at: number; members: Map<string, Membership>; policies: Map<string, Policy>; approvals: Map<string, { state: string; a: Approval }>;
    stakes: Map<string, bigint>; reliability: Map<string, number>; crossings: Map<string, number>;
  } | undefined;

  /** `publicMinBondMsat`: a node outside every private pool is in the public pool only with at least this staked. */
  constructor(private readonly store: Store, private readonly log: Logger, private readonly now: () => number, private readonly publicMinBondMsat = 0n, private readonly perOperatorPerHour = 0) {}

  invalidate(): void {
    this.cache = undefined;
  }

  // ---- policy -------------------------------------------------------------------------

  async setPolicy(orgId: string, text: string, format: 'yaml' | 'json'): Promise<{ version: number; hash: string; policy: Policy }> {
    const policy = parsePolicy(text, format); // IM_VALIDATION naming the path; nothing stored on error
    const [prev] = await this.store.records('policy', { ids: [orgId], limit: 1 });
    const version = ((prev?.doc as { version?: number } | undefined)?.version ?? 0) + 1;
    const hash = policyHash(policy);
    await this.store.commitRecords({
      expect: [{ kind: 'policy', id: orgId, states: prev ? [prev.state] : ['absent'] }],
      records: [{ kind: 'policy', id: orgId, state: 'active', doc: { version, hash, format, text, setAt: this.now() } }],
    }, this.now());
    this.invalidate();
    this.log.info({ org: orgId, version, hash }, 'policy changed');
    await this.audit?.record({ type: 'policy.changed', org: orgId, subject: orgId, data: { version, hash } });
    return { version, hash, policy };
  }

  async policyRecord(orgId: string): Promise<{ version: number; hash: string; text: string; format: 'yaml' | 'json' } | undefined> {
    const [r] = await this.store.records('policy', { ids: [orgId], limit: 1 });
    return r?.doc as { version: number; hash: string; text: string; format: 'yaml' | 'json' } | undefined;
  }

  // ---- pools ----------------------------------------------------------------------------

  async createEnrolToken(orgId: string, opts: { uses?: number | null; ttlMs: number; domain?: string; public?: boolean }): Promise<{ token: string; record: EnrolToken }> {
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const record: EnrolToken = {
      id, orgId, secretHash: sha(secret), usesLeft: opts.uses ?? null, expiresAt: this.now() + opts.ttlMs, nodes: [], createdAt: this.now(),
      ...(opts.domain !== undefined ? { domain: opts.domain } : {}), ...(opts.public === true ? { public: true } : {}),
    };
    await this.store.commitRecords({ expect: [{ kind: 'enrol-token', id, states: ['absent'] }], records: [{ kind: 'enrol-token', id, state: 'active', doc: record }] }, this.now());
    return { token: `ime_${id}_${secret}`, record };
  }

  async enrolTokens(orgId: string | undefined): Promise<Array<EnrolToken & { state: string }>> {
    return (await this.store.records('enrol-token', { limit: 10_000 })).map((r) => ({ ...(r.doc as EnrolToken), state: r.state }))
      .filter((t) => orgId === undefined || t.orgId === orgId);
  }

  /** Revoking a token removes every node it admitted (a whole capacity domain at once). */
  async revokeEnrolToken(orgId: string | undefined, id: string): Promise<{ removed: string[] }> {
    const [r] = await this.store.records('enrol-token', { ids: [id], limit: 1 });
    const t = r?.doc as EnrolToken | undefined;
    if (!r || !t || (orgId !== undefined && t.orgId !== orgId)) throw new ImError('IM_NOT_FOUND', `no enrolment token ${id}`);
    const members = await this.store.records('membership', { ids: t.nodes, limit: t.nodes.length + 1 });
    const removed = members.filter((m) => m.state === 'active' && (m.doc as Membership).tokenId === id);
    await this.store.commitRecords({
      records: [{ kind: 'enrol-token', id, state: 'revoked', doc: t }, ...removed.map((m) => ({ kind: 'membership', id: m.id, state: 'removed', doc: m.doc }))],
    }, this.now());
    this.invalidate();
    this.log.warn({ token: id, org: t.orgId, removed: removed.length }, 'enrolment token revoked; its nodes left the pool');
    await this.audit?.record({ type: 'node.removed', org: t.orgId, subject: id, data: { nodes: removed.map((m) => m.id), ...(t.domain ? { domain: t.domain } : {}) } });
    return { removed: removed.map((m) => m.id) };
  }

  /**
   * A node asks to join an organisation's pool without a token: the request
   * (signed with its key) waits for an admin of that organisation.
   */
  async requestJoin(req: SignedRequest<{ org: string; note?: string }>): Promise<{ nodeId: string; orgId: string; state: string }> {
    await verifyRequest(req, 'join', this.now());
    if (!(await this.store.useNonce(req.nodeId, req.nonce, this.now() + 2 * MAX_CLOCK_SKEW_MS))) throw new ImError('IM_REPLAYED');
    const id = `${req.body.org}/${req.nodeId}`;
    const [prior] = await this.store.records('join-request', { ids: [id], limit: 1 });
    if (prior) return { nodeId: req.nodeId, orgId: req.body.org, state: prior.state };
    await this.store.commitRecords({ expect: [{ kind: 'join-request', id, states: ['absent'] }], records: [{ kind: 'join-request', id, state: 'pending', doc: { nodeId: req.nodeId, orgId: req.body.org, note: req.body.note ?? '', at: this.now() } }] }, this.now());
    this.log.info({ node: req.nodeId.slice(0, 12), org: req.body.org }, 'a node asks to join a private pool');
    return { nodeId: req.nodeId, orgId: req.body.org, state: 'pending' };
  }

  async joinRequests(orgId: string | undefined): Promise<Array<{ nodeId: string; orgId: string; note: string; at: number; state: string }>> {
    return (await this.store.records('join-request', { limit: 10_000 }))
      .map((r) => ({ ...(r.doc as { nodeId: string; orgId: string; note: string; at: number }), state: r.state }))
      .filter((r) => orgId === undefined || r.orgId === orgId);
  }

  /** An admin admits (or refuses) a node that asked; admitted, it is in the pool as if it had used a token. */
  async decideJoin(orgId: string, nodeId: string, admit: boolean, by: string): Promise<{ state: string }> {
    const id = `${orgId}/${nodeId}`;
    const [r] = await this.store.records('join-request', { ids: [id], limit: 1 });
    if (!r) throw new ImError('IM_NOT_FOUND', `node ${nodeId.slice(0, 12)} has not asked to join ${orgId}`);
    if (r.state !== 'pending') throw new ImError('IM_CONFLICT', `that request was already ${r.state}`);
    const state = admit ? 'admitted' : 'refused';
    const membership: Membership = { nodeId, orgId, tokenId: `approval:${by}`, admittedAt: this.now() };
    await this.store.commitRecords({
      expect: [{ kind: 'join-request', id, states: ['pending'] }],
      records: [{ kind: 'join-request', id, state, doc: r.doc }, ...(admit ? [{ kind: 'membership', id: nodeId, state: 'active', doc: membership }] : [])],
    }, this.now());
    this.invalidate();
    if (admit) await this.audit?.record({ type: 'node.admitted', actor: by, org: orgId, subject: nodeId, data: { by: 'approval' } });
    return { state };
  }

  /** A node joins an organisation's private pool: a request signed with its key, carrying the token (bound to the key on use). */
  async join(req: SignedRequest<{ token: string }>): Promise<Membership> {
    await verifyRequest(req, 'join', this.now());
    if (!(await this.store.useNonce(req.nodeId, req.nonce, this.now() + 2 * MAX_CLOCK_SKEW_MS))) throw new ImError('IM_REPLAYED');
    const m = /^ime_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$/.exec(req.body.token);
    if (!m) throw new ImError('IM_UNAUTHORIZED', 'not an enrolment token (ime_<id>_<secret>)');
    const [r] = await this.store.records('enrol-token', { ids: [m[1]!], limit: 1 });
    const t = r?.doc as EnrolToken | undefined;
    if (!r || !t || t.secretHash !== sha(m[2]!)) throw new ImError('IM_UNAUTHORIZED', 'unknown enrolment token');
    if (r.state !== 'active') throw new ImError('IM_KEY_REVOKED', 'this enrolment token was revoked');
    const already = t.nodes.includes(req.nodeId);
    if (!already && t.expiresAt <= this.now()) throw new ImError('IM_UNAUTHORIZED', 'this enrolment token expired');
    if (!already && t.usesLeft !== null && t.usesLeft <= 0) throw new ImError('IM_UNAUTHORIZED', 'this enrolment token has no uses left');
    if (!already && this.perOperatorPerHour > 0) {
      // Sybil resistance per operator: an organisation admits at most so many new nodes an hour, however many tokens it made.
      const since = this.now() - 3_600_000;
      const recent = [...(await this.memberships()).values()].filter((x) => x.orgId === t.orgId && x.admittedAt > since).map((x) => x.admittedAt).sort((a, b) => a - b);
      if (recent.length >= this.perOperatorPerHour) {
        throw new ImError('IM_RATE_LIMITED', `organisation ${t.orgId} admitted ${recent.length} nodes this hour (at most ${this.perOperatorPerHour}); try again later`, { retryAfterMs: Math.max(1, (recent[0] as number) + 3_600_000 - this.now()) });
      }
    }
    const membership: Membership = { nodeId: req.nodeId, orgId: t.orgId, tokenId: t.id, admittedAt: this.now(), ...(t.domain !== undefined ? { domain: t.domain } : {}), ...(t.public === true ? { public: true } : {}) };
    if (!already) {
      await this.store.commitRecords({
        expect: [{ kind: 'enrol-token', id: t.id, states: ['active'] }],
        records: [
          { kind: 'enrol-token', id: t.id, state: 'active', doc: { ...t, nodes: [...t.nodes, req.nodeId], usesLeft: t.usesLeft === null ? null : t.usesLeft - 1 } },
          { kind: 'membership', id: req.nodeId, state: 'active', doc: membership },
        ],
      }, this.now());
      this.invalidate();
      this.log.info({ node: req.nodeId.slice(0, 12), org: t.orgId, domain: t.domain }, 'node admitted to a private pool');
      await this.audit?.record({ type: 'node.admitted', actor: req.nodeId, org: t.orgId, subject: req.nodeId, data: { token: t.id, ...(t.domain ? { domain: t.domain } : {}) } });
    }
    return membership;
  }

  // ---- approvals ---------------------------------------------------------------------------

  async approvals(orgId: string | undefined): Promise<Array<Approval & { state: string }>> {
    return (await this.store.records('approval', { limit: 10_000 })).map((r) => ({ ...(r.doc as Approval), state: r.state }))
      .filter((a) => orgId === undefined || a.orgId === orgId);
  }

  async decide(orgId: string | undefined, id: string, approve: boolean, reason: string, by: string): Promise<Approval & { state: string }> {
    const [r] = await this.store.records('approval', { ids: [id], limit: 1 });
    const a = r?.doc as Approval | undefined;
    if (!r || !a || (orgId !== undefined && a.orgId !== orgId)) throw new ImError('IM_NOT_FOUND', `no approval ${id}`);
    if (r.state !== 'pending') throw new ImError('IM_CONFLICT', `approval ${id} was already ${r.state}`);
    const policy = (await this.snapshot()).policies.get(a.orgId) ?? NO_POLICY;
    if (this.now() >= approvalDeadline(a, policy)) throw new ImError('IM_CONFLICT', `approval ${id} timed out (${policy.overflow.onTimeout} by policy); the answer came too late`);
    const doc: Approval = { ...a, reason, decidedBy: by, decidedAt: this.now() };
    const state = approve ? 'approved' : 'denied';
    await this.store.commitRecords({ expect: [{ kind: 'approval', id, states: ['pending'] }], records: [{ kind: 'approval', id, state, doc }] }, this.now());
    this.invalidate();
    this.log.info({ approval: id, job: a.jobId, state, by }, 'crossing to public capacity decided');
    await this.audit?.record({ type: 'approval.decided', actor: by, org: a.orgId, subject: a.jobId, data: { decision: state, reason } });
    return { ...doc, state };
  }

  // ---- placement ------------------------------------------------------------------------------

  private refreshing: Promise<NonNullable<Governance['cache']>> | undefined;

  /**
   * What placement needs, at most CACHE_MS old. A stale copy is served while a
   * fresh one loads in the background, so the dispatcher never waits on it
   * (only the very first call, and calls after `invalidate`, do).
   */
  private async snapshot(): Promise<NonNullable<Governance['cache']>> {
    const now = this.now();
    if (this.cache && now - this.cache.at < CACHE_MS) return this.cache;
    this.refreshing ??= this.load().finally(() => (this.refreshing = undefined));
    if (this.cache) {
      this.refreshing.catch((err: unknown) => this.log.warn({ err }, 'governance snapshot refresh failed'));
      return this.cache;
    }
    return this.refreshing;
  }

  private async load(): Promise<NonNullable<Governance['cache']>> {
    const now = this.now();
    const members = new Map((await this.store.records('membership', { states: ['active'], limit: 100_000 })).map((r) => [r.id, r.doc as Membership]));
    const policies = new Map<string, Policy>();
    for (const r of await this.store.records('policy', { states: ['active'], limit: 10_000 })) {
      const d = r.doc as { text: string; format: 'yaml' | 'json' };
      policies.set(r.id, parsePolicy(d.text, d.format));
    }
    if (members.size === 0 && policies.size === 0 && this.publicMinBondMsat === 0n) {
      // Nothing to govern (a local mesh): placement does not apply, so the rest is not read.
      this.cache = { at: now, members, policies, approvals: new Map(), stakes: new Map(), reliability: new Map(), crossings: new Map() };
      return this.cache;
    }
    const approvals = new Map((await this.store.records('approval', { limit: 100_000 })).map((r) => [r.id, { state: r.state, a: r.doc as Approval }]));
    const stakes = new Map((await this.store.ledgerBalances({ prefix: 'stake:', limit: 1_000_000 })).map((b) => [b.id.slice('stake:'.length), b.net]));
    // Reliability: the share of a node's finished attempts that were accepted results; unknown (no history) counts as 0.5.
    const reliability = new Map((await this.store.listNodes()).map((n) => [n.id, n.completed + n.failed === 0 ? 0.5 : n.completed / (n.completed + n.failed)]));
    const crossings = new Map((await this.store.records('crossing', { limit: 1_000_000 })).map((r) => [r.id, (r.doc as { tasks: number }).tasks]));
    this.cache = { at: now, members, policies, approvals, stakes, reliability, crossings };
    return this.cache;
  }

  async memberships(): Promise<ReadonlyMap<string, Membership>> {
    return (await this.snapshot()).members;
  }

  /** Whether placement applies at all: nothing to decide until an organisation or a pool exists. */
  async active(): Promise<boolean> {
    const s = await this.snapshot();
    return s.members.size > 0 || s.policies.size > 0 || this.publicMinBondMsat > 0n;
  }

  policyOf(orgId: string, s = this.cache): Policy {
    return s?.policies.get(orgId) ?? NO_POLICY;
  }

  private policyNode(a: AgentView, s: NonNullable<Governance['cache']>): PolicyNode {
    const m = s.members.get(a.nodeId);
    const bondMsat = s.stakes.get(a.nodeId) ?? 0n;
    // The public pool: nodes in no private pool, or enrolled with a public token, that bonded at least the coordinator's minimum.
    return {
      id: a.nodeId, operator: a.nodeId, publicPool: (m === undefined || m.public === true) && bondMsat >= this.publicMinBondMsat, reliability: s.reliability.get(a.nodeId) ?? 0.5,
      bondMsat, runtimes: a.runtimes, ...(m ? { orgId: m.orgId } : {}), ...(a.region !== undefined ? { region: a.region } : {}),
    };
  }

  private policyJob(j: RunnableJob, orgId: string, policy: Policy): PolicyJob {
    return { id: j.id, orgId, label: resolveLabel(j.label as JobLabel | undefined, policy), dataClasses: j.dataClasses ?? [], runtime: j.runtime, queuedSince: j.createdAt };
  }

  /**
   * Which (agent, job) pairs the policies allow now. Jobs of no organisation
   * (a local mesh) go to public-pool nodes. Crossings that need a human open
   * an approval request and wait; a denied or timed-out one stays private.
   */
  async filter(agents: readonly AgentView[], jobs: readonly RunnableJob[]): Promise<Gate | undefined> {
    if (!(await this.active())) return undefined;
    const s = await this.snapshot();
    const now = this.now();
    const allowed = new Set<string>();
    const quotaKeys = new Map<string, string>();
    const left = new Map<string, number>();
    for (const j of jobs) {
      const orgId = j.caller.startsWith('org:') ? j.caller.slice(4) : undefined;
      if (orgId === undefined) {
        for (const a of agents) if (this.policyNode(a, s).publicPool) allowed.add(`${a.nodeId}\u0000${j.id}`);
        continue;
      }
      const policy = this.policyOf(orgId, s);
      const pj = this.policyJob(j, orgId, policy);
      const nodes = agents.map((a) => this.policyNode(a, s));
      const privateCapacity = agents.some((a) => a.free > 0 && s.members.get(a.nodeId)?.orgId === orgId && a.runtimes.includes(j.runtime));
      // per-batch: each batch of `batchSize` tasks that crosses needs its own approval; the batch is a quota.
      const batchSize = policy.overflow.approval === 'per-batch' ? policy.overflow.batchSize : null;
      const crossed = s.crossings.get(j.id) ?? 0;
      const batch = batchSize ? Math.floor(crossed / batchSize) : 0;
      const approval = await this.approvalState(batchSize ? `${j.id}#${batch}` : j.id, j.id, orgId, pj, policy, privateCapacity, now, s);
      for (const n of nodes) {
        const d = placement(pj, n, policy, { now, privateCapacity, ...(approval ? { approval } : {}) });
        if (!d.eligible) continue;
        allowed.add(`${n.id}\u0000${j.id}`);
        if (batchSize && d.pool === 'public') quotaKeys.set(`${n.id}\u0000${j.id}`, `cross:${j.id}`);
      }
      if (batchSize) left.set(`cross:${j.id}`, (batch + 1) * batchSize - crossed);
    }
    return {
      allowed: (agentId, jobId) => allowed.has(`${agentId}\u0000${jobId}`),
      quota: { key: (agentId, jobId) => quotaKeys.get(`${agentId}\u0000${jobId}`), left },
    };
  }

  /** Tasks of an organisation's job leased outside its pool: counted, so per-batch approvals know which batch is next. */
  async countCrossing(jobId: string, tasks: number): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const [r] = await this.store.records('crossing', { ids: [jobId], limit: 1 });
      const n = (r?.doc as { tasks?: number } | undefined)?.tasks ?? 0;
      try {
        await this.store.commitRecords({ expect: [{ kind: 'crossing', id: jobId, states: r ? [r.state] : ['absent'] }], records: [{ kind: 'crossing', id: jobId, state: 'active', doc: { tasks: n + tasks } }] }, this.now());
        this.cache?.crossings.set(jobId, n + tasks);
        return;
      } catch (err) {
        if (!(err instanceof ImError && err.code === 'IM_CONFLICT')) throw err;
      }
    }
  }

  /** The approval for a crossing: asked for when first needed (per job), decided by an approver, timed out by the policy. */
  private async approvalState(id: string, jobId: string, orgId: string, job: PolicyJob, policy: Policy, privateCapacity: boolean, now: number, s: NonNullable<Governance['cache']>): Promise<'approved' | 'denied' | 'pending' | undefined> {
    if (policy.overflow.approval === 'none') return undefined;
    const existing = s.approvals.get(id);
    if (existing) {
      const decided = existing.state === 'approved' || existing.state === 'denied' ? existing.state : undefined;
      return approvalOutcome(existing.a, policy, now, decided);
    }
    const c = crossingNeeded(job, policy, { now, privateCapacity });
    if (!c.cross || !c.needsApproval) return undefined;
    const a: Approval = { id, orgId, jobId, createdAt: now };
    await this.store.commitRecords({ expect: [{ kind: 'approval', id, states: ['absent'] }], records: [{ kind: 'approval', id, state: 'pending', doc: a }] }, now)
      .catch((err: unknown) => { if (!(err instanceof ImError && err.code === 'IM_CONFLICT')) throw err; });
    s.approvals.set(id, { state: 'pending', a });
    this.log.info({ job: jobId, approval: id, org: orgId }, 'a crossing to public capacity waits for approval');
    return 'pending';
  }

  /** `idlemesh policy check`: for a job, every known node and why it is or is not eligible. */
  async check(orgId: string, job: { label?: JobLabel; dataClasses?: string[]; runtime: string }, agents: readonly AgentView[]): Promise<{ label: JobLabel; decisions: NodeDecision[] }> {
    const s = await this.snapshot();
    const policy = this.policyOf(orgId, s);
    const pj: PolicyJob = { id: 'check', orgId, label: resolveLabel(job.label, policy), dataClasses: job.dataClasses ?? [], runtime: job.runtime, queuedSince: this.now() };
    const privateCapacity = agents.some((a) => s.members.get(a.nodeId)?.orgId === orgId && a.runtimes.includes(job.runtime));
    return { label: pj.label, decisions: explain(pj, agents.map((a) => this.policyNode(a, s)), policy, { now: this.now(), privateCapacity }) };
  }
}
