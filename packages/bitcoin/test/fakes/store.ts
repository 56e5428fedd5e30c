// An in-memory DepositStore that also keeps the ledger side: the actions it
// was handed, in order, so tests can count credits and reversals.
import type { DepositAction, DepositRecord } from '../../src/deposits/reconcile.js';
import type { DepositStore } from '../../src/deposits/watcher.js';

export class MemoryDepositStore implements DepositStore {
  readonly records = new Map<string, DepositRecord>();
  readonly actions: DepositAction[] = [];
  saves = 0;

  async load(): Promise<DepositRecord[]> {
    return [...this.records.values()].map((r) => ({ ...r }));
  }

  async save(records: DepositRecord[], actions: DepositAction[]): Promise<void> {
    this.saves++;
    for (const r of records) this.records.set(r.outpoint, { ...r });
    this.actions.push(...actions);
  }

  /** credits − reversals for the outpoint. */
  net(outpoint: string): number {
    return this.actions.filter((a) => a.outpoint === outpoint).reduce((n, a) => n + (a.type === 'credit' ? 1 : -1), 0);
  }

  count(type: DepositAction['type'], outpoint?: string): number {
    return this.actions.filter((a) => a.type === type && (outpoint === undefined || a.outpoint === outpoint)).length;
  }
}
