import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AccountId,
  DepositAddressBody,
  DevFundBody,
  LightningDepositBody,
  MAX_CLOCK_SKEW_MS,
  RejectBatchBody,
  SignedPsbtBody,
  SignedWithdrawRequest,
  signedRequest,
  WithdrawBody,
  verifyRequest,
  NodeId,
  SignedStakeRequest,
  ImError,
  JobsQuery,
  ResultsQuery, SubmitQuery,
  SubmitJobBody,
  openApiDocument,
  sha256Hex,
  utf8,
} from '@idlemesh/protocol';
import type { InfoView, JobEvent, JobView, NodeView, PayoutBatchView, WithdrawalView } from '@idlemesh/protocol';
import { jobView, moduleInfo, resultView } from '../core.js';
import { MAX_IN_FLIGHT_PER_NODE, OpenAiError, toOpenAi } from '../inference.js';
import type { InferenceKind } from '../inference.js';
import { openAiErrorBody } from './openai-errors.js';
import type { Batch, Withdrawal } from '../treasury/index.js';
import { ROUTE_RULES, authorize, seesAll } from '../identity/index.js';
import type { Principal } from '../identity/index.js';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** The principal the access hook resolved for this request. */
function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new ImError('IM_INTERNAL', 'no principal: the access hook did not run');
  return req.principal;
}

function callerOf(req: FastifyRequest): string {
  const p = principalOf(req);
  if (p.kind === 'anonymous') throw new ImError('IM_UNAUTHORIZED', 'this needs an API key');
  return p.caller;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const SESSION_COOKIE = 'im_session';

function sessionCookie(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === SESSION_COOKIE && v.length > 0) return v.join('=') || undefined;
  }
  return undefined;
}
import type { Core } from '../core.js';
import { DEMAND_WINDOW_MS, registryOf } from '../model-registry.js';

export const VERSION = '0.1.0';

/** Parses with a strict schema; unknown fields and bad values become stable error codes. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const unknown = r.error.issues.find((i) => i.code === 'unrecognized_keys');
  if (unknown) {
    throw new ImError('IM_UNKNOWN_FIELD', `unknown field(s) in ${where}: ${(unknown as { keys: string[] }).keys.join(', ')}`, { details: r.error.issues.slice(0, 20) });
  }
  throw new ImError('IM_VALIDATION', `invalid ${where}: ${z.prettifyError(r.error).slice(0, 500)}`, { details: r.error.issues.slice(0, 20) });
}

/** Before bootstrap (a local mesh): callers told apart by their bearer token, hashed. */
async function openCallerOf(req: FastifyRequest): Promise<string> {
  const auth = req.headers.authorization;
  if (!auth) return 'anonymous';
  const m = /^Bearer\s+(\S+)$/i.exec(auth);
  if (!m?.[1]) throw new ImError('IM_UNAUTHORIZED', 'Authorization must be "Bearer <key>"');
  return `key:${(await sha256Hex(utf8(m[1]))).slice(0, 32)}`;
}

const IdParam = z.strictObject({ id: z.string().min(1).max(100) });
const AccountParam = z.strictObject({ id: AccountId });
const AccountQuery = z.strictObject({ limit: z.coerce.number().int().min(0).max(1000).default(50) });
const HashParam = z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex') });

