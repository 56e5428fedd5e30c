/**
 * Passkeys end to end against a real coordinator on `localhost`, with a
 * software authenticator that builds spec-conformant WebAuthn responses
 * (none attestation, ES256/P-256, authenticator data per WebAuthn §6.1):
 * enrol, sign in, CSRF, replay, expiry, counter regression, sign-out.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { resolveCoordinatorOptions, startCoordinator } from '../src/index.js';
import type { RunningCoordinator } from '../src/index.js';

const b64u = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** A platform authenticator in software: one ES256 credential, a signature counter. */
class SoftAuthenticator {
  private readonly priv: KeyObject;
  private readonly pub: KeyObject;
  readonly credId = randomBytes(16);
  counter = 0;
  userHandle = '';

  constructor(private readonly rpID: string, private readonly origin: string) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.priv = privateKey;
    this.pub = publicKey;
  }

  register(options: { challenge: string; user: { id: string } }): Record<string, unknown> {
    this.userHandle = options.user.id;
    const jwk = this.pub.export({ format: 'jwk' }) as { x: string; y: string };
    const cose = new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x, 'base64url')], [-3, Buffer.from(jwk.y, 'base64url')]]);
    const credLen = Buffer.alloc(2);
    credLen.writeUInt16BE(this.credId.length);
    const authData = Buffer.concat([sha256(this.rpID), Buffer.from([0x45]), u32(this.counter), Buffer.alloc(16), credLen, this.credId, Buffer.from(isoCBOR.encode(cose))]);
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', new Uint8Array(authData)]]) as never);
    const clientDataJSON = JSON.stringify({ type: 'webauthn.create', challenge: options.challenge, origin: this.origin, crossOrigin: false });
    return {
      id: b64u(this.credId), rawId: b64u(this.credId), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64u(clientDataJSON), attestationObject: b64u(attestationObject), transports: ['internal'] },
    };
  }

  authenticate(options: { challenge: string }, counter = ++this.counter): Record<string, unknown> {
    const authData = Buffer.concat([sha256(this.rpID), Buffer.from([0x05]), u32(counter)]);
    const clientDataJSON = JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin: this.origin, crossOrigin: false });
    const signature = createSign('SHA256').update(Buffer.concat([authData, sha256(clientDataJSON)])).sign(this.priv); // DER, as authenticators send
    return {
      id: b64u(this.credId), rawId: b64u(this.credId), type: 'public-key', clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientDataJSON), authenticatorData: b64u(authData), signature: b64u(signature), userHandle: this.userHandle },
    };
  }
}

