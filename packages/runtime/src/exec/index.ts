export { runTask } from './run.js';
export type { RunResult, JobLimits } from './types.js';