export function registerRoutes(app: FastifyInstance, core: Core): void {
  app.decorateRequest('principal', null);
  // A route without an access rule does not start: nothing is left unchecked by accident.
  app.addHook('onRoute', (r) => {
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) {
      if (m === 'HEAD' || m === 'OPTIONS') continue;
      if (ROUTE_RULES[`${m} ${r.url}`] === undefined) throw new Error(`route ${m} ${r.url} has no access rule in identity/access.ts`);
    }
  });
  // Every route is checked here, before its handler: role and organisation from the route table.
  app.addHook('onRequest', async (req) => {
    const url = req.routeOptions.url;
    if (url === undefined) return; // no such route: the not-found handler answers
    const route = `${req.method} ${url}`;
    const rule = ROUTE_RULES[route];
    if (rule !== undefined && (rule.allow === 'public' || rule.allow === 'node')) return;
    const cookie = sessionCookie(req);
    if (req.headers.authorization === undefined && cookie !== undefined && (await core.identity.isBootstrapped())) {
      // A person signed in with a passkey: the HTTP-only cookie, plus the CSRF token on anything that changes state.
      const s = await core.passkeys.session(cookie);
      if (!s) throw new ImError('IM_UNAUTHORIZED', 'the session expired or ended: sign in again');
      if (req.method !== 'GET' && req.headers['x-csrf-token'] !== s.csrf) throw new ImError('IM_FORBIDDEN', 'missing or wrong X-CSRF-Token for this session');
      req.principal = s.principal;
    } else {
      req.principal = await core.identity.principal(req.headers.authorization, () => openCallerOf(req), LOOPBACK.has(req.socket.remoteAddress ?? ''));
    }
    authorize(req.principal, route);
  });

  /** A job the caller may see: its own organisation's, or any for root admins and auditors. Others are "not found". */
  const visibleJob = async (req: FastifyRequest, id: string): Promise<void> => {
    const p = principalOf(req);
    if (seesAll(p)) return;
    const job = await core.store.getJob(id);
    if (!job || job.caller !== callerOf(req)) throw new ImError('IM_NOT_FOUND', `no job ${id}`);
  };

  app.get('/healthz', async (_req, reply) => {
    const ok = await core.store.ping().catch(() => false);
    return reply.code(ok ? 200 : 503).send({ ok });
  });

  app.get('/metrics', async (_req, reply) => {
    const runnable = await core.store.runnableJobs(core.now());
    core.metrics.tasksQueued.set(runnable.reduce((s, j) => s + j.queued, 0));
    reply.header('content-type', core.metrics.registry.contentType);
    return core.metrics.registry.metrics();
  });

  app.get('/openapi.json', async () => openApiDocument(VERSION));

  app.get('/v1/info', async (): Promise<InfoView> => ({
    name: 'idlemesh',
    version: VERSION,
    protocol: 1,
    coordinatorId: core.opts.coordinatorId,
    store: core.store.kind,
    durability: core.store.durability,
    leaseMs: core.opts.leaseMs,
    heartbeatMs: core.opts.heartbeatMs,
  }));

  app.post('/v1/modules', async (req, reply) => {
    if (!(req.body instanceof Buffer)) throw new ImError('IM_UNSUPPORTED_MEDIA_TYPE', 'send the module as application/wasm');
    const bytes = new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.byteLength);
    const { info, created } = await core.uploadModule(bytes);
    return reply.code(created ? 201 : 200).send(info);
  });

  app.get('/v1/modules/:hash', async (req) => {
    const { hash } = parse(HashParam, req.params, 'path');
    return moduleInfo(await core.getModule(hash));
  });

  app.get('/v1/modules/:hash/instrumented', async (req, reply) => {
    const { hash } = parse(HashParam, req.params, 'path');
    const m = await core.getModule(hash);
    return reply
      .header('content-type', 'application/wasm')
      .header('x-idlemesh-abi', m.abi)
      .header('x-idlemesh-hash', m.instrumentedHash)
      .header('cache-control', 'public, max-age=31536000, immutable')
      .send(Buffer.from(m.instrumented));
  });

  app.post('/v1/jobs', async (req, reply) => {
    const body = parse(SubmitJobBody, req.body, 'job');
    const header = req.headers['idempotency-key'];
    if (Array.isArray(header)) throw new ImError('IM_VALIDATION', 'one Idempotency-Key header at most');
    if (header !== undefined && (header.length === 0 || header.length > 200)) throw new ImError('IM_VALIDATION', 'Idempotency-Key must be 1–200 characters');
    const q = parse(SubmitQuery, req.query, 'query');
    const { job, created } = await core.submitJob(callerOf(req), body, header);
    const code = created ? 201 : 200;
    if (q.wait === undefined || q.wait === 0) return reply.code(code).send(job);
    // One round trip for a caller that wants the answer: submit, wait, results.
    const ended = finished(job.state) ? undefined : await untilFinished(core, job.id, q.wait, req);
    const now = ended ?? (await core.getJob(job.id));
    if (!finished(now.state)) return reply.code(code).send(now);
    const rows = await core.store.getResults(job.id, { after: -1, limit: 1000 });
    const last = rows.at(-1);
    return reply.code(code).send({ ...now, results: rows.map(resultView), next: rows.length === 1000 && last ? last.index : null });
  });

  app.get('/v1/jobs', async (req) => {
    const q = parse(JobsQuery, req.query, 'query');
    const p = principalOf(req);
    const jobs = await core.store.listJobs(q.state ? { state: q.state, limit: q.limit } : { limit: q.limit });
    return { jobs: jobs.filter((j) => seesAll(p) || j.caller === callerOf(req)).map(jobView) };
  });

  app.get('/v1/jobs/:id', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    await visibleJob(req, id);
    return core.getJob(id);
  });

  app.post('/v1/jobs/:id/cancel', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    await visibleJob(req, id);
    return core.cancelJob(id);
  });

  app.get('/v1/jobs/:id/results', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const q = parse(ResultsQuery, req.query, 'query');
    await visibleJob(req, id);
    const job = await core.getJob(id);
    if (q.wait !== undefined && q.wait > 0 && !finished(job.state)) await untilFinished(core, id, q.wait, req);
    const rows = await core.store.getResults(id, q.state ? { after: q.after, limit: q.limit, state: q.state } : { after: q.after, limit: q.limit });
    const last = rows.at(-1);
    return { results: rows.map(resultView), next: rows.length === q.limit && last ? last.index : null };
  });

  app.get('/v1/jobs/:id/events', async (req, reply) => {
    const { id } = parse(IdParam, req.params, 'path');
    await visibleJob(req, id);
    return streamEvents(core, id, req, reply);
  });

  // The model registry: what is hosted, by whom, at what ask, and how much it is asked for.
  app.get('/v1/registry/models', async () => {
    const demand = await core.store.modelDemand(core.now() - DEMAND_WINDOW_MS);
    return { models: registryOf(core.inference.hostOffers(), demand, MAX_IN_FLIGHT_PER_NODE) };
  });
  app.get('/v1/market', async () => {
    const supply = new Map<string, number>();
    for (const s of core.sessions.values()) {
      if (s.state !== 'active') continue;
      for (const r of s.capabilities.runtimes) supply.set(r, (supply.get(r) ?? 0) + Math.max(0, s.credit));
    }
    return core.money.market(supply);
  });

  app.get('/v1/accounts/me', async (req) => {
    const q = parse(AccountQuery, req.query, 'query');
    return core.money.account(`buyer:${callerOf(req)}`, q.limit);
  });

  app.get('/v1/accounts/:id', async (req) => {
    const { id } = parse(AccountParam, req.params, 'path');
    const q = parse(AccountQuery, req.query, 'query');
    const p = principalOf(req);
    // Your own buyer account; operators see operator and stake accounts (earnings are public); root admins and auditors all.
    const mayRead = seesAll(p) || id === `buyer:${callerOf(req)}`
      || (p.kind === 'key' && p.roles.includes('operator') && (id.startsWith('operator:') || id.startsWith('stake:')));
    if (!mayRead) throw new ImError('IM_NOT_FOUND', `no account ${id} you may read`);
    return core.money.account(id, q.limit);
  });

  app.get('/v1/ledger/check', async () => core.money.check());

  app.get('/v1/stakes/:nodeId', async (req) => core.money.stakes(parse(z.strictObject({ nodeId: NodeId }), req.params, 'path').nodeId));

  app.post('/v1/stakes', async (req) => core.money.stake(parse(SignedStakeRequest, req.body, 'stake request')));

  app.post('/v1/deposits/address', async (req) => {
    const body = parse(DepositAddressBody, req.body ?? {}, 'deposit request');
    return core.deposits.address(ownAccount(req, body.account));
  });

  app.post('/v1/deposits/lightning', async (req, reply) => {
    const body = parse(LightningDepositBody, req.body, 'lightning deposit');
    return reply.code(201).send(await core.deposits.invoice(ownAccount(req, body.account), body.sats));
  });

  app.get('/v1/deposits', async () => {
    const owners = new Map((await core.store.depositAddresses()).map((a) => [a.address, a.account]));
    const rows = await core.store.records('deposit', { limit: 1000 });
    return {
      deposits: rows.map((r) => {
        const d = r.doc as { outpoint: string; address: string; valueSats: bigint; state: string; confirmations: number };
        const owner = owners.get(d.address);
        return { outpoint: d.outpoint, address: d.address, valueSats: d.valueSats.toString(), state: d.state, confirmations: d.confirmations, ...(owner ? { account: owner } : {}) };
      }),
    };
  });

  app.post('/v1/withdrawals', async (req, reply) => {
    const raw = req.body as { sig?: unknown } | null;
    let body: z.infer<typeof WithdrawBody>;
    let account: string;
    if (raw !== null && typeof raw === 'object' && 'sig' in raw) {
      // Operator earnings: only the node key moves them.
      const signed = parse(SignedWithdrawRequest, raw, 'signed withdrawal');
      await verifyRequest(signed, 'withdraw', core.now());
      if (!(await core.store.useNonce(signed.nodeId, signed.nonce, core.now() + 2 * MAX_CLOCK_SKEW_MS))) throw new ImError('IM_REPLAYED');
      body = signed.body;
      account = body.account ?? `operator:${signed.nodeId}`;
      if (account !== `operator:${signed.nodeId}`) throw new ImError('IM_UNAUTHORIZED', `a request signed by node ${signed.nodeId.slice(0, 12)} can only withdraw from operator:${signed.nodeId}`);
    } else {
      body = parse(WithdrawBody, raw, 'withdrawal');
      account = body.account ?? `buyer:${callerOf(req)}`;
      if (account.startsWith('operator:')) throw new ImError('IM_UNAUTHORIZED', 'withdrawals from operator accounts must be signed with the node key (idlemesh withdraw --key-file)');
      if (account !== `buyer:${callerOf(req)}`) throw new ImError('IM_UNAUTHORIZED', 'you can only withdraw from your own buyer account');
    }
    const w = await core.payouts.withdraw({
      account, ...(body.sats !== undefined ? { sats: body.sats } : {}), ...(body.address !== undefined ? { address: body.address } : {}),
      ...(body.invoice !== undefined ? { invoice: body.invoice } : {}), ...(body.idempotencyKey !== undefined ? { idempotencyKey: body.idempotencyKey } : {}),
    });
    const [rec] = await core.store.records('withdrawal', { ids: [w.id], limit: 1 });
    return reply.code(201).send(withdrawalView({ ...w, state: rec?.state ?? 'queued' }));
  });

  app.get('/v1/withdrawals', async (req) => {
    const q = parse(z.strictObject({ account: AccountId.optional() }), req.query, 'query');
    const p = principalOf(req);
    const account = seesAll(p) ? q.account : `buyer:${callerOf(req)}`;
    return { withdrawals: (await core.payouts.withdrawals(account)).map(withdrawalView) };
  });

  app.get('/v1/payouts/batches', async () => ({ batches: (await core.payouts.batches()).map(batchView) }));

  app.get('/v1/payouts/key', async () => ({ publicKey: (await core.payouts.payoutKey()).publicKeyHex }));

  app.post('/v1/payouts/batches', async (_req, reply) => {
    const b = await core.payouts.buildBatch();
    if (!b) throw new ImError('IM_CONFLICT', 'no on-chain withdrawals are queued');
    return reply.code(201).send(batchView(b));
  });

  app.get('/v1/payouts/batches/:id', async (req) => batchView(await core.payouts.batch(parse(IdParam, req.params, 'path').id)));

  app.post('/v1/payouts/batches/:id/signed', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const { psbt } = parse(SignedPsbtBody, req.body, 'signed PSBT');
    return batchView(await core.payouts.importSigned(id, psbt));
  });

  app.post('/v1/payouts/batches/:id/reject', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const { reason } = parse(RejectBatchBody, req.body, 'reject');
    return batchView(await core.payouts.reject(id, reason));
  });

  // ---- governance: policy, pools, approvals --------------------------------------------

  /** The organisation a request acts for: its key's, or (root admins) the one named. */
  const orgFor = (req: FastifyRequest, named?: string): string => {
    const p = principalOf(req);
    if (p.kind !== 'key') throw new ImError('IM_VALIDATION', 'organisations exist once the coordinator is bootstrapped (idlemesh bootstrap)');
    if (named === undefined || named === p.orgId) return p.orgId;
    if (p.root && p.roles.includes('admin')) return named;
    throw new ImError('IM_FORBIDDEN', 'you act for your own organisation only');
  };
  const OrgQuery = z.strictObject({ org: z.string().max(64).optional() });

  app.get('/v1/policy', async (req) => {
    const org = orgFor(req, parse(OrgQuery, req.query, 'query').org);
    const r = await core.governance.policyRecord(org);
    return r ? { org, ...r } : { org, version: 0, note: 'no policy: jobs run anywhere (label public); set one with idlemesh policy set' };
  });

  app.post('/v1/policy', async (req, reply) => {
    const b = parse(z.strictObject({ text: z.string().min(1).max(100_000), format: z.enum(['yaml', 'json']).default('yaml'), org: z.string().max(64).optional() }), req.body, 'policy');
    const org = orgFor(req, b.org);
    const r = await core.governance.setPolicy(org, b.text, b.format);
    core.announceWork();
    return reply.code(201).send({ org, version: r.version, hash: r.hash });
  });

  app.post('/v1/policy/check', async (req) => {
    const b = parse(z.strictObject({
      job: z.strictObject({ label: z.enum(['private', 'overflow', 'public']).optional(), dataClasses: z.array(z.string().max(64)).max(20).optional(), runtime: z.string().max(32).default('wasm') }),
      org: z.string().max(64).optional(),
    }), req.body, 'policy check');
    const org = orgFor(req, b.org);
    const nodes = await core.store.listNodes();
    const agents = nodes.filter((n) => n.state !== 'offline').map((n) => ({ nodeId: n.id, runtimes: n.capabilities.runtimes, free: 0 }));
    const r = await core.governance.check(org, { runtime: b.job.runtime, ...(b.job.label ? { label: b.job.label } : {}), ...(b.job.dataClasses ? { dataClasses: b.job.dataClasses } : {}) }, agents);
    return { org, label: r.label, nodes: r.decisions };
  });

  app.get('/v1/pools/tokens', async (req) => {
    const p = principalOf(req);
    const tokens = await core.governance.enrolTokens(seesAll(p) ? undefined : orgFor(req));
    return { tokens: tokens.map(({ secretHash: _h, ...t }) => t) };
  });

  app.post('/v1/pools/tokens', async (req, reply) => {
    const b = parse(z.strictObject({
      uses: z.number().int().min(1).max(1_000_000).nullable().default(1).describe('null: any number (a capacity domain)'),
      ttlMs: z.number().int().min(60_000).max(365 * 24 * 3_600_000).default(24 * 3_600_000),
      domain: z.string().min(1).max(100).optional(),
      public: z.boolean().default(false).describe('the organisation operates its nodes in the public pool too'),
      org: z.string().max(64).optional(),
    }), req.body ?? {}, 'enrolment token');
    const org = orgFor(req, b.org);
    const { token, record } = await core.governance.createEnrolToken(org, { uses: b.uses, ttlMs: b.ttlMs, public: b.public, ...(b.domain !== undefined ? { domain: b.domain } : {}) });
    const { secretHash: _h, ...view } = record;
    return reply.code(201).send({ ...view, token, note: 'shown once: nodes join with idlemesh pools join <token>' });
  });

  app.post('/v1/pools/tokens/:id/revoke', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const p = principalOf(req);
    const r = await core.governance.revokeEnrolToken(p.kind === 'key' && !p.root ? p.orgId : undefined, id);
    core.announceWork();
    return r;
  });

  // Capacity domains reported as units: their nodes, how many are online, and their work.
  app.get('/v1/pools/domains', async (req) => {
    const p = principalOf(req);
    const own = seesAll(p) ? undefined : orgFor(req);
    const members = await core.governance.memberships();
    const nodes = new Map((await core.store.listNodes()).map((n) => [n.id, n]));
    const domains = new Map<string, { org: string; domain: string; nodes: number; online: number; running: number; completed: number; failed: number }>();
    for (const m of members.values()) {
      if (m.domain === undefined || (own !== undefined && m.orgId !== own)) continue;
      const k = `${m.orgId}/${m.domain}`;
      const d = domains.get(k) ?? { org: m.orgId, domain: m.domain, nodes: 0, online: 0, running: 0, completed: 0, failed: 0 };
      const n = nodes.get(m.nodeId);
      d.nodes++;
      if (n && n.state !== 'offline') d.online++;
      d.running += n?.running ?? 0;
      d.completed += n?.completed ?? 0;
      d.failed += n?.failed ?? 0;
      domains.set(k, d);
    }
    return { domains: [...domains.values()] };
  });

  app.post('/v1/pools/join', async (req) => {
    const signed = parse(signedRequest(z.strictObject({ token: z.string().min(1).max(200) })), req.body, 'join');
    const m = await core.governance.join(signed);
    core.announceWork();
    return m;
  });

  app.post('/v1/pools/requests', async (req, reply) => {
    const signed = parse(signedRequest(z.strictObject({ org: z.string().min(1).max(64), note: z.string().max(200).optional() })), req.body, 'join request');
    if (!(await core.identity.org(signed.body.org))) throw new ImError('IM_NOT_FOUND', `no organisation ${signed.body.org}`);
    return reply.code(201).send(await core.governance.requestJoin(signed as Parameters<typeof core.governance.requestJoin>[0]));
  });
  app.get('/v1/pools/requests', async (req) => {
    const p = principalOf(req);
    return { requests: await core.governance.joinRequests(seesAll(p) ? undefined : orgFor(req)) };
  });
  app.post('/v1/pools/requests/:nodeId', async (req) => {
    const { nodeId } = parse(z.strictObject({ nodeId: NodeId }), req.params, 'path');
    const b = parse(z.strictObject({ decision: z.enum(['admit', 'refuse']) }), req.body, 'decision');
    const p = principalOf(req);
    const r = await core.governance.decideJoin(orgFor(req), nodeId, b.decision === 'admit', p.kind === 'key' ? p.keyId : 'open');
    core.announceWork();
    return r;
  });

  app.get('/v1/approvals', async (req) => {
    const p = principalOf(req);
    return { approvals: await core.governance.approvals(seesAll(p) ? undefined : orgFor(req)) };
  });

  app.post('/v1/approvals/:id', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const b = parse(z.strictObject({ decision: z.enum(['approve', 'deny']), reason: z.string().min(1).max(500) }), req.body, 'decision');
    const p = principalOf(req);
    const r = await core.governance.decide(p.kind === 'key' ? p.orgId : undefined, id, b.decision === 'approve', b.reason, p.kind === 'key' ? p.keyId : 'open');
    core.announceWork();
    return r;
  });

  // ---- audit log ------------------------------------------------------------------------

  app.get('/v1/audit/key', async () => ({ origin: core.audit.origin, verifierKey: await core.audit.verifierKey() }));

  // Issuance: every input and output is public, so anyone can recompute an epoch (idlemesh audit issuance).
  const HourParam = z.strictObject({ hour: z.union([z.literal('latest'), z.coerce.number().int().min(0)]) });
  app.get('/v1/issuance/hours/:hour', async (req) => {
    const { hour } = parse(HourParam, req.params, 'path');
    const h = hour === 'latest' ? (await core.issuance.epoch('latest'))?.document.epochHour : hour;
    const doc = h === undefined ? undefined : await core.issuance.hour(h);
    if (!doc) throw new ImError('IM_NOT_FOUND', `hour ${String(hour)} is not closed (hours are ${core.issuance.hourMs} ms; the current one is ${core.issuance.hourOf(core.now())})`);
    return doc;
  });
  app.get('/v1/issuance/epochs/:hour', async (req) => {
    const { hour } = parse(HourParam, req.params, 'path');
    const e = await core.issuance.epoch(hour);
    if (!e) throw new ImError('IM_NOT_FOUND', hour === 'latest' ? 'no epoch has closed yet' : `no epoch for hour ${hour}`);
    return { ...e, hourMs: core.issuance.hourMs };
  });
  app.get('/v1/nodes/:id/rewards', async (req) => {
    const { id } = parse(z.strictObject({ id: z.string().regex(/^[0-9a-f]{64}$/) }), req.params, 'path');
    return { node: id, rewards: await core.issuance.rewards(id) };
  });

  // OpenAI-compatible API: models served by agents, one job per request (see inference.ts).
  app.get('/v1/models', async () => ({ object: 'list', data: core.inference.models() }));
  const infer = (kind: InferenceKind) => async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new OpenAiError(400, 'invalid_request_error', null, 'the body must be a JSON object');
    const b = body as Record<string, unknown>;
    if (kind === 'chat' && (!Array.isArray(b.messages) || b.messages.length === 0)) throw new OpenAiError(400, 'invalid_request_error', null, 'messages must be a non-empty array', 'messages');
    if (kind === 'completion' && typeof b.prompt !== 'string') throw new OpenAiError(400, 'invalid_request_error', null, 'prompt must be a string', 'prompt');
    if (b.n !== undefined && b.n !== 1) throw new OpenAiError(400, 'invalid_request_error', null, 'only n = 1 is supported', 'n');
    const ac = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) ac.abort();
    });
    const caller = callerOf(req);
    if (b.stream !== true) {
      const r = await core.inference.run({ caller, kind, body: b, signal: ac.signal });
      return reply.header('content-type', 'application/json; charset=utf-8').header('x-idlemesh-job', r.jobId).send(r.output);
    }
    // Streaming: headers go out with the first chunk, so a failure before it is a plain HTTP error.
    reply.hijack();
    const res = reply.raw;
    let started = false;
    const start = (jobHeader?: string): void => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', ...(jobHeader ? { 'x-idlemesh-job': jobHeader } : {}) });
    };
    try {
      const r = await core.inference.run({
        caller, kind, body: b, signal: ac.signal,
        onChunk: (data) => {
          start();
          res.write(`data: ${data}\n\n`);
        },
      });
      start(r.jobId);
      res.end('data: [DONE]\n\n');
    } catch (err) {
      const e = err instanceof OpenAiError ? err : err instanceof ImError ? toOpenAi(err) : new OpenAiError(500, 'server_error', null, 'inference failed');
      if (!(err instanceof OpenAiError) && !(err instanceof ImError)) core.log.error({ err }, 'inference failed');
      if (res.destroyed) return reply;
      if (!started) {
        res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', ...(e.retryAfterSec !== undefined ? { 'retry-after': String(e.retryAfterSec) } : {}) });
        res.end(JSON.stringify(openAiErrorBody(e)));
      } else {
        // The stream already started: an error event, then the end marker clients wait for.
        res.end(`data: ${JSON.stringify(openAiErrorBody(e))}\n\ndata: [DONE]\n\n`);
      }
    }
    return reply;
  };
  app.post('/v1/chat/completions', infer('chat'));
  app.post('/v1/completions', infer('completion'));

  // Result receipts: one self-contained, offline-verifiable document per accepted result.
  app.get('/v1/receipts/key', async () => ({ publicKey: await core.receipts.publicKey() }));
  // Fraud the referee proved: public, since anyone can replay it (receipt, module, input).
  app.get('/v1/evidence', async (req) => {
    const q = parse(z.strictObject({ node: z.string().regex(/^[0-9a-f]{64}$/).optional() }), req.query, 'query');
    return { evidence: await core.referee.evidence(q.node) };
  });
  app.get('/v1/jobs/:id/tasks/:index/receipt', async (req) => {
    const { id, index } = parse(z.strictObject({ id: IdParam.shape.id, index: z.coerce.number().int().min(0) }), req.params, 'path');
    await visibleJob(req, id);
    const doc = await core.store.getReceipt(id, index);
    if (doc === undefined) throw new ImError('IM_NOT_FOUND', `task ${id}/${index} has no receipt (no result accepted yet, or from before receipts)`);
    return JSON.parse(doc) as unknown;
  });

  app.get('/v1/audit/checkpoint', async (req, reply) => {
    const q = parse(z.strictObject({ size: z.coerce.number().int().min(0).optional() }), req.query, 'query');
    return reply.header('content-type', 'text/plain; charset=utf-8').send(await core.audit.checkpoint(q.size));
  });

  app.post('/v1/audit/checkpoint', async (_req, reply) => {
    const r = await core.audit.checkpointIfDue(true);
    return reply.header('content-type', 'text/plain; charset=utf-8').send(await core.audit.checkpoint(r?.size));
  });

  app.post('/v1/audit/cosign', async (req) => {
    const b = parse(z.strictObject({ size: z.number().int().min(1), line: z.string().min(1).max(1000) }), req.body, 'cosignature');
    return core.audit.cosign(b.size, b.line);
  });

  app.get('/v1/audit/status', async () => core.audit.status());

  app.get('/v1/audit/proof/inclusion', async (req) => {
    const q = parse(z.strictObject({ index: z.coerce.number().int().min(0), size: z.coerce.number().int().min(1) }), req.query, 'query');
    return { index: q.index, size: q.size, proof: await core.audit.inclusion(q.index, q.size) };
  });

  app.get('/v1/audit/proof/consistency', async (req) => {
    const q = parse(z.strictObject({ from: z.coerce.number().int().min(0), to: z.coerce.number().int().min(0) }), req.query, 'query');
    return { from: q.from, to: q.to, proof: await core.audit.consistency(q.from, q.to) };
  });

  app.get('/v1/audit/entries', async (req) => {
    const q = parse(z.strictObject({ from: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(10_000).default(1000) }), req.query, 'query');
    return { entries: await core.store.auditEntries(q.from, q.limit) };
  });

  // ---- identity ---------------------------------------------------------------------

  app.post('/v1/bootstrap', async (req, reply) => {
    const body = parse(z.strictObject({ token: z.string().min(1).max(200), org: z.string().min(1).max(100) }), req.body, 'bootstrap');
    const r = await core.identity.bootstrap(body.token, body.org);
    return reply.code(201).send({ org: r.org, keyId: r.keyId, key: r.key, note: 'the key is shown once: keep it (IDLEMESH_API_KEY)' });
  });

  app.post('/v1/users', async (req, reply) => {
    const body = parse(z.strictObject({ name: z.string().min(1).max(100), roles: z.array(z.string()).min(1).max(5), org: z.string().max(64).optional() }), req.body, 'user');
    const p = principalOf(req);
    const org = body.org ?? (p.kind === 'key' ? p.orgId : undefined);
    if (org === undefined || !(await core.identity.org(org))) throw new ImError('IM_VALIDATION', 'name an existing organisation (org)');
    if (p.kind === 'key' && org !== p.orgId && !p.root) throw new ImError('IM_FORBIDDEN', 'admins add users to their own organisation only');
    const { user, enrolToken } = await core.passkeys.createUser(org, body.name, body.roles);
    return reply.code(201).send({ id: user.id, orgId: user.orgId, name: user.name, roles: user.roles, enrolToken, note: 'give the enrolment token to the user, once: it registers their passkey' });
  });

  const Enrol = z.strictObject({ userId: z.string().min(1).max(64), token: z.string().min(1).max(200) });
  app.post('/v1/passkeys/register/options', async (req) => {
    const b = parse(Enrol, req.body, 'enrolment');
    return core.passkeys.registrationOptions(b.userId, b.token);
  });
  app.post('/v1/passkeys/register/verify', async (req) => {
    const b = parse(Enrol.extend({ response: z.record(z.string(), z.unknown()) }), req.body, 'registration');
    return core.passkeys.registrationVerify(b.userId, b.token, b.response as unknown as RegistrationResponseJSON);
  });
  app.post('/v1/passkeys/login/options', async () => core.passkeys.authenticationOptions());
  app.post('/v1/passkeys/login/verify', async (req, reply) => {
    const b = parse(z.strictObject({ response: z.record(z.string(), z.unknown()) }), req.body, 'sign-in');
    const s = await core.passkeys.authenticationVerify(b.response as unknown as AuthenticationResponseJSON);
    const secure = req.protocol === 'https' ? '; Secure' : '';
    reply.header('set-cookie', `${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${Math.floor((s.expiresAt - core.now()) / 1000)}${secure}`);
    return { userId: s.userId, orgId: s.orgId, roles: s.roles, csrfToken: s.csrf, expiresAt: s.expiresAt };
  });
  app.post('/v1/session/logout', async (req, reply) => {
    const cookie = sessionCookie(req);
    if (cookie !== undefined) await core.passkeys.logout(cookie);
    reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
    return { ok: true };
  });

  app.get('/v1/whoami', async (req) => {
    const p = principalOf(req);
    return p.kind === 'key' ? { kind: p.kind, keyId: p.keyId, orgId: p.orgId, roles: p.roles, root: p.root } : { kind: p.kind };
  });

  app.get('/v1/orgs', async (req) => {
    const p = principalOf(req);
    const orgs = await core.identity.orgs();
    return { orgs: seesAll(p) ? orgs : orgs.filter((o) => p.kind === 'key' && o.id === p.orgId) };
  });

  app.post('/v1/orgs', async (req, reply) => {
    const body = parse(z.strictObject({ name: z.string().min(1).max(100) }), req.body, 'organisation');
    return reply.code(201).send(await core.identity.createOrg(body.name));
  });

  app.get('/v1/keys', async (req) => {
    const p = principalOf(req);
    const keys = await core.identity.keys(seesAll(p) || p.kind !== 'key' ? undefined : p.orgId);
    return { keys: keys.map(({ secretHash: _h, ...k }) => k) };
  });

  app.post('/v1/keys', async (req, reply) => {
    const body = parse(z.strictObject({ name: z.string().min(1).max(100), roles: z.array(z.string()).min(1).max(5), org: z.string().max(64).optional() }), req.body, 'API key');
    const p = principalOf(req);
    // Admins make keys for their own organisation; root admins for any.
    const org = body.org ?? (p.kind === 'key' ? p.orgId : undefined);
    if (org === undefined) throw new ImError('IM_VALIDATION', 'name the organisation (org)');
    if (p.kind === 'key' && org !== p.orgId && !p.root) throw new ImError('IM_FORBIDDEN', 'admins make keys for their own organisation only');
    const { key, record } = await core.identity.createKey(org, body.name, body.roles);
    const { secretHash: _h, ...view } = record;
    return reply.code(201).send({ ...view, key, note: 'the key is shown once' });
  });

  app.post('/v1/keys/:id/revoke', async (req) => {
    const { id } = parse(IdParam, req.params, 'path');
    const p = principalOf(req);
    const { secretHash: _h, ...view } = await core.identity.revokeKey(p.kind === 'key' && !p.root ? p.orgId : undefined, id);
    return view;
  });

  app.post('/v1/dev/fund', async (req, reply) => {
    const body = parse(DevFundBody, req.body, 'dev fund');
    return reply.code(201).send(await core.money.devFund(body.account, body.sats, body.idempotencyKey));
  });

  app.get('/v1/nodes', async () => {
    const nodes = await core.store.listNodes();
    const members = await core.governance.memberships();
    const standing = await core.issuance.standing();
    return {
      nodes: nodes.map((n): NodeView => {
        // The store's state, not this process's sockets: the node may be attached to another coordinator.
        const v: NodeView = {
          id: n.id,
          state: n.state,
          capabilities: n.capabilities,
          running: n.running,
          completed: n.completed,
          failed: n.failed,
          firstSeen: n.firstSeen,
          lastSeen: n.lastSeen,
        };
        if (n.pauseReason !== undefined && (n.state === 'paused' || n.state === 'draining')) v.pauseReason = n.pauseReason;
        const m = members.get(n.id);
        if (m) {
          v.org = m.orgId;
          if (m.domain !== undefined) v.domain = m.domain;
        }
        const s = standing.get(n.id);
        if (s) {
          v.availability = Math.round(s.availability * 10_000) / 10_000;
          v.reliability = Math.round(s.reliability * 10_000) / 10_000;
        }
        return v;
      }),
    };
  });
}