describe('passkeys', () => {
  let dir: string;
  let c: RunningCoordinator;
  let origin: string;
  const call = async (method: string, path: string, opts: { key?: string; cookie?: string; csrf?: string; body?: unknown } = {}): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string; message: string } }; setCookie: string | null }> => {
    const res = await fetch(`${origin}${path}`, {
      method,
      headers: {
        ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}), ...(opts.cookie ? { cookie: opts.cookie } : {}),
        ...(opts.csrf ? { 'x-csrf-token': opts.csrf } : {}), ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, setCookie: res.headers.get('set-cookie') };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'idlemesh-passkeys-'));
    c = await startCoordinator(resolveCoordinatorOptions({ port: 0, dataDir: dir, logLevel: 'silent' }, { env: {} }));
    origin = `http://localhost:${c.port}`; // WebAuthn refuses IP addresses as the relying party
  });
  after(async () => {
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enrol with a one-time token, sign in, act with the session and CSRF; replays, expiry, clones and sign-out refused', async () => {
    const boot = await call('POST', '/v1/bootstrap', { body: { token: c.bootstrapToken, org: 'root' } });
    const admin = boot.body.key as string;
    assert.equal((await call('POST', '/v1/users', { key: admin, body: { name: 'alice', roles: ['buyer', 'wizard'] } })).body.error?.code, 'IM_VALIDATION');
    const user = await call('POST', '/v1/users', { key: admin, body: { name: 'alice', roles: ['buyer', 'approver'] } });
    assert.equal(user.status, 201);
    const userId = user.body.id as string;
    const token = user.body.enrolToken as string;

    const auth = new SoftAuthenticator('localhost', origin);
    assert.equal((await call('POST', '/v1/passkeys/register/options', { body: { userId, token: 'wrong' } })).body.error?.code, 'IM_UNAUTHORIZED');
    const regOptions = (await call('POST', '/v1/passkeys/register/options', { body: { userId, token } })).body as { challenge: string; user: { id: string }; rp: { id: string } };
    assert.equal(regOptions.rp.id, 'localhost');
    // A response for another origin does not verify.
    const evil = new SoftAuthenticator('localhost', 'http://evil.example');
    assert.equal((await call('POST', '/v1/passkeys/register/verify', { body: { userId, token, response: evil.register(regOptions) } })).body.error?.code, 'IM_UNAUTHORIZED');
    const regOptions2 = (await call('POST', '/v1/passkeys/register/options', { body: { userId, token } })).body as typeof regOptions;
    const reg = await call('POST', '/v1/passkeys/register/verify', { body: { userId, token, response: auth.register(regOptions2) } });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    // The enrolment token is spent.
    assert.equal((await call('POST', '/v1/passkeys/register/options', { body: { userId, token } })).body.error?.code, 'IM_UNAUTHORIZED');

    const loginOptions = (await call('POST', '/v1/passkeys/login/options', { body: {} })).body as { challenge: string };
    const assertion = auth.authenticate(loginOptions);
    const login = await call('POST', '/v1/passkeys/login/verify', { body: { response: assertion } });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.match(login.setCookie ?? '', /^im_session=[^;]+; HttpOnly; SameSite=Strict; Path=\//);
    const cookie = (login.setCookie ?? '').split(';')[0]!;
    const csrf = login.body.csrfToken as string;
    // Replaying the same assertion: its challenge is spent.
    assert.match((await call('POST', '/v1/passkeys/login/verify', { body: { response: assertion } })).body.error?.message ?? '', /already used/);

    const who = await call('GET', '/v1/whoami', { cookie });
    assert.deepEqual(who.body.roles, ['buyer', 'approver']);
    assert.equal((await call('POST', '/v1/jobs', { cookie, body: { module: '0'.repeat(64), inputs: ['eA=='] } })).body.error?.code, 'IM_FORBIDDEN', 'no CSRF token');
    const withCsrf = await call('POST', '/v1/jobs', { cookie, csrf, body: { module: '0'.repeat(64), inputs: ['eA=='] } });
    assert.equal(withCsrf.body.error?.code, 'IM_MODULE_NOT_FOUND', 'past access control, refused for its content');
    assert.equal((await call('POST', '/v1/keys', { cookie, csrf, body: { name: 'x', roles: ['buyer'] } })).status, 403, 'a buyer session is no admin');

    // An expired challenge.
    const late = (await call('POST', '/v1/passkeys/login/options', { body: {} })).body as { challenge: string };
    const [rec] = await c.store.records('challenge', { ids: [late.challenge], limit: 1 });
    await c.store.commitRecords({ records: [{ kind: 'challenge', id: late.challenge, state: 'open', doc: { ...(rec!.doc as object), expiresAt: Date.now() - 1 } }] }, Date.now());
    assert.match((await call('POST', '/v1/passkeys/login/verify', { body: { response: auth.authenticate(late) } })).body.error?.message ?? '', /expired/);

    // A cloned authenticator (its counter went back) is refused.
    const again = (await call('POST', '/v1/passkeys/login/options', { body: {} })).body as { challenge: string };
    assert.equal((await call('POST', '/v1/passkeys/login/verify', { body: { response: auth.authenticate(again, 1) } })).body.error?.code, 'IM_UNAUTHORIZED');

    assert.equal((await call('POST', '/v1/session/logout', { cookie, csrf })).status, 200);
    assert.equal((await call('GET', '/v1/whoami', { cookie })).body.error?.code, 'IM_UNAUTHORIZED');
  });
});
