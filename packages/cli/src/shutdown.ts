import { asImError, note } from './output.js';

/**
 * Runs `stop` on the first SIGINT or SIGTERM, then exits 0 (1 if stop fails).
 * A second signal exits at once, for when a graceful stop hangs.
 */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      note(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        const e = asImError(err);
        note(`error ${e.code}: while stopping: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
