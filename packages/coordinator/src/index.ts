export { resolveCoordinatorOptions, CoordinatorOptionsSchema } from './config.js';
export type { CoordinatorOptions, CoordinatorOptionsInput } from './config.js';
export { startCoordinator } from './server/index.js';
export type { RunningCoordinator } from './server/index.js';
export { schedule, eligible } from './scheduler/index.js';
export type { SchedAgent, SchedJob, Assignment } from './scheduler/index.js';
export { openStore, SqliteStore } from './store/index.js';
export type { Store } from './store/index.js';
// Pure cores: the ledger, pricing and organisation policy.
export * as ledger from './ledger/index.js';
export * as pricing from './pricing/index.js';
export * as policy from './policy/index.js';
export * as verify from './verify/index.js';
export * as issuance from './issuance/index.js';
export { epochSigningBytes, ISSUANCE_PARAMS } from './issuance-service.js';
export type { EpochRecord, HourDoc } from './issuance-service.js';
export * as sim from './sim/index.js';
