/**
 * Humans sign in with passkeys (WebAuthn, @simplewebauthn/server). An admin
 * creates a user with roles and gets a one-time enrolment token; the user
 * registers a passkey with it, then signs in. Every ceremony has its own
 * challenge, used once and expiring after CHALLENGE_MS; signature counters are
 * checked by the library and stored. A session is an HTTP-only cookie plus a
 * CSRF token that every state-changing request must echo.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { ImError } from '@idlemesh/protocol';
import type { Logger } from '../core.js';
import type { Store } from '../store/index.js';
import { ROLES, isRole } from './access.js';
import type { Principal, Role } from './access.js';
import type { AuditSink } from './sink.js';

export const CHALLENGE_MS = 5 * 60_000;
export const SESSION_MS = 12 * 3_600_000;
const ENROL_MS = 24 * 3_600_000;

export interface User {
  id: string;
  orgId: string;
  name: string;
  roles: Role[];
  createdAt: number;
  enrolHash?: string;
  enrolExpiresAt?: number;
}

interface Credential {
  id: string;
  userId: string;
  publicKey: string; // base64url COSE key
  counter: number;
  transports?: string[];
  createdAt: number;
}

export interface Session {
  id: string;
  userId: string;
  orgId: string;
  roles: Role[];
  csrf: string;
  expiresAt: number;
}

export interface RelyingParty {
  /** e.g. localhost, or mesh.example.org (never an IP address: WebAuthn refuses them). */
  rpID: string;
  /** e.g. http://localhost:7070 or https://mesh.example.org */
  origin: string;
  rpName: string;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const token = (): string => randomBytes(24).toString('base64url');

