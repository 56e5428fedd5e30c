export { DEFAULT_MIN_CONF, outpointOf, reconcileDeposits, statusesNeeded, txidOf } from './reconcile.js';
export type {
  DepositAction, DepositRecord, DepositState, ObservedOutput, ObservedStatus, Outpoint, ReconcileInput, ReconcileResult,
} from './reconcile.js';
export { DepositWatcher } from './watcher.js';
export type { DepositStore, DepositWatcherOptions, PollResult } from './watcher.js';
