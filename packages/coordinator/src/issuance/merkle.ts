/**
 * A commitment to an hour's table: the RFC 6962 Merkle root (the audit log's
 * own helpers, from @idlemesh/protocol) over its rows, each leaf the
 * canonical JSON of one row as published. Rows are ordered by node id so the
 * root does not depend on the order a store returned them in; an inclusion
 * proof then shows a node its own row without publishing everyone's.
 */
import { canonicalJson, merkleLeafHash, merkleRoot, toHex, utf8 } from '@idlemesh/protocol';
import type { HourRow, HourTable } from './formula.js';
import { hourRowJson } from './json.js';

/** The leaf hash of one row: SHA-256(0x00 ‖ canonicalJson(row)). */
export function hourRowLeaf(row: HourRow): Uint8Array {
  return merkleLeafHash(utf8(canonicalJson(hourRowJson(row))));
}

/** The rows in leaf order: by node id (UTF-16 code units; byte order for ASCII ids). */
export function hourRowsInLeafOrder(table: HourTable): HourRow[] {
  return [...table.rows].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

export function hourRowsRoot(table: HourTable): Uint8Array {
  return merkleRoot(hourRowsInLeafOrder(table).map(hourRowLeaf));
}

export function hourRowsRootHex(table: HourTable): string {
  return toHex(hourRowsRoot(table));
}
