/**
 * How a result's receipt is kept, the same on both stores: a task row names
 * its receipt in a stored batch (`@<batch id>#<index>`), and the batch holds
 * every receipt of the results message with both signatures once. Rows
 * written before batches were kept hold a whole receipt document (JSON).
 */
import { receiptDocument } from '@idlemesh/protocol';
import type { ReceiptBatch } from '@idlemesh/protocol';
import type { Outcome, ReceiptBatchRow } from './types.js';

/** The task row's receipt column for an outcome of `batch`. */
export function receiptRef(batch: ReceiptBatchRow | undefined, o: Outcome): string | null {
  return batch && o.receiptIndex !== undefined ? `@${batch.id}#${o.receiptIndex}` : null;
}

/** The receipt column read back: a reference into a batch, or a whole document (`doc`). */
export function parseReceiptColumn(column: string): { batch: string; index: number } | { doc: string } {
  if (!column.startsWith('@')) return { doc: column };
  const hash = column.lastIndexOf('#');
  return { batch: column.slice(1, hash), index: Number(column.slice(hash + 1)) };
}

/** The receipt document (JSON text) of result `index` of a stored batch. */
export function receiptFromBatch(batchDoc: string, index: number): string {
  return JSON.stringify(receiptDocument(JSON.parse(batchDoc) as ReceiptBatch, index));
}