export class Passkeys {
  audit: AuditSink | undefined;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly rp: RelyingParty,
    private readonly isRootOrg: (orgId: string) => Promise<boolean>,
  ) {}

  /** An admin's act: a user with roles, and the one-time token that lets them register a passkey. */
  async createUser(orgId: string, name: string, roles: readonly string[]): Promise<{ user: User; enrolToken: string }> {
    const bad = roles.filter((r) => !isRole(r));
    if (roles.length === 0 || bad.length > 0) throw new ImError('IM_VALIDATION', `roles must be a non-empty subset of ${ROLES.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}`);
    if (!/^[\w .@-]{1,100}$/.test(name)) throw new ImError('IM_VALIDATION', 'user names are 1–100 letters, digits, spaces and . _ @ -');
    const enrolToken = token();
    const user: User = {
      id: `usr_${randomBytes(9).toString('hex')}`, orgId, name, roles: [...new Set(roles as Role[])], createdAt: this.now(),
      enrolHash: sha(enrolToken), enrolExpiresAt: this.now() + ENROL_MS,
    };
    await this.store.commitRecords({ expect: [{ kind: 'user', id: user.id, states: ['absent'] }], records: [{ kind: 'user', id: user.id, state: 'active', doc: user }] }, this.now());
    return { user, enrolToken };
  }

  async registrationOptions(userId: string, enrolToken: string): Promise<unknown> {
    const user = await this.enrollingUser(userId, enrolToken);
    const existing = (await this.store.records('credential', { limit: 10_000 })).map((r) => r.doc as Credential).filter((c) => c.userId === user.id);
    const options = await generateRegistrationOptions({
      rpName: this.rp.rpName, rpID: this.rp.rpID, userName: user.name, userID: new TextEncoder().encode(user.id),
      attestationType: 'none', excludeCredentials: existing.map((c) => ({ id: c.id, ...(c.transports ? { transports: c.transports } : {}) })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    });
    await this.putChallenge(options.challenge, 'register', user.id);
    return options;
  }

  async registrationVerify(userId: string, enrolToken: string, response: RegistrationResponseJSON): Promise<{ credentialId: string }> {
    const user = await this.enrollingUser(userId, enrolToken);
    const challenge = await this.takeChallenge(response, 'register', user.id);
    const v = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: this.rp.origin, expectedRPID: this.rp.rpID, requireUserVerification: false })
      .catch((err: unknown) => { throw new ImError('IM_UNAUTHORIZED', `passkey registration refused: ${(err as Error).message}`); });
    if (!v.verified) throw new ImError('IM_UNAUTHORIZED', 'passkey registration did not verify');
    const c = v.registrationInfo.credential;
    const cred: Credential = {
      id: c.id, userId: user.id, publicKey: Buffer.from(c.publicKey).toString('base64url'), counter: c.counter, createdAt: this.now(),
      ...(c.transports ? { transports: c.transports } : {}),
    };
    const { enrolHash: _h, enrolExpiresAt: _e, ...enrolled } = user;
    await this.store.commitRecords({
      expect: [{ kind: 'credential', id: cred.id, states: ['absent'] }, { kind: 'user', id: user.id, states: ['active'] }],
      // The enrolment token is spent with the first passkey.
      records: [{ kind: 'credential', id: cred.id, state: 'active', doc: cred }, { kind: 'user', id: user.id, state: 'active', doc: enrolled }],
    }, this.now());
    this.log.info({ user: user.id, org: user.orgId }, 'passkey registered');
    await this.audit?.record({ type: 'key.created', actor: user.id, org: user.orgId, subject: cred.id, data: { passkey: true } });
    return { credentialId: cred.id };
  }

  async authenticationOptions(): Promise<unknown> {
    // Discoverable credentials: the authenticator says who the user is.
    const options = await generateAuthenticationOptions({ rpID: this.rp.rpID, userVerification: 'preferred', allowCredentials: [] });
    await this.putChallenge(options.challenge, 'login', undefined);
    return options;
  }

  async authenticationVerify(response: AuthenticationResponseJSON): Promise<Session> {
    const [rec] = await this.store.records('credential', { ids: [String(response.id)], limit: 1 });
    if (!rec || rec.state !== 'active') throw new ImError('IM_UNAUTHORIZED', 'unknown passkey');
    const cred = rec.doc as Credential;
    const challenge = await this.takeChallenge(response, 'login', undefined);
    const v = await verifyAuthenticationResponse({
      response, expectedChallenge: challenge, expectedOrigin: this.rp.origin, expectedRPID: this.rp.rpID, requireUserVerification: false,
      credential: { id: cred.id, publicKey: new Uint8Array(Buffer.from(cred.publicKey, 'base64url')), counter: cred.counter, ...(cred.transports ? { transports: cred.transports } : {}) },
    }).catch((err: unknown) => { throw new ImError('IM_UNAUTHORIZED', `passkey sign-in refused: ${(err as Error).message}`); });
    if (!v.verified) throw new ImError('IM_UNAUTHORIZED', 'passkey sign-in did not verify');
    const [u] = await this.store.records('user', { ids: [cred.userId], limit: 1 });
    if (!u || u.state !== 'active') throw new ImError('IM_UNAUTHORIZED', 'the user of this passkey is disabled');
    const user = u.doc as User;
    const session: Session = { id: token(), userId: user.id, orgId: user.orgId, roles: user.roles, csrf: token(), expiresAt: this.now() + SESSION_MS };
    await this.store.commitRecords({
      records: [
        { kind: 'credential', id: cred.id, state: 'active', doc: { ...cred, counter: v.authenticationInfo.newCounter } },
        { kind: 'session', id: sha(session.id), state: 'active', doc: { ...session, id: sha(session.id) } },
      ],
    }, this.now());
    this.log.info({ user: user.id, org: user.orgId }, 'signed in with a passkey');
    await this.audit?.record({ type: 'auth.signin', actor: user.id, org: user.orgId, subject: cred.id });
    return session;
  }

  /** The principal of a session cookie; CSRF is the caller's check (`csrfOk`). */
  async session(cookie: string): Promise<{ principal: Principal; csrf: string } | undefined> {
    const [r] = await this.store.records('session', { ids: [sha(cookie)], limit: 1 });
    const s = r?.doc as Session | undefined;
    if (!r || r.state !== 'active' || !s || s.expiresAt <= this.now()) return undefined;
    const root = await this.isRootOrg(s.orgId);
    return { principal: { kind: 'key', keyId: `session:${s.userId}`, orgId: s.orgId, roles: s.roles, root, caller: `org:${s.orgId}` }, csrf: s.csrf };
  }

  async logout(cookie: string): Promise<void> {
    const [r] = await this.store.records('session', { ids: [sha(cookie)], limit: 1 });
    if (r) await this.store.commitRecords({ records: [{ kind: 'session', id: r.id, state: 'ended', doc: r.doc }] }, this.now());
  }

  private async enrollingUser(userId: string, enrolToken: string): Promise<User> {
    const [r] = await this.store.records('user', { ids: [userId], limit: 1 });
    const u = r?.doc as User | undefined;
    if (!r || !u || r.state !== 'active' || u.enrolHash === undefined || u.enrolHash !== sha(enrolToken) || (u.enrolExpiresAt ?? 0) <= this.now()) {
      throw new ImError('IM_UNAUTHORIZED', 'that enrolment token is unknown, used or expired; ask an admin for a new one');
    }
    return u;
  }

  private async putChallenge(challenge: string, type: 'register' | 'login', userId: string | undefined): Promise<void> {
    await this.store.commitRecords({ records: [{ kind: 'challenge', id: challenge, state: 'open', doc: { type, userId, expiresAt: this.now() + CHALLENGE_MS } }] }, this.now());
  }

  /** The challenge the client signed, if it is ours, of this ceremony, unexpired and unused; it is spent now. */
  private async takeChallenge(response: { response: { clientDataJSON: string } }, type: 'register' | 'login', userId: string | undefined): Promise<string> {
    let challenge: string;
    try {
      challenge = (JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8')) as { challenge: string }).challenge;
    } catch {
      throw new ImError('IM_VALIDATION', 'clientDataJSON is not base64url JSON');
    }
    const [r] = await this.store.records('challenge', { ids: [challenge], limit: 1 });
    const doc = r?.doc as { type: string; userId?: string; expiresAt: number } | undefined;
    if (!r || !doc || doc.type !== type || (userId !== undefined && doc.userId !== userId)) throw new ImError('IM_UNAUTHORIZED', 'unknown challenge: start the ceremony again');
    if (r.state !== 'open') throw new ImError('IM_UNAUTHORIZED', 'this challenge was already used (a replayed response)');
    if (doc.expiresAt <= this.now()) throw new ImError('IM_UNAUTHORIZED', 'the challenge expired: start the ceremony again');
    await this.store.commitRecords({ expect: [{ kind: 'challenge', id: challenge, states: ['open'] }], records: [{ kind: 'challenge', id: challenge, state: 'used', doc }] }, this.now())
      .catch(() => { throw new ImError('IM_UNAUTHORIZED', 'this challenge was already used (a replayed response)'); });
    return challenge;
  }
}
