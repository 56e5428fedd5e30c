/**
 * What only PostgreSQL has to get right: several coordinators (several
 * PostgresStore instances) on one schema. Each test uses its own fresh
 * schema; all are dropped at the end. Skips, saying so, without a server.
 */
import { job as fixtureJob } from './store-conformance.js';
import { after, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { errorFrom } from '@idlemesh/protocol';
import type { JobCounts } from '@idlemesh/protocol';
import { PostgresStore, openStore } from '../src/store/index.js';
import type { ClaimedTask, NewJob, Store, StoreEvent, TaskRow } from '../src/store/index.js';
import { POSTGRES_MIGRATIONS } from '../src/store/postgres-migrations.js';

const URL_ = process.env.IDLEMESH_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const prefix = `im_m${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
const schemas: string[] = [];
const open: PostgresStore[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: URL_, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

function freshSchema(): string {
  const s = `${prefix}_${schemas.length}`;
  schemas.push(s);
  return s;
}

/** n stores on one schema, closed at the end of the file (closing twice is harmless). */
function stores(n: number, schema: string, poolSize = 4): PostgresStore[] {
  const list = Array.from({ length: n }, () => new PostgresStore(URL_, { schema, poolSize }));
  open.push(...list);
  return list;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const job = (): NewJob => fixtureJob({ retryBackoffMs: 0 });
const inputs = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`in-${i}`));

const reachable = await admin(async () => true).catch(() => false);

if (!reachable) {
  test('postgres multi-coordinator tests', (t) => {
    // CI sets IDLEMESH_REQUIRE_PG: there, a missing database is a failure, not a skip.
    if (process.env.IDLEMESH_REQUIRE_PG) assert.fail(`PostgreSQL not reachable at ${URL_}`);
    t.skip(`PostgreSQL not reachable at ${URL_} (set IDLEMESH_TEST_PG)`);
  });
} else {
  after(async () => {
    await Promise.all(open.map((s) => s.close()));
    await admin(async (c) => {
      for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
    });
  });

  describe('postgres store: several coordinators on one database', () => {
    it('opens from a URL carrying ?schema= (and ?options=) and reports synchronous_commit', async () => {
      const schema = freshSchema();
      const u = new URL(URL_);
      u.searchParams.set('schema', schema);
      u.searchParams.set('options', '-c application_name=idlemesh-test'); // must not replace the store's search_path
      const store: Store = await openStore(u.toString(), '/nonexistent');
      try {
        assert.equal(store.kind, 'postgres');
        assert.match(store.durability, /^postgres synchronous_commit=(on|off|local|remote_write|remote_apply)$/);
        const r = await admin((c) => c.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'tasks']));
        assert.equal(r.rowCount, 1, 'tables live in the schema named by the URL');
        assert.deepEqual(await store.listJobs({ limit: 1 }), [], 'pooled connections find them');
      } finally {
        await store.close();
      }
    });

    it('runs four concurrent migrations on a fresh schema: all succeed, each migration applied once', async () => {
      const schema = freshSchema();
      const four = stores(4, schema, 1);
      const results = await Promise.allSettled(four.map((s) => s.migrate()));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
      const versions = await admin((c) => c.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`));
      assert.deepEqual(versions.rows.map((r) => r.version), POSTGRES_MIGRATIONS.map((_, i) => i + 1));
      const tables = await admin((c) => c.query<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name', [schema]));
      assert.deepEqual(tables.rows.map((r) => r.table_name), ['audit_checkpoints', 'audit_entries', 'audit_head', 'deposit_addresses', 'issuance_meter', 'job_charges', 'jobs', 'ledger_account_events', 'ledger_accounts', 'ledger_head', 'ledger_transfers', 'modules', 'node_trust', 'nodes', 'nonces', 'receipt_batches', 'records', 'schema_migrations', 'task_replicas', 'tasks']);
      const session = await admin((c) => c.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'nodes' AND column_name = 'session'`, [schema]));
      assert.equal(session.rowCount, 1, 'migration 2 added nodes.session');
      await Promise.all(four.map((s) => s.close()));
    });

    it('never hands out one task twice when two coordinators claim and complete the same jobs at once', async () => {
      const schema = freshSchema();
      const [a, b] = stores(2, schema, 4);
      assert.ok(a && b);
      await a.migrate();
      await b.migrate();
      const j1 = job();
      const j2 = job();
      await a.createJob(j1, inputs(250));
      await b.createJob(j2, inputs(150));
      const seen: string[] = [];
      let clock = 2000;
      const worker = async (store: PostgresStore, nodeId: string): Promise<void> => {
        for (;;) {
          const n = 1 + Math.floor(Math.random() * 8);
          // Both jobs in one call, in either order: exercises the multi-job path too.
          const claims = [{ jobId: j1.id, nodeId, count: n }, { jobId: j2.id, nodeId, count: n }];
          if (Math.random() < 0.5) claims.reverse();
          const got = await store.claimTasks(claims, clock++, 60_000);
          if (got.length === 0) return;
          for (const t of got) seen.push(`${t.jobId}/${t.index}/${t.attempt}`);
          const r = await store.completeTasks(nodeId, got.map((t) => ({ jobId: t.jobId, index: t.index, attempt: t.attempt, ok: true, fuel: 1 })), clock++);
          assert.ok(r.statuses.every((s) => s === 'accepted'), `${nodeId}: ${r.statuses.join()}`);
        }
      };
      await Promise.all([0, 1, 2, 3].flatMap((w) => [worker(a, `node-a${w}`), worker(b, `node-b${w}`)]));
      assert.equal(new Set(seen).size, seen.length, 'no (job, index, attempt) handed out twice');
      assert.equal(seen.length, 400, 'every task handed out');
      assert.ok(seen.every((k) => k.endsWith('/1')), 'every task claimed on its first attempt');
      assert.equal((await a.claimTasks([{ jobId: j1.id, nodeId: 'late', count: 10 }], clock, 60_000)).length, 0);
      for (const id of [j1.id, j2.id]) {
        const j = await b.getJob(id);
        assert.equal(j?.state, 'completed');
        assert.equal(j?.counts.succeeded, j?.counts.total);
        assert.equal(j?.counts.leased, 0);
      }
    });

    it('delivers an event published by one coordinator to another, splitting a large progress event', async () => {
      const schema = freshSchema();
      const [a, b] = stores(2, schema, 2);
      assert.ok(a && b);
      await a.migrate();
      const atB: StoreEvent[] = [];
      const atA: StoreEvent[] = [];
      const unsubB = await b.subscribe((e) => atB.push(e));
      const unsubA = await a.subscribe((e) => atA.push(e));

      await a.publish({ type: 'revoke', nodeId: 'n1', taskIds: ['t1'], reason: 'cancelled' });
      await waitFor('the revoke at B', () => atB.some((e) => e.type === 'revoke' && e.nodeId === 'n1' && e.taskIds[0] === 't1'));
      await waitFor('the publisher hearing its own event', () => atA.some((e) => e.type === 'revoke'));

      const jobs = Array.from({ length: 1000 }, (_, i) => `${i}-`.padEnd(26, 'x'));
      await a.publish({ type: 'progress', jobs });
      const heard = (): string[] => atB.flatMap((e) => (e.type === 'progress' ? e.jobs : []));
      await waitFor('every job of the large progress event at B', () => heard().length >= jobs.length);
      assert.deepEqual(heard().sort(), [...jobs].sort());
      assert.ok(atB.filter((e) => e.type === 'progress').length > 1, 'a 27 kB event went out as several notifications');

      await unsubB();
      const before = atB.length;
      await a.publish({ type: 'work' });
      await waitFor('the work event at A', () => atA.some((e) => e.type === 'work'));
      assert.equal(atB.length, before, 'nothing reaches an unsubscribed handler');
      await unsubA();
    });

    it('reconnects its LISTEN connection when it drops', async () => {
      const schema = freshSchema();
      const [a, b] = stores(2, schema, 2);
      assert.ok(a && b);
      await a.migrate();
      const atB: StoreEvent[] = [];
      const unsub = await b.subscribe((e) => atB.push(e));
      const killed = await admin((c) => c.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()`, [`LISTEN idlemesh_${schema}`]));
      assert.equal(killed.rowCount, 1, 'found the listening connection');
      await waitFor('the work event that follows a reconnect', () => atB.some((e) => e.type === 'work'));
      await a.publish({ type: 'progress', jobs: ['after-reconnect'] });
      await waitFor('an event published after the reconnect', () => atB.some((e) => e.type === 'progress' && e.jobs[0] === 'after-reconnect'));
      await unsub();
    });

    it('elects exactly one leader per lock name; leadership passes on when the holder closes or its connection dies', async () => {
      const schema = freshSchema();
      const [a, b, c] = stores(3, schema, 1);
      assert.ok(a && b && c);
      const [ha, hb] = await Promise.all([a.holdsLock('sweep'), b.holdsLock('sweep')]);
      assert.equal(Number(ha) + Number(hb), 1, `exactly one holds 'sweep' (a=${ha}, b=${hb})`);
      const [holder, other] = ha ? [a, b] : [b, a];
      assert.equal(await holder.holdsLock('sweep'), true, 're-entrant');
      assert.equal(await other.holdsLock('sweep'), false);
      assert.equal(await other.holdsLock('payouts'), true, 'another name is another lock');
      assert.equal(await holder.holdsLock('payouts'), false);

      await holder.close();
      await waitFor('the other coordinator to take over', () => other.holdsLock('sweep'));
      assert.equal(await c.holdsLock('sweep'), false);

      // The leader's lock connection dies: the lock is free at once, a third coordinator takes it, the old leader knows.
      const killed = await admin((k) => k.query(
        `SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = hashtext($1)::oid AND objid = hashtext('sweep')::oid`, [schema]));
      assert.equal(killed.rowCount, 1, 'found the lock holder\'s connection');
      await waitFor('a third coordinator to take over', () => c.holdsLock('sweep'));
      await waitFor('the old leader to notice', async () => !(await other.holdsLock('sweep')));
      assert.equal(await other.holdsLock('sweep'), false, 'stays a follower while another holds the lock');
    });

    it('keeps counts equal to task states when two coordinators run every operation at once', async () => {
      const schema = freshSchema();
      const [a, b] = stores(2, schema, 4);
      assert.ok(a && b);
      await a.migrate();
      const jobs = [job(), job()];
      for (const j of jobs) await a.createJob({ ...j, maxAttempts: 3 }, inputs(200));
      const ids = jobs.map((j) => j.id);
      const nodes = ['n0', 'n1', 'n2', 'n3'];
      const leases = new Map<string, ClaimedTask[]>();
      let clock = 1000;
      let random = 42;
      const rnd = (): number => ((random = (random * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
      const worker = async (store: PostgresStore): Promise<void> => {
        for (let op = 0; op < 60; op++) {
          const node = pick(nodes);
          const now = clock++;
          const held = leases.get(node) ?? [];
          const r = rnd();
          if (r < 0.35) {
            const got = await store.claimTasks(ids.map((jobId) => ({ jobId, nodeId: node, count: 1 + Math.floor(rnd() * 5) })), now, 500);
            leases.set(node, [...held, ...got]);
          } else if (r < 0.7) {
            const batch = held.slice(0, 8);
            if (batch[0] && rnd() < 0.3) batch.push(batch[0]); // a retransmitted result
            await store.completeTasks(node, batch.map((t) => {
              const k = rnd();
              return { jobId: t.jobId, index: t.index, attempt: t.attempt, ok: k < 0.6, fuel: 1,
                ...(k < 0.6 ? { output: new Uint8Array([1]) } : { error: errorFrom(k < 0.85 ? 'IM_TIMEOUT' : 'IM_TRAP') }) };
            }), now);
            leases.set(node, held.slice(8));
          } else if (r < 0.78) await store.releaseTasks(node, held.slice(0, 4), now);
          else if (r < 0.86) await store.extendLeases(node, now, 500);
          else if (r < 0.93) await store.expireLeases(now, errorFrom('IM_LEASE_EXPIRED'));
          else if (r < 0.99) await store.failNodeLeases(node, now, errorFrom('IM_LEASE_EXPIRED'));
          else await store.cancelJob(pick(ids), now);
        }
      };
      await Promise.all([0, 1, 2, 3].flatMap(() => [worker(a), worker(b)]));
      for (const id of ids) {
        const j = await b.getJob(id);
        const rows: TaskRow[] = await b.getResults(id, { after: -1, limit: 1000 });
        const actual: JobCounts = { total: rows.length, queued: 0, leased: 0, succeeded: 0, failed: 0, cancelled: 0 };
        for (const row of rows) actual[row.state]++;
        assert.deepEqual(j?.counts, actual, `counts of ${id}`);
        if (j?.state !== 'cancelled') assert.equal(j?.state === 'completed', actual.queued + actual.leased === 0);
        assert.equal(j?.fuelUsed, actual.succeeded, 'fuel counted once per accepted success');
      }
    });

    it('fails a vanished node\'s leases once even when two coordinators sweep at the same time', async () => {
      const schema = freshSchema();
      const [a, b] = stores(2, schema, 2);
      assert.ok(a && b);
      await a.migrate();
      const j = job();
      await a.createJob(j, inputs(50));
      await a.claimTasks([{ jobId: j.id, nodeId: 'gone', count: 50 }], 1000, 100);
      const [ra, rb] = await Promise.all([
        a.expireLeases(5000, errorFrom('IM_LEASE_EXPIRED')),
        b.expireLeases(5000, errorFrom('IM_LEASE_EXPIRED')),
      ]);
      assert.equal(ra.requeued + rb.requeued, 50, 'each lease requeued by exactly one sweep');
      const after = await b.getJob(j.id);
      assert.equal(after?.counts.queued, 50);
      assert.equal(after?.counts.leased, 0);
      const rows = await a.getResults(j.id, { after: -1, limit: 100 });
      assert.ok(rows.every((r) => r.failures === 1), 'no lease was failed twice');
    });
  });
}
