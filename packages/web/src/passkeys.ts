/**
 * The browser side of WebAuthn with navigator.credentials, speaking the JSON
 * the coordinator's @simplewebauthn/server produces and expects (base64url
 * for every binary field).
 */
import { refreshWhoami, request } from './api.js';
import type { SignedIn } from './api.js';
import { updateSession } from './session.js';

interface CredentialDescriptorJSON { id: string; type: 'public-key'; transports?: string[] }

interface RequestOptionsJSON {
  challenge: string;
  rpId?: string;
  timeout?: number;
  userVerification?: UserVerificationRequirement;
  allowCredentials?: CredentialDescriptorJSON[];
}

interface CreationOptionsJSON {
  challenge: string;
  rp: { id?: string; name: string };
  user: { id: string; name: string; displayName: string };
  pubKeyCredParams: Array<{ type: 'public-key'; alg: number }>;
  timeout?: number;
  attestation?: AttestationConveyancePreference;
  authenticatorSelection?: AuthenticatorSelectionCriteria;
  excludeCredentials?: CredentialDescriptorJSON[];
}

export function fromB64u(s: string): ArrayBuffer {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

export function toB64u(buf: ArrayBuffer | ArrayBufferView): string {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function descriptors(list: CredentialDescriptorJSON[] | undefined): PublicKeyCredentialDescriptor[] {
  return (list ?? []).map((c) => ({ type: 'public-key', id: fromB64u(c.id), ...(c.transports ? { transports: c.transports as AuthenticatorTransport[] } : {}) }));
}

export function passkeysSupported(): boolean {
  return typeof window.PublicKeyCredential === 'function' && window.isSecureContext;
}

/** Signs in with a discoverable passkey; the coordinator sets the session cookie and answers the CSRF token. */
export async function signInWithPasskey(): Promise<SignedIn> {
  const o = await request<RequestOptionsJSON>('POST', '/v1/passkeys/login/options', { json: {} });
  const publicKey: PublicKeyCredentialRequestOptions = {
    challenge: fromB64u(o.challenge),
    allowCredentials: descriptors(o.allowCredentials),
    ...(o.rpId !== undefined ? { rpId: o.rpId } : {}),
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
    ...(o.userVerification !== undefined ? { userVerification: o.userVerification } : {}),
  };
  const cred = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  if (cred === null) throw new Error('no passkey was chosen');
  const r = cred.response as AuthenticatorAssertionResponse;
  const response = {
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    clientExtensionResults: cred.getClientExtensionResults(),
    ...(cred.authenticatorAttachment ? { authenticatorAttachment: cred.authenticatorAttachment } : {}),
    response: {
      clientDataJSON: toB64u(r.clientDataJSON),
      authenticatorData: toB64u(r.authenticatorData),
      signature: toB64u(r.signature),
      ...(r.userHandle ? { userHandle: toB64u(r.userHandle) } : {}),
    },
  };
  const s = await request<SignedIn>('POST', '/v1/passkeys/login/verify', { json: { response } });
  updateSession({ csrf: s.csrfToken, apiKey: undefined });
  await refreshWhoami();
  return s;
}

/** Registers a passkey for a user an admin created, with their one-time enrolment token. */
export async function enrolPasskey(userId: string, token: string): Promise<{ credentialId: string }> {
  const o = await request<CreationOptionsJSON>('POST', '/v1/passkeys/register/options', { json: { userId, token } });
  const publicKey: PublicKeyCredentialCreationOptions = {
    challenge: fromB64u(o.challenge),
    rp: o.rp,
    user: { id: fromB64u(o.user.id), name: o.user.name, displayName: o.user.displayName },
    pubKeyCredParams: o.pubKeyCredParams,
    excludeCredentials: descriptors(o.excludeCredentials),
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
    ...(o.attestation !== undefined ? { attestation: o.attestation } : {}),
    ...(o.authenticatorSelection !== undefined ? { authenticatorSelection: o.authenticatorSelection } : {}),
  };
  const cred = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (cred === null) throw new Error('no passkey was created');
  const r = cred.response as AuthenticatorAttestationResponse;
  const response = {
    id: cred.id,
    rawId: toB64u(cred.rawId),
    type: cred.type,
    clientExtensionResults: cred.getClientExtensionResults(),
    ...(cred.authenticatorAttachment ? { authenticatorAttachment: cred.authenticatorAttachment } : {}),
    response: {
      clientDataJSON: toB64u(r.clientDataJSON),
      attestationObject: toB64u(r.attestationObject),
      ...(typeof r.getTransports === 'function' ? { transports: r.getTransports() } : {}),
    },
  };
  return request<{ credentialId: string }>('POST', '/v1/passkeys/register/verify', { json: { userId, token, response } });
}

export async function signOut(): Promise<void> {
  try {
    await request('POST', '/v1/session/logout', { json: {} });
  } finally {
    updateSession({ csrf: undefined, apiKey: undefined });
    await refreshWhoami().catch(() => undefined);
  }
}
