import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { SqliteStore } from '../src/store/index.js';
import { storeConformance } from './store-conformance.js';
import { ledgerConformance } from './store-ledger-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'idlemesh-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// A real file (not :memory:) so WAL mode is what the tests exercise.
storeConformance('sqlite', async () => {
  const s = new SqliteStore(join(dir, `t${n++}.db`));
  await s.migrate();
  return s;
});

ledgerConformance('sqlite', async () => {
  const s = new SqliteStore(join(dir, `l${n++}.db`));
  await s.migrate();
  return s;
});
