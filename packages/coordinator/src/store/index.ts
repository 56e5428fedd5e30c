import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ImError } from '@idlemesh/protocol';
import { SqliteStore } from './sqlite.js';
import { PostgresStore } from './postgres.js';
import type { Store } from './types.js';

export type * from './types.js';
export { SqliteStore, isRetryableTaskError } from './sqlite.js';
export { PostgresStore } from './postgres.js';
export type { PostgresStoreOptions } from './postgres.js';

/**
 * Opens the store named by the `store` option: `sqlite`, `sqlite:<path>` or
 * `:memory:`, or `postgres://user@host:5432/db?schema=idlemesh` (also
 * `postgresql://`) to share one database between coordinators.
 */
export async function openStore(spec: string, dataDir: string, opts: { synchronous?: 'NORMAL' | 'FULL' } = {}): Promise<Store> {
  let store: Store;
  if (spec === 'sqlite' || spec.startsWith('sqlite:')) {
    const path = spec === 'sqlite' ? join(dataDir, 'idlemesh.db') : spec.slice('sqlite:'.length);
    if (spec === 'sqlite') mkdirSync(dataDir, { recursive: true });
    store = new SqliteStore(path, { ...opts, backgroundCheckpoints: true });
  } else if (spec.startsWith('postgres://') || spec.startsWith('postgresql://')) {
    store = new PostgresStore(spec);
  } else {
    throw new ImError('IM_CONFIG_INVALID', `unknown store "${spec}": use sqlite, sqlite:/path/to/file.db or postgres://user@host/db`);
  }
  try {
    await store.migrate();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}
