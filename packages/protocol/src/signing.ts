import { canonicalJson, randomHex, sign, utf8, verify } from './crypto.js';
import type { NodeKeyPair } from './crypto.js';
import { ImError } from './errors.js';
import { MAX_CLOCK_SKEW_MS, PROTOCOL_VERSION } from './schemas.js';
import type { SignedMessage, SignedType } from './schemas.js';

/** The exact bytes a signed agent message commits to. */
export function signingBytes(type: SignedType, body: unknown, nodeId: string, nonce: string, ts: number): Uint8Array {
  return utf8(canonicalJson({ v: PROTOCOL_VERSION, type, body, nodeId, nonce, ts }));
}

export async function signMessage<T extends SignedType>(
  key: NodeKeyPair,
  type: T,
  body: Extract<SignedMessage, { type: T }>['body'],
  now: number,
): Promise<Extract<SignedMessage, { type: T }>> {
  const nonce = randomHex(16);
  const sig = await sign(key.privateKey, signingBytes(type, body, key.publicKeyHex, nonce, now));
  return { type, body, nodeId: key.publicKeyHex, nonce, ts: now, sig } as Extract<SignedMessage, { type: T }>;
}

/**
 * Checks signature and freshness. Replay (a nonce seen before) is the
 * caller's check, since only it knows which nonces it has seen.
 */
export async function verifyMessage(msg: SignedMessage, now: number, expectedNodeId?: string): Promise<void> {
  if (expectedNodeId !== undefined && msg.nodeId !== expectedNodeId) {
    throw new ImError('IM_BAD_SIGNATURE', 'message is signed by a different node than the connection');
  }
  if (Math.abs(now - msg.ts) > MAX_CLOCK_SKEW_MS) {
    throw new ImError('IM_STALE_TIMESTAMP', undefined, { details: { skewMs: now - msg.ts, maxSkewMs: MAX_CLOCK_SKEW_MS } });
  }
  const ok = await verify(msg.nodeId, msg.sig, signingBytes(msg.type, msg.body, msg.nodeId, msg.nonce, msg.ts));
  if (!ok) throw new ImError('IM_BAD_SIGNATURE');
}

/** What a coordinator signs when it publishes a payout batch: the exact payouts the treasury may sign for. */
export interface PayoutApproval {
  batch: string;
  txid: string;
  approved: Array<{ id: string; address: string; valueSats: string }>;
}

export function payoutApprovalBytes(a: PayoutApproval): Uint8Array {
  return utf8(canonicalJson({ type: 'idlemesh-payout-approval/1', batch: a.batch, txid: a.txid, approved: a.approved }));
}

/** Checks a published approval against the coordinator key the signer pinned. */
export async function verifyPayoutApproval(a: PayoutApproval, publicKeyHex: string, sig: string): Promise<boolean> {
  return verify(publicKeyHex, sig, payoutApprovalBytes(a));
}

/**
 * A request an operator signs with its node key (stakes, withdrawals from
 * `operator:<node id>`): the same bytes as agent messages, with the purpose
 * as the type, so a signature for one purpose never passes for another.
 */
export interface SignedRequest<B> {
  body: B;
  nodeId: string;
  nonce: string;
  ts: number;
  sig: string;
}

export async function signRequest<B>(key: NodeKeyPair, purpose: string, body: B, now: number): Promise<SignedRequest<B>> {
  const nonce = randomHex(16);
  const bytes = utf8(canonicalJson({ v: PROTOCOL_VERSION, type: `request:${purpose}`, body, nodeId: key.publicKeyHex, nonce, ts: now }));
  return { body, nodeId: key.publicKeyHex, nonce, ts: now, sig: await sign(key.privateKey, bytes) };
}

/** Signature and freshness of a signed request; replay (the nonce) is the caller's check. */
export async function verifyRequest(req: SignedRequest<unknown>, purpose: string, now: number): Promise<void> {
  if (Math.abs(now - req.ts) > MAX_CLOCK_SKEW_MS) {
    throw new ImError('IM_STALE_TIMESTAMP', undefined, { details: { skewMs: now - req.ts, maxSkewMs: MAX_CLOCK_SKEW_MS } });
  }
  const bytes = utf8(canonicalJson({ v: PROTOCOL_VERSION, type: `request:${purpose}`, body: req.body, nodeId: req.nodeId, nonce: req.nonce, ts: req.ts }));
  if (!(await verify(req.nodeId, req.sig, bytes))) throw new ImError('IM_BAD_SIGNATURE');
}
