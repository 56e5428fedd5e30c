export { resolveCoordinatorOptions, CoordinatorOptionsSchema } from './config.js';
export type { CoordinatorOptions, CoordinatorOptionsInput } from './config.js';
export { startCoordinator } from './server/index.js';
export type { RunningCoordinator } from './server/index.js';
export { schedule, eligible } from './scheduler/index.js';
export type { SchedAgent, SchedJob, Assignment } from './scheduler/index.js';
export { openStore, SqliteStore } from './store/index.js';
export type { Store } from './store/index.js';
// Pure cores of settlement (persistence and the market come with the settlement issue).
export * as ledger from './ledger/index.js';
export * as pricing from './pricing/index.js';
