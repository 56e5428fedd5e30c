/**
 * The audit log's rows, shared by both stores: an entry is its canonical JSON
 * and its Merkle leaf hash (hex); the head keeps the size and the right
 * frontier (hex list), so appending never rereads old leaves.
 */
import { MerkleLog, auditEntryLeafHash } from '@idlemesh/protocol';
import type { AuditEntry } from '@idlemesh/protocol';
import type { Row } from './rows.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

export function restoreLog(r: Row): MerkleLog {
  return MerkleLog.restore(Number(r.size), (JSON.parse(String(r.frontier)) as string[]).map(unhex));
}

/** Assigns seqs from the head and computes leaves; returns the rows to insert and the new head. */
export function appendRows(head: Row, entries: ReadonlyArray<Omit<AuditEntry, 'seq'>>): { rows: Array<[number, string, string]>; size: number; frontier: string; root: Uint8Array } {
  const log = restoreLog(head);
  const rows: Array<[number, string, string]> = [];
  for (const e of entries) {
    const entry: AuditEntry = { ...e, seq: log.size };
    const leaf = auditEntryLeafHash(entry); // refuses non-JSON data before anything is written
    rows.push([entry.seq, JSON.stringify(entry), hex(leaf)]);
    log.append(leaf);
  }
  return { rows, size: log.size, frontier: JSON.stringify(log.frontier().map(hex)), root: log.root() };
}

export function toAuditEntry(r: Row): AuditEntry {
  return JSON.parse(String(r.entry)) as AuditEntry;
}

export function toLeaf(r: Row): Uint8Array {
  return unhex(String(r.leaf_hash));
}
