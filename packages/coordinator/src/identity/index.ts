/**
 * Organisations and API keys, kept as records in the store (so every
 * coordinator sharing it agrees), and the first-run bootstrap.
 *
 * Keys look like `imk_<id>_<secret>`: shown once; the store keeps the id, the
 * roles, the organisation and SHA-256 of the secret. A revoked key stops
 * working at once on this coordinator and within KEY_CACHE_MS on the others.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ImError, sha256HexSync } from '@idlemesh/protocol';
import type { Logger } from '../core.js';
import type { Store } from '../store/index.js';
import { ROLES, isRole } from './access.js';
import type { Principal, Role } from './access.js';

export * from './access.js';
export { Passkeys } from './passkeys.js';
export type { RelyingParty, Session, User } from './passkeys.js';

export interface Org {
  id: string;
  name: string;
  /** The coordinator's own organisation (made by the bootstrap): its admins run the coordinator. */
  root: boolean;
  createdAt: number;
}

export interface ApiKey {
  id: string;
  orgId: string;
  name: string;
  roles: Role[];
  secretHash: string;
  createdAt: number;
  lastUsedAt?: number;
  revokedAt?: number;
}

const KEY_RE = /^imk_([0-9a-z]{12})_([A-Za-z0-9_-]{43})$/;
const KEY_CACHE_MS = 2000;
const LAST_USED_EVERY_MS = 60_000;
const NAME_RE = /^[\w .@-]{1,100}$/;

const encoder = new TextEncoder();

function hash(secret: string): string {
  return sha256HexSync(encoder.encode(secret));
}

function newId(): string {
  return randomBytes(9).toString('base64url').toLowerCase().replace(/[^0-9a-z]/g, '0').slice(0, 12).padEnd(12, '0');
}

import type { AuditSink } from './sink.js';
export type { AuditSink } from './sink.js';

export class Identity {
  audit: AuditSink | undefined;
  private readonly cache = new Map<string, { at: number; principal: Principal | ImError }>();
  private readonly lastUsedWritten = new Map<string, number>();
  private bootstrapped: boolean | undefined;
  private checkedAt = 0;

  constructor(private readonly store: Store, private readonly log: Logger, private readonly now: () => number) {}

  /** Whether the first admin exists; until then the coordinator is open (a local mesh). */
  async isBootstrapped(): Promise<boolean> {
    if (this.bootstrapped === true) return true;
    // Not yet: asked again at most once a second (another coordinator sharing the store may bootstrap), not per request.
    const now = this.now();
    if (this.bootstrapped === false && now - this.checkedAt < 1000) return false;
    this.checkedAt = now;
    const roots = await this.store.records('org', { states: ['active'], limit: 1000 });
    this.bootstrapped = roots.some((r) => (r.doc as Org).root);
    return this.bootstrapped;
  }

  /**
   * Before the first admin exists: a fresh one-time token (only its hash is
   * kept; an earlier unused token stops working). Undefined once bootstrapped.
   */
  async bootstrapToken(): Promise<string | undefined> {
    if (await this.isBootstrapped()) return undefined;
    const token = `imb_${randomBytes(24).toString('base64url')}`;
    await this.store.commitRecords({ records: [{ kind: 'auth', id: 'bootstrap', state: 'pending', doc: { tokenHash: hash(token), createdAt: this.now() } }] }, this.now());
    return token;
  }

