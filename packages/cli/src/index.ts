/** idlemesh CLI, importable for tests and embedding: `run(argv)` is what the bin does. */
export { buildProgram, run, VERSION } from './program.js';
export { ProgressBar, ProgressLines, renderBar } from './progress.js';
export type { Progress, ProgressState, ProgressStream } from './progress.js';
export { resultLine, readableResult } from './results.js';
export type { ResultLine } from './results.js';
