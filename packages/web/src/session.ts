/**
 * Who this tab acts as. A person signs in with a passkey: the coordinator sets
 * an HTTP-only session cookie (the page never sees it) and answers a CSRF
 * token that every state-changing request echoes in X-CSRF-Token. Or an API
 * key, kept for this tab only. A local mesh (no admin yet) needs neither.
 */
import { useEffect, useState } from 'preact/hooks';

export type Role = 'admin' | 'approver' | 'buyer' | 'operator' | 'auditor';

/** GET /v1/whoami. */
export type Whoami =
  | { kind: 'open' }
  | { kind: 'key'; keyId: string; orgId: string; roles: Role[]; root: boolean };

export interface SessionState {
  /** undefined until the first whoami answers; 'signed-out' when the coordinator wants credentials. */
  who: Whoami | 'signed-out' | undefined;
  csrf: string | undefined;
  apiKey: string | undefined;
}

const CSRF_KEY = 'idlemesh.csrf';
const API_KEY = 'idlemesh.apiKey';

function read(storage: () => Storage, key: string): string | undefined {
  try {
    return storage().getItem(key) ?? undefined;
  } catch {
    return undefined;
  }
}

function write(storage: () => Storage, key: string, value: string | undefined): void {
  try {
    if (value === undefined) storage().removeItem(key);
    else storage().setItem(key, value);
  } catch {
    /* storage disabled: the session lasts as long as this page */
  }
}

let state: SessionState = {
  who: undefined,
  // The CSRF token outlives a reload like the cookie it belongs to (other tabs use it too).
  csrf: read(() => localStorage, CSRF_KEY),
  apiKey: read(() => sessionStorage, API_KEY),
};
const listeners = new Set<() => void>();

export function session(): SessionState {
  return state;
}

export function updateSession(patch: Partial<SessionState>): void {
  state = { ...state, ...patch };
  if ('csrf' in patch) write(() => localStorage, CSRF_KEY, patch.csrf);
  if ('apiKey' in patch) write(() => sessionStorage, API_KEY, patch.apiKey);
  for (const l of listeners) l();
}

export function useSession(): SessionState {
  const [s, set] = useState(state);
  useEffect(() => {
    const l = (): void => set(state);
    listeners.add(l);
    l();
    return () => {
      listeners.delete(l);
    };
  }, []);
  return s;
}

export function hasRole(s: SessionState, ...roles: Role[]): boolean {
  if (s.who === 'signed-out' || s.who === undefined) return false;
  if (s.who.kind === 'open') return true;
  return roles.some((r) => (s.who as { roles: Role[] }).roles.includes(r));
}