  /** The one-time token makes the root organisation and its first admin key (all roles). */
  async bootstrap(token: string, orgName: string): Promise<{ org: Org; key: string; keyId: string }> {
    if (await this.isBootstrapped()) throw new ImError('IM_BOOTSTRAP_DONE');
    const [rec] = await this.store.records('auth', { ids: ['bootstrap'], limit: 1 });
    const want = (rec?.doc as { tokenHash?: string } | undefined)?.tokenHash;
    if (rec?.state !== 'pending' || want === undefined || !sameHash(hash(token), want)) throw new ImError('IM_UNAUTHORIZED', 'that is not the current bootstrap token (it is printed when the coordinator starts)');
    checkName(orgName);
    const org: Org = { id: `org_${newId()}`, name: orgName, root: true, createdAt: this.now() };
    const { key, record } = this.makeKey(org.id, 'first admin', [...ROLES]);
    await this.store.commitRecords({
      // Only the pending token, only once: a second use finds it 'used'.
      expect: [{ kind: 'auth', id: 'bootstrap', states: ['pending'] }],
      records: [
        { kind: 'auth', id: 'bootstrap', state: 'used', doc: { usedAt: this.now(), org: org.id } },
        { kind: 'org', id: org.id, state: 'active', doc: org },
        { kind: 'api-key', id: record.id, state: 'active', doc: record },
      ],
    }, this.now());
    this.bootstrapped = true;
    await this.audit?.record({ type: 'org.created', actor: 'bootstrap', org: org.id, subject: org.id, data: { name: org.name, root: true } },
      { type: 'key.created', actor: 'bootstrap', org: org.id, subject: record.id, data: { roles: record.roles, name: record.name } });
    this.log.warn({ org: org.id, key: record.id }, 'bootstrapped: the first admin exists; API keys are now required');
    return { org, key, keyId: record.id };
  }

  async createOrg(name: string): Promise<Org> {
    checkName(name);
    const existing = await this.orgs();
    if (existing.some((o) => o.name === name)) throw new ImError('IM_CONFLICT', `an organisation named ${JSON.stringify(name)} exists`);
    const org: Org = { id: `org_${newId()}`, name, root: false, createdAt: this.now() };
    await this.store.commitRecords({ expect: [{ kind: 'org', id: org.id, states: ['absent'] }], records: [{ kind: 'org', id: org.id, state: 'active', doc: org }] }, this.now());
    await this.audit?.record({ type: 'org.created', org: org.id, subject: org.id, data: { name } });
    return org;
  }

  async orgs(): Promise<Org[]> {
    return (await this.store.records('org', { limit: 10_000 })).map((r) => r.doc as Org);
  }

  async org(id: string): Promise<Org | undefined> {
    const [r] = await this.store.records('org', { ids: [id], limit: 1 });
    return r?.doc as Org | undefined;
  }

  /** A new key for an organisation; the secret is in the returned string only. */
  async createKey(orgId: string, name: string, roles: readonly string[]): Promise<{ key: string; record: ApiKey }> {
    const bad = roles.filter((r) => !isRole(r));
    if (bad.length > 0 || roles.length === 0) throw new ImError('IM_VALIDATION', `roles must be a non-empty subset of ${ROLES.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}`);
    checkName(name);
    if (!(await this.org(orgId))) throw new ImError('IM_NOT_FOUND', `no organisation ${orgId}`);
    const made = this.makeKey(orgId, name, [...new Set(roles as Role[])]);
    await this.store.commitRecords({ expect: [{ kind: 'api-key', id: made.record.id, states: ['absent'] }], records: [{ kind: 'api-key', id: made.record.id, state: 'active', doc: made.record }] }, this.now());
    this.log.info({ org: orgId, key: made.record.id, roles }, 'API key created');
    await this.audit?.record({ type: 'key.created', org: orgId, subject: made.record.id, data: { roles: made.record.roles, name } });
    return made;
  }

  async keys(orgId: string | undefined): Promise<Array<ApiKey & { state: string }>> {
    return (await this.store.records('api-key', { limit: 100_000 }))
      .map((r) => ({ ...(r.doc as ApiKey), state: r.state }))
      .filter((k) => orgId === undefined || k.orgId === orgId);
  }

