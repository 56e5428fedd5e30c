import type { CoordinatorOptions, RunningCoordinator } from '@idlemesh/coordinator';
import { ImError } from '@idlemesh/protocol';

/** startCoordinator, with the commonest failure (the port is taken) said in words a user can act on. */
export async function startCoordinatorCli(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const { startCoordinator } = await import('@idlemesh/coordinator');
  try {
    return await startCoordinator(opts);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EADDRINUSE') {
      throw new ImError('IM_CONFIG_INVALID', `${opts.host}:${opts.port} is already in use (another coordinator?); choose another with --port, or --port 0 for any free port`, { cause: err });
    }
    if (code === 'EACCES') {
      throw new ImError('IM_CONFIG_INVALID', `not allowed to listen on ${opts.host}:${opts.port}; use a port above 1023`, { cause: err });
    }
    throw err;
  }
}
