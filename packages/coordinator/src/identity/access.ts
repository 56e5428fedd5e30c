/**
 * Who may call what: roles, principals and one rule per endpoint. Pure — the
 * HTTP layer resolves the principal and asks `authorize`; a test holds every
 * registered route to having a rule here, so no endpoint goes unchecked.
 */
import { ImError } from '@idlemesh/protocol';

export const ROLES = ['admin', 'approver', 'buyer', 'operator', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(x: unknown): x is Role {
  return typeof x === 'string' && (ROLES as readonly string[]).includes(x);
}

/**
 * open: no organisation has been bootstrapped yet (a local mesh); everything
 * is allowed and callers are told apart by their bearer token, as before.
 * key: an API key of an organisation. anonymous: no credentials after bootstrap.
 */
export type Principal =
  | { kind: 'open'; caller: string }
  | { kind: 'anonymous' }
  | { kind: 'key'; keyId: string; orgId: string; roles: readonly Role[]; root: boolean; caller: string };

export interface RouteRule {
  /** 'public': no credentials; 'node': signed with a node key inside the request; else any of these roles. */
  readonly allow: 'public' | 'node' | readonly Role[];
  /** Only principals of the coordinator's own (root) organisation. */
  readonly root?: boolean;
}

const ALL: readonly Role[] = ROLES;
const R = (allow: RouteRule['allow'], root = false): RouteRule => (root ? { allow, root } : { allow });

/** Every route, by `METHOD path` as Fastify registers it. */
export const ROUTE_RULES: Readonly<Record<string, RouteRule>> = {
  'GET /healthz': R('public'),
  'GET /metrics': R('public'),
  'GET /openapi.json': R('public'),
  'GET /v1/info': R('public'),
  'GET /v1/agent': R('node'),
  'POST /v1/bootstrap': R('public'),
  'POST /v1/modules': R(['buyer', 'admin']),
  'GET /v1/modules/:hash': R(['buyer', 'admin', 'auditor', 'operator']),
  // Agents fetch what they were leased without credentials; a module is named by its hash, so knowing the hash is the access.
  'GET /v1/modules/:hash/instrumented': R('public'),
  'POST /v1/jobs': R(['buyer']),
  'GET /v1/jobs': R(['buyer', 'admin', 'auditor']),
  'GET /v1/jobs/:id': R(['buyer', 'admin', 'auditor']),
  'POST /v1/jobs/:id/cancel': R(['buyer', 'admin']),
  'GET /v1/jobs/:id/results': R(['buyer', 'admin', 'auditor']),
  'GET /v1/jobs/:id/tasks/:index/receipt': R(['buyer', 'admin', 'auditor']),
  'GET /v1/receipts/key': R('public'),
  'GET /v1/evidence': R('public'),
  'GET /v1/issuance/hours/:hour': R('public'),
  'GET /v1/issuance/epochs/:hour': R('public'),
  'GET /v1/nodes/:id/rewards': R('public'),
  'GET /v1/models': R(['buyer', 'admin']),
  'POST /v1/chat/completions': R(['buyer', 'admin']),
  'POST /v1/completions': R(['buyer', 'admin']),
  'GET /v1/jobs/:id/events': R(['buyer', 'admin', 'auditor']),
  'GET /v1/nodes': R(['operator', 'admin', 'auditor']),
  'GET /v1/market': R(ALL),
  'GET /v1/registry/models': R(ALL),
  'GET /v1/accounts/me': R(['buyer', 'admin', 'auditor']),
  'GET /v1/accounts/:id': R(ALL),
  'GET /v1/ledger/check': R(['admin', 'auditor']),
  'GET /v1/stakes/:nodeId': R(ALL),
  'POST /v1/stakes': R('node'),
  'POST /v1/deposits/address': R(['buyer', 'admin']),
  'POST /v1/deposits/lightning': R(['buyer', 'admin']),
  'GET /v1/deposits': R(['admin', 'auditor'], true),
  'POST /v1/withdrawals': R(['buyer', 'admin']),
  'GET /v1/withdrawals': R(['buyer', 'admin', 'auditor']),
  'GET /v1/payouts/key': R('public'),
  'GET /v1/payouts/batches': R(['admin', 'auditor'], true),
  'POST /v1/payouts/batches': R(['admin'], true),
  'GET /v1/payouts/batches/:id': R('public'),
  'POST /v1/payouts/batches/:id/signed': R(['admin'], true),
  'POST /v1/payouts/batches/:id/reject': R(['admin'], true),
  'POST /v1/dev/fund': R(['admin'], true),
  'GET /v1/orgs': R(['admin', 'auditor']),
  'POST /v1/orgs': R(['admin'], true),
  'GET /v1/keys': R(['admin', 'auditor']),
  'POST /v1/keys': R(['admin']),
  'POST /v1/keys/:id/revoke': R(['admin']),
  'GET /v1/whoami': R(ALL),
  'POST /v1/users': R(['admin']),
  'POST /v1/passkeys/register/options': R('public'),
  'POST /v1/passkeys/register/verify': R('public'),
  'POST /v1/passkeys/login/options': R('public'),
  'POST /v1/passkeys/login/verify': R('public'),
  'POST /v1/session/logout': R(ALL),
  'GET /v1/policy': R(['admin', 'auditor', 'approver', 'buyer']),
  'POST /v1/policy': R(['admin']),
  'POST /v1/policy/check': R(['admin', 'auditor', 'approver', 'buyer']),
  'GET /v1/pools/tokens': R(['admin', 'auditor']),
  'POST /v1/pools/tokens': R(['admin']),
  'POST /v1/pools/tokens/:id/revoke': R(['admin']),
  'POST /v1/pools/join': R('node'),
  'POST /v1/pools/requests': R('node'),
  'GET /v1/pools/requests': R(['admin', 'auditor']),
  'POST /v1/pools/requests/:nodeId': R(['admin']),
  'GET /v1/pools/domains': R(['admin', 'auditor', 'operator']),
  'GET /v1/approvals': R(['approver', 'admin', 'auditor']),
  'POST /v1/approvals/:id': R(['approver']),
  'GET /v1/audit/key': R('public'),
  'GET /v1/audit/checkpoint': R('public'),
  'GET /v1/audit/proof/inclusion': R('public'),
  'GET /v1/audit/proof/consistency': R('public'),
  'GET /v1/audit/entries': R(['auditor', 'admin'], true),
  'POST /v1/audit/checkpoint': R(['admin'], true),
  'POST /v1/audit/cosign': R('public'),
  'GET /v1/audit/status': R('public'),
  // The web app (server/web.ts): its files, and index.html for every client route.
  'GET /': R('public'),
  'GET /*': R('public'),
  'HEAD /': R('public'),
  'HEAD /*': R('public'),
};

/**
 * Throws IM_UNAUTHORIZED (no or bad credentials) or IM_FORBIDDEN (a role or
 * organisation that may not). Routes signed with node keys check their own
 * signatures; `public` needs nothing.
 */
export function authorize(principal: Principal, route: string): void {
  const rule = ROUTE_RULES[route];
  if (rule === undefined) throw new ImError('IM_FORBIDDEN', `no access rule for ${route}: refused until one is written`);
  if (rule.allow === 'public' || rule.allow === 'node' || principal.kind === 'open') return;
  if (principal.kind === 'anonymous') throw new ImError('IM_UNAUTHORIZED', `${route} needs an API key (Authorization: Bearer imk_…)`);
  if (rule.root && !principal.root) throw new ImError('IM_FORBIDDEN', `${route} is for the coordinator's own organisation`);
  if (!rule.allow.some((r) => principal.roles.includes(r))) {
    throw new ImError('IM_FORBIDDEN', `${route} needs one of the roles ${rule.allow.join(', ')}; this key has ${principal.roles.join(', ') || 'none'}`);
  }
}

/** Whether the principal may see everything of every organisation (root admins and auditors). */
export function seesAll(p: Principal): boolean {
  return p.kind === 'open' || (p.kind === 'key' && p.root && (p.roles.includes('admin') || p.roles.includes('auditor')));
}

/** The caller a principal acts as: scopes idempotency keys, jobs and the buyer account. */
export function callerOf(p: Principal): string {
  if (p.kind === 'anonymous') throw new ImError('IM_UNAUTHORIZED', 'this needs an API key');
  return p.caller;
}
