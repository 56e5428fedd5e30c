/**
 * The governance wiring on a real store: who is in the public pool (a
 * minimum bond), regions and reliability reaching the policy engine, and
 * private pools, as the dispatcher's filter sees them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Governance } from '../src/governance/index.js';
import { SqliteStore } from '../src/store/index.js';
import type { RunnableJob } from '../src/store/index.js';
import type { Capabilities } from '@idlemesh/protocol';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const CAPS: Capabilities = { runtimes: ['wasm'], cores: 1, memoryMb: 512, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 't' };
const job = (caller: string, label?: string): RunnableJob => ({
  id: `job_${caller.replace(/\W/g, '')}`, runtime: 'wasm', queued: 1, leased: 0, priority: 1, bid: 0, caller, createdAt: 0, memoryMb: 16, requirements: {},
  ...(label ? { label } : {}),
});

describe('governance filter', () => {
  it('public pool needs the minimum bond; regions and reliability reach the policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-gov-'));
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.migrate();
    let now = 1_000_000;
    try {
      const g = new Governance(store, quiet, () => now, 1000n);
      await store.upsertNode(A, CAPS, 1);
      await store.upsertNode(B, CAPS, 1);
      const agents = [{ nodeId: A, runtimes: ['wasm'], free: 1, region: 'eu' }, { nodeId: B, runtimes: ['wasm'], free: 1, region: 'us' }];
      let f = (await g.filter(agents, [job('anonymous')]))?.allowed;
      assert.ok(f, 'a minimum bond makes placement apply');
      assert.deepEqual([f(A, 'job_anonymous'), f(B, 'job_anonymous')], [false, false], 'no bond, no public work');
      await store.ledgerApply({ accounts: [{ id: 'operator:a', kind: 'operator' }, { id: 'treasury', kind: 'treasury' }, { id: `stake:${A}`, kind: 'stake' }],
        events: [{ id: 'fund', debitAccount: 'treasury', creditAccount: 'operator:a', amount: 5000n, code: 'deposit' },
          { id: 'bond', debitAccount: 'operator:a', creditAccount: `stake:${A}`, amount: 1000n, code: 'stake' }] }, 2);
      now += 2000; // past the snapshot cache
      g.invalidate();
      f = (await g.filter(agents, [job('anonymous')]))?.allowed;
      assert.deepEqual([f!(A, 'job_anonymous'), f!(B, 'job_anonymous')], [true, false]);

      // An organisation that allows only eu nodes with a good record for public work.
      await g.setPolicy('org1', 'version: 1\ndefaultLabel: public\neligibility:\n  regions: [eu]\n  minReliability: 0.9\n', 'yaml');
      now += 2000;
      g.invalidate();
      f = (await g.filter(agents, [job('org:org1')]))?.allowed;
      assert.equal(f!(A, 'job_orgorg1'), false, 'unknown reliability (0.5) is not 0.9');
      const db = (store as unknown as { db: { prepare(s: string): { run(...a: unknown[]): void } } }).db;
      db.prepare('UPDATE nodes SET completed = 99, failed = 1 WHERE id = ?').run(A);
      db.prepare('UPDATE nodes SET completed = 99, failed = 1 WHERE id = ?').run(B);
      await store.ledgerApply({ accounts: [{ id: `stake:${B}`, kind: 'stake' }], events: [{ id: 'bond-b', debitAccount: 'operator:a', creditAccount: `stake:${B}`, amount: 1000n, code: 'stake' }] }, 4);
      now += 2000;
      g.invalidate();
      f = (await g.filter(agents, [job('org:org1')]))?.allowed;
      assert.deepEqual([f!(A, 'job_orgorg1'), f!(B, 'job_orgorg1')], [true, false], 'eu and reliable: yes; us: no');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('per-batch approvals: each batch of crossing tasks is asked for, and is a quota', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-gov-'));
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.migrate();
    let now = 1_000_000;
    try {
      const g = new Governance(store, quiet, () => now);
      await store.upsertNode(B, CAPS, 1);
      await g.setPolicy('org1', 'version: 1\ndefaultLabel: overflow\noverflow:\n  waitMs: 0\n  approval: per-batch\n  batchSize: 2\n', 'yaml');
      const agents = [{ nodeId: B, runtimes: ['wasm'], free: 5 }];
      const j = job('org:org1');
      let gate = await g.filter(agents, [j]);
      assert.equal(gate?.allowed(B, j.id), false, 'waits for the first batch to be approved');
      assert.deepEqual((await g.approvals('org1')).map((a) => [a.id, a.state]), [[`${j.id}#0`, 'pending']]);
      await g.decide('org1', `${j.id}#0`, true, 'ok', 'tester');
      now += 2000;
      g.invalidate();
      gate = await g.filter(agents, [j]);
      assert.equal(gate?.allowed(B, j.id), true);
      assert.equal(gate?.quota.key(B, j.id), `cross:${j.id}`);
      assert.equal(gate?.quota.left.get(`cross:${j.id}`), 2, 'the approved batch, no more');
      await g.countCrossing(j.id, 2);
      now += 2000;
      g.invalidate();
      gate = await g.filter(agents, [j]);
      assert.equal(gate?.allowed(B, j.id), false, 'the next batch needs its own approval');
      assert.deepEqual((await g.approvals('org1')).map((a) => [a.id, a.state]).sort(), [[`${j.id}#0`, 'approved'], [`${j.id}#1`, 'pending']]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a node asks to join without a token; an admin admits it (or refuses), once', async () => {
    const { generateNodeKey, signRequest } = await import('@idlemesh/protocol');
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-gov-'));
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.migrate();
    try {
      const g = new Governance(store, quiet, () => Date.now());
      const node = await generateNodeKey();
      const other = await generateNodeKey();
      const asked = await g.requestJoin(await signRequest(node, 'join', { org: 'org1', note: 'rack 4' }, Date.now()));
      assert.equal(asked.state, 'pending');
      await g.requestJoin(await signRequest(other, 'join', { org: 'org1' }, Date.now()));
      assert.equal((await g.memberships()).has(node.publicKeyHex), false, 'not in the pool before an admin says so');
      const forged = { ...(await signRequest(node, 'join', { org: 'org1' }, Date.now())), nodeId: other.publicKeyHex };
      await assert.rejects(g.requestJoin(forged), /signature/i);
      assert.deepEqual(await g.decideJoin('org1', node.publicKeyHex, true, 'admin-key'), { state: 'admitted' });
      assert.deepEqual(await g.decideJoin('org1', other.publicKeyHex, false, 'admin-key'), { state: 'refused' });
      await assert.rejects(g.decideJoin('org1', node.publicKeyHex, true, 'admin-key'), /already admitted/);
      const members = await g.memberships();
      assert.equal(members.get(node.publicKeyHex)?.orgId, 'org1');
      assert.equal(members.has(other.publicKeyHex), false);
      assert.deepEqual((await g.joinRequests('org1')).map((r) => r.state).sort(), ['admitted', 'refused']);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an operator admits at most so many new nodes an hour, whatever its tokens allow', async () => {
    const { ImError, generateNodeKey, signRequest } = await import('@idlemesh/protocol');
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-gov-'));
    const store = new SqliteStore(join(dir, 'g.db'));
    await store.migrate();
    try {
      let now = Date.now();
      const g = new Governance(store, quiet, () => now, 0n, 2);
      const { token } = await g.createEnrolToken('org1', { uses: null, ttlMs: 10 * 3_600_000 });
      const { token: other } = await g.createEnrolToken('org2', { uses: null, ttlMs: 10 * 3_600_000 });
      const keys = await Promise.all([0, 1, 2, 3].map(() => generateNodeKey()));
      const join = async (k: (typeof keys)[number], t: string) => g.join(await signRequest(k, 'join', { token: t }, now));
      await join(keys[0]!, token);
      await join(keys[1]!, token);
      await assert.rejects(join(keys[2]!, token), (e: unknown) => e instanceof ImError && e.code === 'IM_RATE_LIMITED' && /org1 admitted 2 nodes this hour/.test(e.message));
      assert.equal((await g.memberships()).has(keys[2]!.publicKeyHex), false, 'nothing admitted past the limit');
      await join(keys[0]!, token); // a node already admitted joins again freely
      await join(keys[3]!, other); // another operator has its own allowance
      now += 3_600_001;
      assert.equal((await join(keys[2]!, token)).orgId, 'org1', 'the next hour admits again');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