function withdrawalView(w: Withdrawal & { state: string }): WithdrawalView {
  const v: WithdrawalView = { id: w.id, account: w.account, method: w.method, state: w.state, amountMsat: w.amountMsat.toString(), createdAt: w.createdAt };
  if (w.address !== undefined) v.address = w.address;
  if (w.invoice !== undefined) v.invoice = w.invoice;
  if (w.paymentHash !== undefined) v.paymentHash = w.paymentHash;
  if (w.batchId !== undefined) v.batchId = w.batchId;
  if (w.txid !== undefined) v.txid = w.txid;
  if (w.feeMsat !== undefined) v.feeMsat = w.feeMsat.toString();
  if (w.reason !== undefined) v.reason = w.reason;
  return v;
}

function batchView(b: Batch & { state: string }): PayoutBatchView {
  const v: PayoutBatchView = {
    id: b.id, state: b.state, txid: b.txid, psbt: b.psbt, withdrawals: b.withdrawals,
    approved: b.approved.map((a) => ({ id: a.id, address: a.address, valueSats: a.valueSats.toString() })),
    feeSats: b.feeSats.toString(), treasuryFeeSats: b.treasuryFeeSats.toString(), createdAt: b.createdAt,
  };
  if (b.reason !== undefined) v.reason = b.reason;
  if (b.approval !== undefined) v.approval = b.approval;
  if (b.anchor !== undefined) v.anchor = b.anchor;
  return v;
}

