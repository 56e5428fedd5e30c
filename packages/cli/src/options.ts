import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { ImError } from '@idlemesh/protocol';
import { IdlemeshClient } from '@idlemesh/sdk';

export const DEFAULT_COORDINATOR = 'http://127.0.0.1:7070';

/**
 * The coordinator URL for commands that talk to one: --coordinator, else
 * IDLEMESH_COORDINATOR, else the local default. The only place the CLI reads
 * process.env for its own settings (components read theirs in their resolvers).
 */
export function coordinatorUrl(cmd: Command, env: NodeJS.ProcessEnv = process.env): string {
  const flag = cmd.optsWithGlobals<{ coordinator?: string }>().coordinator;
  return flag ?? (env.IDLEMESH_COORDINATOR || undefined) ?? DEFAULT_COORDINATOR;
}

/** The --coordinator flag only, for components whose resolver reads IDLEMESH_COORDINATOR and applies the default. */
export function coordinatorFlag(cmd: Command): string | undefined {
  return cmd.optsWithGlobals<{ coordinator?: string }>().coordinator;
}

/** The API key: --api-key, else IDLEMESH_API_KEY (none before the coordinator is bootstrapped). */
export function apiKey(cmd: Command, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return cmd.optsWithGlobals<{ apiKey?: string }>().apiKey ?? (env.IDLEMESH_API_KEY || undefined);
}

export function clientFor(cmd: Command): IdlemeshClient {
  const key = apiKey(cmd);
  return new IdlemeshClient(key === undefined ? { url: coordinatorUrl(cmd) } : { url: coordinatorUrl(cmd), apiKey: key });
}

/** A commander value parser for integers within bounds; bad values are usage errors (exit 2). */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const n = Number(value.replace(/_/g, ''));
    if (!/^-?[\d_]+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`expected an integer, got ${JSON.stringify(value)}`);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

export function floatArg(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got ${JSON.stringify(value)}`);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

/** Reads a JSON config file that must hold one object. */
export async function readConfigFile(path: string | undefined): Promise<Record<string, unknown> | undefined> {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ImError('IM_CONFIG_INVALID', `config file ${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** Drops undefined members so they do not override lower configuration layers. */
export function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