  async revokeKey(orgId: string | undefined, keyId: string): Promise<ApiKey & { state: string }> {
    const [r] = await this.store.records('api-key', { ids: [keyId], limit: 1 });
    const k = r?.doc as ApiKey | undefined;
    // Another organisation's key is "not found": its existence is not ours to learn.
    if (!r || !k || (orgId !== undefined && k.orgId !== orgId)) throw new ImError('IM_NOT_FOUND', `no API key ${keyId}`);
    if (r.state === 'revoked') return { ...k, state: 'revoked' };
    const doc: ApiKey = { ...k, revokedAt: this.now() };
    await this.store.commitRecords({ expect: [{ kind: 'api-key', id: keyId, states: ['active'] }], records: [{ kind: 'api-key', id: keyId, state: 'revoked', doc }] }, this.now());
    this.cache.clear();
    this.log.warn({ key: keyId, org: k.orgId }, 'API key revoked');
    await this.audit?.record({ type: 'key.revoked', org: k.orgId, subject: keyId });
    return { ...doc, state: 'revoked' };
  }

  /** Who is asking. Before bootstrap everything is open, as a local mesh always was. */
  async principal(authorization: string | undefined, openCaller: () => Promise<string>, loopback: boolean): Promise<Principal> {
    if (!(await this.isBootstrapped())) {
      // Open only to this machine: off loopback, nothing works until an admin exists.
      if (!loopback) throw new ImError('IM_UNAUTHORIZED', 'this coordinator has no admin yet: bootstrap it from its own machine (the token is in its log)');
      return { kind: 'open', caller: await openCaller() };
    }
    if (authorization === undefined) return { kind: 'anonymous' };
    const m = /^Bearer\s+(\S+)$/i.exec(authorization);
    const key = m?.[1];
    if (!key) throw new ImError('IM_UNAUTHORIZED', 'Authorization must be "Bearer imk_…"');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < KEY_CACHE_MS) {
      if (hit.principal instanceof ImError) throw hit.principal;
      return hit.principal;
    }
    let out: Principal | ImError;
    const km = KEY_RE.exec(key);
    if (!km) out = new ImError('IM_UNAUTHORIZED', 'not an idlemesh API key (imk_<id>_<secret>)');
    else {
      const [r] = await this.store.records('api-key', { ids: [km[1]!], limit: 1 });
      const rec = r?.doc as ApiKey | undefined;
      if (!r || !rec || !sameHash(hash(km[2]!), rec.secretHash)) out = new ImError('IM_UNAUTHORIZED', 'unknown API key');
      else if (r.state === 'revoked') out = new ImError('IM_KEY_REVOKED');
      else {
        const org = await this.org(rec.orgId);
        out = { kind: 'key', keyId: rec.id, orgId: rec.orgId, roles: rec.roles, root: org?.root === true, caller: `org:${rec.orgId}` };
        this.touch(rec);
      }
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { at: now, principal: out });
    if (out instanceof ImError) throw out;
    return out;
  }

  /** Last-used time, written at most once a minute per key, off the request path. */
  private touch(rec: ApiKey): void {
    const now = this.now();
    if (now - (this.lastUsedWritten.get(rec.id) ?? 0) < LAST_USED_EVERY_MS) return;
    this.lastUsedWritten.set(rec.id, now);
    this.store.commitRecords({ expect: [{ kind: 'api-key', id: rec.id, states: ['active'] }], records: [{ kind: 'api-key', id: rec.id, state: 'active', doc: { ...rec, lastUsedAt: now } }] }, now)
      .catch((err: unknown) => this.log.debug({ err, key: rec.id }, 'last-used time not written'));
  }

  private makeKey(orgId: string, name: string, roles: Role[]): { key: string; record: ApiKey } {
    const id = newId();
    const secret = randomBytes(32).toString('base64url');
    return { key: `imk_${id}_${secret}`, record: { id, orgId, name, roles, secretHash: hash(secret), createdAt: this.now() } };
  }
}

function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new ImError('IM_VALIDATION', 'names are 1–100 letters, digits, spaces and . _ @ -');
}