/** The account a buyer acts on: its own, unless a root admin names another. */
function ownAccount(req: FastifyRequest, account: string | undefined): string {
  const own = `buyer:${callerOf(req)}`;
  if (account === undefined || account === own) return own;
  const p = principalOf(req);
  if (p.kind === 'open' || (p.kind === 'key' && p.root && p.roles.includes('admin'))) return account;
  throw new ImError('IM_FORBIDDEN', 'you can only deposit to your own buyer account');
}

function finished(state: string): boolean {
  return state === 'completed' || state === 'cancelled';
}

/** Resolves when the job ends, the wait runs out, or the client goes away. */
/** Resolves when the job has ended (with it, as the event that said so carried it), the wait is over or the caller left (undefined). */
async function untilFinished(core: Core, id: string, waitMs: number, req: FastifyRequest): Promise<JobView | undefined> {
  return new Promise<JobView | undefined>((resolve) => {
    const timer = setTimeout(() => done(undefined), waitMs);
    const stop = core.progress.watch(id, (job, final) => {
      if (final) done(jobView(job));
    }, { finalOnly: true });
    const left = (): void => done(undefined);
    req.raw.once('close', left);
    function done(job: JobView | undefined): void {
      clearTimeout(timer);
      stop();
      req.raw.off('close', left);
      resolve(job);
    }
    // It may have ended between the read and the watch.
    void core.getJob(id).then((j) => (finished(j.state) ? done(j) : undefined), left);
  });
}

async function streamEvents(core: Core, id: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const first = await core.getJob(id);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const write = (e: JobEvent): void => {
    res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  };
  if (finished(first.state)) {
    write({ type: 'end', job: first });
    res.end();
    return;
  }
  write({ type: 'progress', job: first });
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  const stop = core.progress.watch(id, (job, final) => {
    write({ type: final ? 'end' : 'progress', job: jobView(job) });
    if (final) close();
  });
  function close(): void {
    clearInterval(keepAlive);
    stop();
    if (!res.writableEnded) res.end();
  }
  req.raw.on('close', close);
  // The job may have finished between the first read and the watch.
  const now = await core.getJob(id);
  if (finished(now.state)) {
    write({ type: 'end', job: now });
    close();
  }
}
