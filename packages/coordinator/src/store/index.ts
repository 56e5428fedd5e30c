import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ImError } from '@idlemesh/protocol';
import { SqliteStore } from './sqlite.js';
import type { Store } from './types.js';

export type * from './types.js';
export { SqliteStore, isRetryableTaskError } from './sqlite.js';

/** Opens the store named by the `store` option: `sqlite`, `sqlite:<path>` or `:memory:`. */
export async function openStore(spec: string, dataDir: string, opts: { synchronous?: 'NORMAL' | 'FULL' } = {}): Promise<Store> {
  let store: Store;
  if (spec === 'sqlite' || spec.startsWith('sqlite:')) {
    const path = spec === 'sqlite' ? join(dataDir, 'idlemesh.db') : spec.slice('sqlite:'.length);
    if (spec === 'sqlite') mkdirSync(dataDir, { recursive: true });
    store = new SqliteStore(path, opts);
  } else {
    throw new ImError('IM_CONFIG_INVALID', `unknown store "${spec}": use sqlite or sqlite:/path/to/file.db`);
  }
  await store.migrate();
  return store;
}
