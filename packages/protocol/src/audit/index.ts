/**
 * The audit log's pure core: RFC 6962 Merkle trees, C2SP checkpoints in
 * signed notes, witness cosignatures, the entry format, and the checks an
 * offline auditor runs. No I/O. See docs/audit-log.md.
 *
 * Re-exported flat from the package root, so every name says what it is
 * about (merkle*, *Checkpoint, *Note, *Cosignature, audit*).
 */
export {
  MERKLE_HASH_BYTES,
  MerkleLog,
  consistencyProof,
  consistencyProofRanges,
  inclusionProof,
  inclusionProofRanges,
  merkleEmptyRoot,
  merkleLeafHash,
  merkleNodeHash,
  merkleRoot,
  verifyConsistencyProof,
  verifyInclusionProof,
} from './merkle.js';
export type { LeafSource, SubtreeRange } from './merkle.js';
export { formatCheckpoint, parseCheckpoint } from './checkpoint.js';
export type { Checkpoint } from './checkpoint.js';
export {
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  addNoteSignatures,
  ed25519NoteVerifier,
  formatSignatureLine,
  noteKeyId,
  openNote,
  parseSignatureLine,
  signNote,
} from './note.js';
export type { NoteSignature, NoteSigner, NoteVerifier, OpenedNote } from './note.js';
export { cosign, cosignatureMessage, cosignatureNoteVerifier, cosignatureTimestamp, verifyCosignature } from './cosignature.js';
export { parseVerifierKey, verifierKey } from './keys.js';
export { AUDIT_EVENT_TYPES, AuditEntrySchema, auditEntryBytes, auditEntryLeafHash } from './entries.js';
export type { AuditEntry } from './entries.js';
export { openCheckpoint, verifyAuditEntries, verifyEntryInclusion, verifyLogGrowth } from './verify.js';
export type { AuditCheck, OpenCheckpointOptions, OpenedCheckpoint, TreeHead } from './verify.js';
