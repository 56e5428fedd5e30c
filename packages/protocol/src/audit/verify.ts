/**
 * Offline auditor checks, as `idlemesh audit verify` runs them: open a
 * signed checkpoint, check that the log only grew since the last one seen,
 * and recompute the root from the entries themselves.
 */

import { ImError } from '../errors.js';
import { parseCheckpoint } from './checkpoint.js';
import type { Checkpoint } from './checkpoint.js';
import { cosignatureTimestamp } from './cosignature.js';
import { bytesEqual } from './encoding.js';
import { auditEntryLeafHash } from './entries.js';
import type { AuditEntry } from './entries.js';
import { MerkleLog, verifyConsistencyProof, verifyInclusionProof } from './merkle.js';
import { SIG_TYPE_COSIGNATURE_V1, hex8, openNote } from './note.js';
import type { NoteSignature, NoteVerifier } from './note.js';

/** A tree head: the size and root of a checkpoint (a parsed `Checkpoint` fits). */
export interface TreeHead {
  readonly size: number;
  readonly rootHash: Uint8Array;
}

/** The outcome of an audit check; `reason` says what an operator should look at. */
export type AuditCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

const OK: AuditCheck = { ok: true };
const fail = (reason: string): AuditCheck => ({ ok: false, reason });

export interface OpenCheckpointOptions {
  /** The log's own key; its signature is required. */
  readonly log: NoteVerifier;
  /** Witnesses whose cosignatures count towards `quorum`. */
  readonly witnesses?: readonly NoteVerifier[];
  /** How many distinct witnesses must have cosigned (default 0). */
  readonly quorum?: number;
  /** Expected origin line; refused if different. */
  readonly origin?: string;
}

export interface OpenedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** The signed note text (the checkpoint body). */
  readonly body: string;
  readonly signatures: readonly NoteSignature[];
  /** Witnesses whose cosignature verified, with the time they signed (cosignature/v1 keys). */
  readonly witnessed: readonly { readonly name: string; readonly keyId: number; readonly timeSeconds?: number }[];
}

/**
 * Open a signed checkpoint note: the log's signature must verify, any failed
 * signature by a known key refuses the whole note (as c2sp.org/signed-note
 * advises), and at least `quorum` witnesses must have cosigned. Throws
 * IM_BAD_SIGNATURE or IM_VALIDATION.
 */
export function openCheckpoint(note: string | Uint8Array, opts: OpenCheckpointOptions): OpenedCheckpoint {
  const witnesses = opts.witnesses ?? [];
  const opened = openNote(note, [opts.log, ...witnesses]);
  const bad = opened.signatures.find((s) => s.keyKnown && !s.verified);
  if (bad) throw new ImError('IM_BAD_SIGNATURE', `checkpoint signature by ${bad.name}+${hex8(bad.keyId)} does not verify`);
  const byLog = opened.signatures.some((s) => s.verified && s.name === opts.log.name && s.keyId === opts.log.keyId);
  if (!byLog) throw new ImError('IM_BAD_SIGNATURE', `checkpoint is not signed by the log key ${opts.log.name}+${hex8(opts.log.keyId)}`);
  const checkpoint = parseCheckpoint(opened.body);
  if (opts.origin !== undefined && checkpoint.origin !== opts.origin) {
    throw new ImError('IM_VALIDATION', `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(opts.origin)}`);
  }
  const witnessed: { name: string; keyId: number; timeSeconds?: number }[] = [];
  for (const w of witnesses) {
    const sig = opened.signatures.find((s) => s.verified && s.name === w.name && s.keyId === w.keyId);
    if (!sig || witnessed.some((x) => x.name === w.name && x.keyId === w.keyId)) continue;
    const t = w.type === SIG_TYPE_COSIGNATURE_V1 ? cosignatureTimestamp(sig.signature) : undefined;
    witnessed.push(t === undefined ? { name: w.name, keyId: w.keyId } : { name: w.name, keyId: w.keyId, timeSeconds: t });
  }
  const quorum = opts.quorum ?? 0;
  if (witnessed.length < quorum) {
    throw new ImError('IM_BAD_SIGNATURE', `checkpoint has ${witnessed.length} witness cosignatures; ${quorum} required`);
  }
  return { checkpoint, body: opened.body, signatures: opened.signatures, witnessed };
}

/**
 * Did the log only append between two tree heads? Same size must mean same
 * root (anything else is a fork); a smaller size is a rollback.
 */
export function verifyLogGrowth(prev: TreeHead, next: TreeHead, proof: readonly Uint8Array[]): AuditCheck {
  if (next.size < prev.size) return fail(`the log shrank from ${prev.size} to ${next.size} entries`);
  if (next.size === prev.size && !bytesEqual(prev.rootHash, next.rootHash)) {
    return fail(`two different roots for the same size ${prev.size}: the log forked`);
  }
  if (!verifyConsistencyProof(prev.size, next.size, prev.rootHash, next.rootHash, proof)) {
    return fail(`the consistency proof from size ${prev.size} to ${next.size} does not verify: history was rewritten or the proof is wrong`);
  }
  return OK;
}

/**
 * Recompute the root over entries 0..size-1 and compare with the
 * checkpoint. Entries must be in order with seq equal to their position;
 * entries past the checkpoint's size are ignored.
 */
export function verifyAuditEntries(entries: readonly AuditEntry[], checkpoint: TreeHead): AuditCheck {
  if (entries.length < checkpoint.size) return fail(`the checkpoint covers ${checkpoint.size} entries, only ${entries.length} given`);
  const log = new MerkleLog();
  for (let i = 0; i < checkpoint.size; i++) {
    const e = entries[i] as AuditEntry;
    if (e.seq !== i) return fail(`entry at position ${i} has seq ${e.seq}: entries are missing, duplicated or out of order`);
    try {
      log.append(auditEntryLeafHash(e));
    } catch (err) {
      return fail(`entry ${i} is malformed: ${(err as Error).message}`);
    }
  }
  if (!bytesEqual(log.root(), checkpoint.rootHash)) {
    return fail(`the entries hash to a different root than the checkpoint at size ${checkpoint.size}: an entry was altered`);
  }
  return OK;
}

/** Is this entry, at position `entry.seq`, in the tree the checkpoint commits to? */
export function verifyEntryInclusion(entry: AuditEntry, proof: readonly Uint8Array[], checkpoint: TreeHead): boolean {
  let leaf: Uint8Array;
  try {
    leaf = auditEntryLeafHash(entry);
  } catch {
    return false;
  }
  return verifyInclusionProof(leaf, entry.seq, checkpoint.size, proof, checkpoint.rootHash);
}
