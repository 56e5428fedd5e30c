/**
 * Result receipts: what an agent attests to for every result, and what the
 * coordinator attests it accepted.
 *
 * An agent does not sign each result on its own: it hashes one receipt per
 * result into an RFC 6962 Merkle tree and signs the tree head in the results
 * message (one signature per batch, however many results). The coordinator
 * recomputes every leaf from the results it received, so a root that does not
 * match the results is refused, and countersigns the head of what it
 * accepted. A stored receipt document carries its leaf, its inclusion proof,
 * both signatures and both public keys: anyone can check it offline.
 */
import { z } from 'zod';
import { sha256 } from './sha256.js';
import { merkleLeafHash, merkleNodeHash, merkleRoot, verifyInclusionProof } from './audit/merkle.js';
import { base64ToBytes, canonicalJson, fromHex, sign, toHex, utf8, verify } from './crypto.js';
import type { CryptoKey, NodeKeyPair } from './crypto.js';
import { ImError } from './errors.js';
import { Hash, Millis, NodeId, TaskId } from './schemas.js';
import type { SignedMessage, TaskOutcome } from './schemas.js';
import { signMessage, signingBytes } from './signing.js';

export const RECEIPT_VERSION = 1;

/** One result, as the agent attests it. Outputs are named by hash only. */
export const Receipt = z.strictObject({
  v: z.literal(RECEIPT_VERSION),
  node: NodeId,
  task: TaskId,
  attempt: z.number().int().min(1),
  ok: z.boolean(),
  inputHash: Hash.describe('sha256 of the task input bytes, hex'),
  outputHash: Hash.nullable().describe('sha256 of the output bytes, hex; null for a failure'),
  error: z.string().max(64).nullable().describe('the error code of a failure'),
  fuel: z.number().int().nonnegative(),
  runtime: z.string().max(64),
  runtimeVersion: z.string().max(64),
  startedAt: Millis,
  endedAt: Millis,
});
export type Receipt = z.infer<typeof Receipt>;
const RECEIPT_FIELDS = Object.keys(Receipt.shape).length;

const HexHash = z.string().regex(/^[0-9a-f]{64}$/);
const HexSig = z.string().regex(/^[0-9a-f]{128}$/);

/** A receipt with everything needed to check it offline. */
export const ReceiptDocument = z.strictObject({
  format: z.literal('idlemesh-receipt/1'),
  receipt: Receipt,
  proof: z.strictObject({ index: z.number().int().min(0), size: z.number().int().min(1), path: z.array(HexHash).max(64) }),
  agent: z.strictObject({ nodeId: NodeId, root: HexHash, nonce: z.string().regex(/^[0-9a-f]{32}$/), ts: Millis, sig: HexSig }),
  coordinator: z.strictObject({ publicKey: HexHash, acceptedAt: Millis, sig: HexSig }),
});
export type ReceiptDocument = z.infer<typeof ReceiptDocument>;

/**
 * One accepted results batch, as a coordinator keeps it: every receipt of the
 * batch with the agent's signed head and the countersignature, once. Each
 * result's own receipt document (leaf, inclusion path, both signatures) is
 * assembled from it when asked for, so a batch of n results stores its
 * signatures once instead of n times.
 */
export interface ReceiptBatch {
  format: 'idlemesh-receipt-batch/1';
  receipts: Receipt[];
  agent: ReceiptDocument['agent'];
  coordinator: ReceiptDocument['coordinator'];
}

/** The receipt document of the `index`th result of a stored batch. */
export function receiptDocument(batch: ReceiptBatch, index: number): ReceiptDocument {
  const receipt = batch.receipts[index];
  if (!receipt) throw new ImError('IM_NOT_FOUND', `the receipt batch has no result ${index}`);
  const { paths } = receiptTree(batch.receipts.map(receiptLeafHash));
  return {
    format: 'idlemesh-receipt/1',
    receipt,
    proof: { index, size: batch.receipts.length, path: (paths[index] ?? []).map(toHex) },
    agent: batch.agent,
    coordinator: batch.coordinator,
  };
}

