export * from './types.js';
export * from './rng.js';
export * from './quorum.js';
export * from './referee.js';
export * from './trust.js';
export * from './policy.js';
