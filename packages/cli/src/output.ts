import { ImError, type WireError } from '@idlemesh/protocol';

/** Writes to stdout, waiting when the pipe is full, so large outputs are never lost or buffered whole. */
export async function out(text: string): Promise<void> {
  if (process.stdout.write(text)) return;
  await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}

export async function outJson(value: unknown): Promise<void> {
  await out(`${JSON.stringify(value)}\n`);
}

/** Human-facing messages (notes, progress, errors) go to stderr so stdout stays machine-readable. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Turns anything thrown into an ImError: unknown errors are IM_INTERNAL. */
export function asImError(err: unknown): ImError {
  if (err instanceof ImError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ImError('IM_INTERNAL', message, { cause: err });
}

/** Prints `error CODE: message` to stderr (and `{"error":…}` to stdout with --json); returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const im = asImError(err);
  let line = `error ${im.code}: ${im.message}`;
  if (process.env.IDLEMESH_DEBUG && err instanceof Error && err.stack) line += `\n${err.stack}`;
  if (im.code === 'IM_CONNECTION_FAILED') line += '\nhint: is a coordinator running there? Start a local one with `idlemesh up`, or pass --coordinator <url>';
  process.stderr.write(`${line}\n`);
  if (json) {
    const wire: WireError = im.toWire();
    process.stdout.write(`${JSON.stringify({ error: wire })}\n`);
  }
  return im.code === 'IM_CLI_USAGE' ? 2 : 1;
}
