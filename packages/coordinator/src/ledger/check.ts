// replay rebuilds the state from the log; check audits a state against its
// own log with an independent, deliberately plain re-computation — it is what
// `idlemesh ledger check` runs after every fault scenario.
import { MAX_AMOUNT } from './amounts.js';
import { applyTransfer, createLedger, newAccountState } from './state.js';
import { TRANSFER_CODES } from './types.js';
import type { AccountEvent, LedgerState, Transfer } from './types.js';

/** Rebuilds balances and indexes from the log (account events and transfers, each in seq order). No rule is re-checked: run `check` on the result. */
export function replay(accountEvents: readonly AccountEvent[], transfers: readonly Transfer[]): LedgerState {
  const state = createLedger();
  let i = 0;
  let j = 0;
  while (i < accountEvents.length || j < transfers.length) {
    const a = accountEvents[i];
    const t = transfers[j];
    if (a !== undefined && (t === undefined || a.seq < t.seq)) {
      if (a.type === 'create') {
        if (!state.accounts.has(a.account.id)) state.accounts.set(a.account.id, newAccountState(a.account));
      } else {
        const s = state.accounts.get(a.accountId);
        if (s !== undefined) s.frozen = a.type === 'freeze';
      }
      state.accountEvents.push(a);
      if (a.seq >= state.seq) state.seq = a.seq + 1;
      if (a.timestamp > state.clock) state.clock = a.timestamp;
      i++;
    } else if (t !== undefined) {
      applyTransfer(state, t);
      j++;
    }
  }
  return state;
}

export type ViolationKind =
  | 'unbalanced' | 'balance-mismatch' | 'overdraft' | 'credit-limit' | 'overflow'
  | 'pending-resolved-twice' | 'pending-missing' | 'post-exceeds-pending' | 'resolution-mismatch'
  | 'expired-before-timeout' | 'resolved-after-timeout' | 'debit-while-frozen'
  | 'unknown-account' | 'same-account' | 'bad-amount' | 'bad-code' | 'duplicate-id' | 'order'
  | 'index-mismatch';

export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
  readonly account?: string;
  readonly transfer?: string;
}

interface Recomputed { dp: bigint; cp: bigint; dpe: bigint; cpe: bigint; frozen: boolean; dmnec: boolean; cmned: boolean }

const CODES: ReadonlySet<string> = new Set(TRANSFER_CODES);

/**
 * Audits a ledger state. Empty = OK. Verifies, from the log alone:
 * Σ debits = Σ credits (posted and pending); every balance field equals the
 * sum of its transfers; after every transfer no debit-limited account is
 * overdrawn and no credit-limited account over-credited; each pending is
 * resolved at most once, by a post ≤ its amount or a void/expire of exactly
 * its amount, expiries only after the timeout and posts/voids only before;
 * no debit of a frozen account; ids unique; seq strictly increasing and
 * timestamps non-decreasing; the open-pending index matches the log.
 */
