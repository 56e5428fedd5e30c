export { resolveCoordinatorOptions, CoordinatorOptionsSchema } from './config.js';
export type { CoordinatorOptions, CoordinatorOptionsInput } from './config.js';

export interface RunningCoordinator {
  /** Base URL, e.g. http://127.0.0.1:7070 */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

// Placeholder until the server lands; the signature is the contract.
export async function startCoordinator(_opts: import('./config.js').CoordinatorOptions): Promise<RunningCoordinator> {
  throw new Error('not implemented yet');
}
