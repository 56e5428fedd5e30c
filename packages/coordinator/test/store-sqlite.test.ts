import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteStore } from '../src/store/index.js';
import { storeConformance } from './store-conformance.js';
import { ledgerConformance } from './store-ledger-conformance.js';

const dir = mkdtempSync(join(tmpdir(), 'idlemesh-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

// A real file (not :memory:) so WAL mode is what the tests exercise; checkpointed in the
// background as the coordinator runs it (the ledger suite below keeps SQLite's own checkpoints).
storeConformance('sqlite', async () => {
  const s = new SqliteStore(join(dir, `t${n++}.db`), { backgroundCheckpoints: true });
  await s.migrate();
  return s;
});

ledgerConformance('sqlite', async () => {
  const s = new SqliteStore(join(dir, `l${n++}.db`));
  await s.migrate();
  return s;
});

describe('sqlite background checkpoints', () => {
  /** Writes a few hundred pages: fewer than SQLite's own threshold (1,000), so only a checkpointer moves them into the file. */
  async function fill(s: SqliteStore): Promise<void> {
    for (let i = 0; i < 40; i++) {
      await s.commitRecords({ records: Array.from({ length: 20 }, (_, k) => ({ kind: 'fill', id: `r${i}-${k}`, state: 'ok', doc: { pad: 'x'.repeat(1500) } })) }, Date.now());
    }
  }
  async function dbGrows(file: string, before: number, withinMs: number): Promise<boolean> {
    for (const end = Date.now() + withinMs; Date.now() < end;) {
      if (statSync(file).size > before) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  it('a worker thread copies the WAL into the database file; close() stops it', async () => {
    const file = join(dir, `ck${n++}.db`);
    const s = new SqliteStore(file, { backgroundCheckpoints: true });
    await s.migrate();
    await new Promise((r) => setTimeout(r, 600)); // the migrations' pages land first
    const before = statSync(file).size;
    await fill(s);
    assert.ok(await dbGrows(file, before, 5000), 'the database file took the written pages');
    assert.equal((await s.records('fill', { limit: 1000 })).length, 800);
    await s.close();
  });

  it('without it the pages stay in the WAL until SQLite\'s own threshold', async () => {
    const file = join(dir, `nock${n++}.db`);
    const s = new SqliteStore(file);
    await s.migrate();
    const before = statSync(file).size;
    await fill(s);
    assert.equal(await dbGrows(file, before, 800), false);
    await s.close();
  });
});