export function check(state: LedgerState): Violation[] {
  const out: Violation[] = [];
  const v = (kind: ViolationKind, message: string, extra: { account?: string; transfer?: string } = {}): void => {
    out.push({ kind, message, ...extra });
  };
  const rec = new Map<string, Recomputed>();
  const pendings = new Map<string, { t: Transfer; resolvedBy: string | undefined }>();
  const ids = new Set<string>();
  const evs = state.accountEvents;
  const ts = state.transfers;
  let lastSeq = -1;
  let lastTime = -Infinity;
  let i = 0;
  let j = 0;
  const order = (seq: number, timestamp: number, what: string): void => {
    if (!(seq > lastSeq)) v('order', `${what}: seq ${seq} does not follow ${lastSeq}`);
    if (timestamp < lastTime) v('order', `${what}: timestamp ${timestamp} is before ${lastTime}`);
    lastSeq = seq;
    lastTime = timestamp;
  };
  while (i < evs.length || j < ts.length) {
    const a = evs[i];
    const t = ts[j];
    if (a !== undefined && (t === undefined || a.seq < t.seq)) {
      i++;
      if (a.type === 'create') {
        order(a.seq, a.timestamp, `account ${a.account.id}`);
        if (rec.has(a.account.id)) { v('duplicate-id', `account ${a.account.id} created twice`, { account: a.account.id }); continue; }
        const f = a.account.flags;
        rec.set(a.account.id, { dp: 0n, cp: 0n, dpe: 0n, cpe: 0n, frozen: f.frozen, dmnec: f.debitsMustNotExceedCredits, cmned: f.creditsMustNotExceedDebits });
      } else {
        order(a.seq, a.timestamp, `${a.type} ${a.accountId}`);
        const r = rec.get(a.accountId);
        if (r === undefined) v('unknown-account', `${a.type} of unknown account ${a.accountId}`, { account: a.accountId });
        else r.frozen = a.type === 'freeze';
      }
      continue;
    }
    if (t === undefined) break;
    j++;
    const tr = { transfer: t.id };
    order(t.seq, t.timestamp, `transfer ${t.id}`);
    if (ids.has(t.id)) { v('duplicate-id', `transfer id ${t.id} appears twice`, tr); continue; }
    ids.add(t.id);
    if (typeof t.amount !== 'bigint' || t.amount <= 0n || t.amount > MAX_AMOUNT) v('bad-amount', `transfer ${t.id} has amount ${String(t.amount)}`, tr);
    if (!CODES.has(t.code)) v('bad-code', `transfer ${t.id} has unknown code ${String(t.code)}`, tr);
    if (t.debitAccount === t.creditAccount) v('same-account', `transfer ${t.id} debits and credits ${t.debitAccount}`, tr);
    const d = rec.get(t.debitAccount);
    const c = rec.get(t.creditAccount);
    if (d === undefined) v('unknown-account', `transfer ${t.id} debits unknown account ${t.debitAccount}`, tr);
    if (c === undefined) v('unknown-account', `transfer ${t.id} credits unknown account ${t.creditAccount}`, tr);
    if (d === undefined || c === undefined) continue;
    if ((t.type === 'single' || t.type === 'pending' || t.type === 'post') && d.frozen) {
      v('debit-while-frozen', `transfer ${t.id} debits frozen account ${t.debitAccount}`, { ...tr, account: t.debitAccount });
    }
    if (t.type === 'single') {
      d.dp += t.amount; c.cp += t.amount;
    } else if (t.type === 'pending') {
      d.dpe += t.amount; c.cpe += t.amount;
      pendings.set(t.id, { t, resolvedBy: undefined });
    } else {
      const p = t.pendingId === undefined ? undefined : pendings.get(t.pendingId);
      if (p === undefined) { v('pending-missing', `${t.type} ${t.id} names no earlier pending transfer (${String(t.pendingId)})`, tr); continue; }
      if (p.resolvedBy !== undefined) { v('pending-resolved-twice', `pending ${p.t.id} resolved by ${p.resolvedBy} and again by ${t.id}`, tr); continue; }
      if (p.t.debitAccount !== t.debitAccount || p.t.creditAccount !== t.creditAccount || p.t.code !== t.code) {
        v('resolution-mismatch', `${t.type} ${t.id} does not match the accounts/code of pending ${p.t.id}`, tr);
      }
      if (t.type === 'post' && t.amount > p.t.amount) v('post-exceeds-pending', `post ${t.id} of ${t.amount} exceeds pending ${p.t.id} of ${p.t.amount}`, tr);
      if (t.type !== 'post' && t.amount !== p.t.amount) v('resolution-mismatch', `${t.type} ${t.id} releases ${t.amount}, pending ${p.t.id} held ${p.t.amount}`, tr);
      const deadline = p.t.timeout === undefined ? undefined : p.t.timestamp + p.t.timeout;
      if (t.type === 'expire' && (deadline === undefined || t.timestamp < deadline)) v('expired-before-timeout', `expire ${t.id} at ${t.timestamp} before the deadline of ${p.t.id}`, tr);
      if (t.type !== 'expire' && deadline !== undefined && t.timestamp >= deadline) v('resolved-after-timeout', `${t.type} ${t.id} at ${t.timestamp} after ${p.t.id} timed out at ${deadline}`, tr);
      p.resolvedBy = t.id;
      d.dpe -= p.t.amount; c.cpe -= p.t.amount;
      if (t.type === 'post') { d.dp += t.amount; c.cp += t.amount; }
    }
    for (const [id, r] of [[t.debitAccount, d], [t.creditAccount, c]] as const) {
      if (r.dmnec && r.dp + r.dpe > r.cp) v('overdraft', `after ${t.id}, ${id} has debits ${r.dp + r.dpe} over credits ${r.cp}`, { ...tr, account: id });
      if (r.cmned && r.cp + r.cpe > r.dp) v('credit-limit', `after ${t.id}, ${id} has credits ${r.cp + r.cpe} over debits ${r.dp}`, { ...tr, account: id });
      if (r.dp + r.dpe > MAX_AMOUNT || r.cp + r.cpe > MAX_AMOUNT) v('overflow', `after ${t.id}, ${id} exceeds 2^63-1 msat`, { ...tr, account: id });
    }
  }

  let sdp = 0n, scp = 0n, sdpe = 0n, scpe = 0n;
  for (const [id, s] of state.accounts) {
    sdp += s.debitsPosted; scp += s.creditsPosted; sdpe += s.debitsPending; scpe += s.creditsPending;
    const r = rec.get(id);
    if (r === undefined) { v('balance-mismatch', `account ${id} is not in the log`, { account: id }); continue; }
    if (r.dp !== s.debitsPosted || r.cp !== s.creditsPosted || r.dpe !== s.debitsPending || r.cpe !== s.creditsPending) {
      v('balance-mismatch', `account ${id} holds ${s.debitsPosted}/${s.creditsPosted}/${s.debitsPending}/${s.creditsPending} (dp/cp/dpe/cpe), its transfers sum to ${r.dp}/${r.cp}/${r.dpe}/${r.cpe}`, { account: id });
    }
    if (r.frozen !== s.frozen) v('balance-mismatch', `account ${id} frozen=${s.frozen}, the log says ${r.frozen}`, { account: id });
  }
  for (const id of rec.keys()) if (!state.accounts.has(id)) v('balance-mismatch', `account ${id} is in the log but not in the state`, { account: id });
  if (sdp !== scp) v('unbalanced', `posted debits ${sdp} != posted credits ${scp}`);
  if (sdpe !== scpe) v('unbalanced', `pending debits ${sdpe} != pending credits ${scpe}`);

  let open = 0;
  for (const [id, p] of pendings) {
    if (p.resolvedBy !== undefined) continue;
    open++;
    if (!state.open.has(id)) v('index-mismatch', `pending ${id} is unresolved in the log but not open in the state`, { transfer: id });
  }
  if (open !== state.open.size) v('index-mismatch', `${state.open.size} open pendings in the state, ${open} in the log`);
  if (state.byId.size !== ts.length) v('index-mismatch', `${state.byId.size} transfer ids indexed, ${ts.length} transfers in the log`);
  return out;
}