/** The signed body of a results message: the head of its receipt tree. */
export interface ReceiptsHead {
  root: string;
  n: number;
}

export function sha256HexSync(data: Uint8Array): string {
  return toHex(sha256(data));
}

/** The receipt of one result, computed the same way by the agent that signs it and the coordinator that checks it. */
export function receiptOf(nodeId: string, o: TaskOutcome): Receipt {
  return {
    v: RECEIPT_VERSION,
    node: nodeId,
    task: o.taskId,
    attempt: o.attempt,
    ok: o.ok,
    inputHash: o.inputHash,
    outputHash: o.ok ? sha256HexSync(base64ToBytes(o.output ?? '')) : null,
    error: o.ok ? null : (o.error?.code ?? 'IM_AGENT_ERROR'),
    fuel: o.fuel,
    runtime: o.runtime,
    runtimeVersion: o.runtimeVersion,
    startedAt: o.startedAt,
    endedAt: o.endedAt,
  };
}

type ResultsMessage = Extract<SignedMessage, { type: 'results' }>;

/** The agent's side: one signed results message whose body is the head of its receipt tree. */
export async function signResults(key: NodeKeyPair, results: TaskOutcome[], now: number): Promise<ResultsMessage> {
  const root = merkleRoot(results.map((o) => receiptLeafHash(receiptOf(key.publicKeyHex, o))));
  const head = await signMessage(key, 'results', { root: toHex(root), n: results.length }, now);
  return { ...head, results };
}

/**
 * The coordinator's side, after the signature check: every receipt, and its
 * inclusion path. A head that is not the tree of these results is refused
 * (IM_RECEIPT_MISMATCH): the agent signed something other than what it sent.
 */
export function openResults(msg: ResultsMessage): { receipts: Receipt[] } {
  if (msg.body.n !== msg.results.length) throw new ImError('IM_RECEIPT_MISMATCH', `the signed head counts ${msg.body.n} receipts, the message carries ${msg.results.length}`);
  const receipts = msg.results.map((o) => receiptOf(msg.nodeId, o));
  if (toHex(merkleRoot(receipts.map(receiptLeafHash))) !== msg.body.root) throw new ImError('IM_RECEIPT_MISMATCH', 'the signed tree head is not the tree of the results sent');
  return { receipts };
}

export function receiptLeafHash(r: Receipt): Uint8Array {
  return merkleLeafHash(utf8(receiptJson(r)));
}

/**
 * `canonicalJson(r)` for a receipt, written out key by key in sorted order:
 * every result is hashed on both sides of the wire, and the generic sort is
 * most of that cost. A test holds the two equal.
 */
export function receiptJson(r: Receipt): string {
  const j = JSON.stringify;
  // Anything but the thirteen fields, all present, takes the generic path (same bytes, by definition).
  let n = 0;
  for (const k in r) if ((r as Record<string, unknown>)[k] !== undefined) n++;
  if (n !== RECEIPT_FIELDS || Object.keys(r).length !== RECEIPT_FIELDS) return canonicalJson(r);
  if (!Number.isFinite(r.attempt) || !Number.isFinite(r.fuel) || !Number.isFinite(r.startedAt) || !Number.isFinite(r.endedAt)) throw new TypeError('cannot sign a non-finite number');
  return `{"attempt":${j(r.attempt)},"endedAt":${j(r.endedAt)},"error":${j(r.error)},"fuel":${j(r.fuel)},"inputHash":${j(r.inputHash)},"node":${j(r.node)},"ok":${j(r.ok)},"outputHash":${j(r.outputHash)},"runtime":${j(r.runtime)},"runtimeVersion":${j(r.runtimeVersion)},"startedAt":${j(r.startedAt)},"task":${j(r.task)},"v":${j(r.v)}}`;
}

