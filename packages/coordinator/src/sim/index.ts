export { simulate } from './verify-sim.js';
export type { SimOptions, SimReport } from './verify-sim.js';
