/**
 * Typed calls to the coordinator this page came from. Most go through the
 * SDK's IdlemeshClient (responses checked against the protocol schemas); the
 * few routes the SDK does not wrap (passkeys, approvals, audit, policy,
 * issuance) through `request`, which turns error bodies into the same ImError.
 */
import { IdlemeshClient, ImError } from '@idlemesh/sdk';
import type { WireError } from '@idlemesh/sdk';
import { session, updateSession } from './session.js';
import type { Role, Whoami } from './session.js';

export { ImError };

/** fetch with this tab's credentials: the session cookie (same origin), CSRF on writes, or the API key. */
export const authFetch: typeof fetch = (input, init = {}) => {
  const s = session();
  const headers = new Headers(init.headers);
  const method = (init.method ?? 'GET').toUpperCase();
  if (s.apiKey !== undefined && !headers.has('authorization')) headers.set('authorization', `Bearer ${s.apiKey}`);
  if (method !== 'GET' && method !== 'HEAD' && s.csrf !== undefined) headers.set('x-csrf-token', s.csrf);
  return fetch(input, { ...init, headers, credentials: 'same-origin' });
};

let cached: { key: string | undefined; client: IdlemeshClient } | undefined;

export function client(): IdlemeshClient {
  const key = session().apiKey;
  if (cached === undefined || cached.key !== key) cached = { key, client: new IdlemeshClient({ url: location.origin, fetch: authFetch, timeoutMs: 20_000 }) };
  return cached.client;
}

/** One call to a route the SDK does not wrap. JSON in and out; `text` for text/plain answers. */
export async function request<T = unknown>(method: 'GET' | 'POST', path: string, opts: { json?: unknown; text?: boolean; signal?: AbortSignal } = {}): Promise<T> {
  let res: Response;
  try {
    res = await authFetch(path, {
      method,
      headers: { accept: opts.text ? 'text/plain' : 'application/json', ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ImError('IM_CONNECTION_FAILED', `could not reach the coordinator: ${(err as Error).message}`);
  }
  const body = await res.text();
  if (!res.ok) throw errorOf(res.status, body, path);
  if (opts.text) return body as T;
  try {
    return JSON.parse(body) as T;
  } catch {
    throw new ImError('IM_PROTOCOL_VERSION', `${path} answered something that is not JSON`);
  }
}

function errorOf(status: number, body: string, path: string): ImError {
  try {
    const parsed = JSON.parse(body) as { error?: WireError };
    if (parsed.error && typeof parsed.error.code === 'string' && typeof parsed.error.message === 'string') {
      const e = ImError.fromWire(parsed.error, status);
      // Keep codes this page does not know (a newer coordinator) visible.
      if (e.code !== parsed.error.code) Object.defineProperty(e, 'code', { value: parsed.error.code });
      return e;
    }
  } catch {
    /* not an idlemesh error body */
  }
  const code = status === 404 ? 'IM_ROUTE_NOT_FOUND' : status === 401 ? 'IM_UNAUTHORIZED' : status === 403 ? 'IM_FORBIDDEN' : status >= 500 ? 'IM_UNAVAILABLE' : 'IM_BAD_REQUEST';
  return new ImError(code, `HTTP ${status} from ${path}`);
}

/** What to tell a person about a failed call: the API's own message. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof ImError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: 'error', message: err.message };
  return { code: 'error', message: String(err) };
}

export function isCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof ImError && codes.includes(err.code);
}

// ---- identity ------------------------------------------------------------------

/** Asks the coordinator who we are and records it; a 401 means "sign in". */
export async function refreshWhoami(): Promise<void> {
  try {
    const who = await request<Whoami | { kind: 'anonymous' }>('GET', '/v1/whoami');
    updateSession({ who: who.kind === 'anonymous' ? 'signed-out' : who });
  } catch (err) {
    if (isCode(err, 'IM_UNAUTHORIZED')) updateSession({ who: 'signed-out' });
    else throw err;
  }
}

export interface SignedIn {
  userId: string;
  orgId: string;
  roles: Role[];
  csrfToken: string;
  expiresAt: number;
}

// ---- governance ----------------------------------------------------------------

export interface Approval {
  id: string;
  orgId: string;
  jobId: string;
  createdAt: number;
  state: string;
  reason?: string;
  decidedBy?: string;
  decidedAt?: number;
}

export interface PolicyView {
  org: string;
  version: number;
  text?: string;
  format?: string;
  hash?: string;
  note?: string;
}

// ---- audit ---------------------------------------------------------------------

export interface AuditKey {
  origin: string;
  verifierKey: string;
}

export interface AuditStatus {
  size: number;
  witnessed: number;
  quorum: number;
  flagged: boolean;
  witnesses: string[];
}