/** The tree head and every leaf's inclusion path, in O(n log n) (RFC 6962 PATH, deepest first). */
export function receiptTree(leaves: readonly Uint8Array[]): { root: Uint8Array; paths: Uint8Array[][] } {
  if (leaves.length === 0) throw new Error('a receipt tree needs at least one leaf');
  const walk = (lo: number, hi: number): { root: Uint8Array; paths: Uint8Array[][] } => {
    const n = hi - lo;
    if (n === 1) return { root: leaves[lo] as Uint8Array, paths: [[]] };
    let k = 1;
    while (k * 2 < n) k *= 2;
    const l = walk(lo, lo + k);
    const r = walk(lo + k, hi);
    for (const p of l.paths) p.push(r.root);
    for (const p of r.paths) p.push(l.root);
    return { root: merkleNodeHash(l.root, r.root), paths: [...l.paths, ...r.paths] };
  };
  return walk(0, leaves.length);
}

/** What a coordinator signs when it accepts results: the node, the agent's tree head, and when. */
export function countersignBytes(nodeId: string, root: string, n: number, acceptedAt: number): Uint8Array {
  return utf8(canonicalJson({ type: 'idlemesh-receipt-accept/1', node: nodeId, root, n, acceptedAt }));
}

export async function countersign(key: CryptoKey, nodeId: string, root: string, n: number, acceptedAt: number): Promise<string> {
  return sign(key, countersignBytes(nodeId, root, n, acceptedAt));
}

function check(name: string, ok: boolean, failure: string): { name: string; ok: boolean; detail?: string } {
  return ok ? { name, ok } : { name, ok, detail: failure };
}

export interface ReceiptCheck {
  ok: boolean;
  /** Every check, in order, with what failed. */
  checks: Array<{ name: string; ok: boolean; detail?: string }>;
}

/**
 * Checks a receipt document offline: its shape, the leaf in the agent's tree,
 * the agent's signature over the tree head, and the coordinator's
 * countersignature (against `coordinatorKey` too, when the caller pins one).
 */
export async function verifyReceiptDocument(doc: unknown, opts: { coordinatorKey?: string } = {}): Promise<ReceiptCheck> {
  const checks: ReceiptCheck['checks'] = [];
  const parsed = ReceiptDocument.safeParse(doc);
  if (!parsed.success) {
    checks.push({ name: 'format', ok: false, detail: parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`).join('; ') });
    return { ok: false, checks };
  }
  const d = parsed.data;
  checks.push({ name: 'format', ok: true });
  checks.push(check('signer', d.receipt.node === d.agent.nodeId, 'the receipt names another node than the one that signed it'));
  const root = fromHex(d.agent.root);
  const included = verifyInclusionProof(receiptLeafHash(d.receipt), d.proof.index, d.proof.size, d.proof.path.map(fromHex), root);
  checks.push(check('inclusion', included, 'the receipt is not the leaf the agent signed (changed, or a wrong proof)'));
  const head: ReceiptsHead = { root: d.agent.root, n: d.proof.size };
  const agentOk = await verify(d.agent.nodeId, d.agent.sig, signingBytes('results', head, d.agent.nodeId, d.agent.nonce, d.agent.ts));
  checks.push(check('agent signature', agentOk, 'the node key did not sign this tree head'));
  const coordOk = await verify(d.coordinator.publicKey, d.coordinator.sig, countersignBytes(d.agent.nodeId, d.agent.root, d.proof.size, d.coordinator.acceptedAt));
  checks.push(check('coordinator countersignature', coordOk, 'the coordinator key did not countersign this tree head'));
  if (opts.coordinatorKey !== undefined) {
    const pinned = opts.coordinatorKey.toLowerCase() === d.coordinator.publicKey;
    checks.push(check('coordinator key', pinned, `countersigned by ${d.coordinator.publicKey}, not the pinned ${opts.coordinatorKey}`));
  }
  return { ok: checks.every((c) => c.ok), checks };
}
