/**
 * The audit entries the coordinator appends to its log, and their leaf
 * bytes: UTF-8 of canonical JSON (sorted keys, no whitespace), so anyone
 * holding an entry can recompute its leaf hash.
 */

import { z } from 'zod';
import { canonicalJson, utf8 } from '../crypto.js';
import { ImError } from '../errors.js';
import { merkleLeafHash } from './merkle.js';

/** The event types the coordinator records today. Others may be added; verifiers must not reject unknown ones. */
export const AUDIT_EVENT_TYPES = [
  'auth.signin',
  'key.created',
  'key.revoked',
  'policy.changed',
  'approval.decided',
  'job.crossed',
  'node.admitted',
  'stake.slashed',
  'payout.batch',
  'ledger.transfer',
  'epoch',
] as const;

export interface AuditEntry {
  /** Position in the log, from 0; equals the Merkle leaf index. */
  readonly seq: number;
  /** When the coordinator recorded it, in Unix milliseconds. */
  readonly time: number;
  /** What happened: a dotted lowercase name such as `key.revoked` (see AUDIT_EVENT_TYPES). */
  readonly type: string;
  /** Who did it (an account, a node id, `system`). */
  readonly actor?: string | undefined;
  readonly org?: string | undefined;
  /** What it was done to (a key id, a job id, a batch id). */
  readonly subject?: string | undefined;
  /** Event details: plain JSON only. (Optional fields may be undefined: canonical JSON drops them.) */
  readonly data?: Readonly<Record<string, unknown>> | undefined;
}

/** Wire schema of an entry (strict: unknown fields would not be covered by the hash, so they are refused). */
export const AuditEntrySchema = z.strictObject({
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  time: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  type: z.string().max(64).regex(/^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*$/, 'a dotted lowercase event type'),
  actor: z.string().max(512).optional(),
  org: z.string().max(512).optional(),
  subject: z.string().max(512).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});

function checkPlainJson(value: unknown, path: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ImError('IM_VALIDATION', `audit entry ${path} is not a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkPlainJson(v, `${path}[${i}]`));
    return;
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) throw new ImError('IM_VALIDATION', `audit entry ${path} is not a plain object`);
    for (const [k, v] of Object.entries(value)) if (v !== undefined) checkPlainJson(v, `${path}.${k}`);
    return;
  }
  throw new ImError('IM_VALIDATION', `audit entry ${path} is a ${typeof value}, not JSON`);
}

/** The leaf bytes of an entry: UTF-8 canonical JSON. Throws IM_VALIDATION for an entry that is not well formed. */
export function auditEntryBytes(entry: AuditEntry): Uint8Array {
  const parsed = AuditEntrySchema.safeParse(entry);
  if (!parsed.success) {
    throw new ImError('IM_VALIDATION', `invalid audit entry: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(entry)'}: ${i.message}`).join('; ')}`, {
      details: parsed.error.issues,
    });
  }
  if (entry.data !== undefined) checkPlainJson(entry.data, 'data');
  return utf8(canonicalJson(entry));
}

/** merkleLeafHash(auditEntryBytes(entry)): what `MerkleLog.append` takes. */
export function auditEntryLeafHash(entry: AuditEntry): Uint8Array {
  return merkleLeafHash(auditEntryBytes(entry));
}
