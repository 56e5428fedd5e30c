/**
 * The conformance suite against PostgreSQL: a fresh schema per test, all
 * dropped at the end. Needs a server at IDLEMESH_TEST_PG (CI has one); the
 * tests skip, saying so, when none answers.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { PostgresStore } from '../src/store/index.js';
import { storeConformance } from './store-conformance.js';
import { ledgerConformance } from './store-ledger-conformance.js';

const URL = process.env.IDLEMESH_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const prefix = `im_t${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
const schemas: string[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: URL, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const reachable = await admin(async () => true).catch(() => false);

if (reachable) {
  after(async () => admin(async (c) => {
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  }));
  const open = async (): Promise<PostgresStore> => {
    const schema = `${prefix}_${schemas.length}`;
    schemas.push(schema);
    const s = new PostgresStore(URL, { schema, poolSize: 4 });
    await s.migrate();
    return s;
  };
  storeConformance('postgres', open);
  ledgerConformance('postgres', open, 8);
} else {
  test('postgres store conformance', (t) => {
    // CI sets IDLEMESH_REQUIRE_PG: there, a missing database is a failure, not a skip.
    if (process.env.IDLEMESH_REQUIRE_PG) assert.fail(`PostgreSQL not reachable at ${URL}`);
    t.skip(`PostgreSQL not reachable at ${URL} (set IDLEMESH_TEST_PG)`);
  });
}
