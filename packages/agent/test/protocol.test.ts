import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64ToBytes, bytesToBase64, sha256Hex, utf8, verifyMessage } from '@idlemesh/protocol';
import type { TaskOutcome } from '@idlemesh/protocol';
import { resolveAgentOptions, startAgent } from '../src/index.js';
import type { Agent, AgentEvent, StartAgentOptions } from '../src/index.js';
import { FakeCoordinator, makeTasks } from './helpers/fake-coordinator.js';
import { FakeSandbox } from './helpers/fake-sandbox.js';

const MODULE = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);

async function setup(t: import('node:test').TestContext, extra: Partial<StartAgentOptions> = {}) {
  const hash = await sha256Hex(MODULE);
  const coord = await FakeCoordinator.start(new Map([[hash, { bytes: MODULE, abi: 'idlemesh/1' as const }]]));
  const dataDir = await mkdtemp(join(tmpdir(), 'im-agent-'));
  const sandbox = new FakeSandbox();
  const opts = resolveAgentOptions({ coordinator: coord.url, dataDir, maxTasks: 2, prefetch: 4, logLevel: 'silent' }, { env: {} });
  const agent = await startAgent({ ...opts, sandbox, fuelPerSec: 123, limitsIntervalMs: 20, ...extra });
  const events: AgentEvent[] = [];
  agent.on((e) => events.push(e));
  t.after(async () => {
    await agent.stop({ drain: false });
    await coord.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { coord, agent, sandbox, hash, dataDir, events };
}

/** hello → auth (checked) → welcome; returns the first credit. */
async function handshake(coord: FakeCoordinator, agent: Agent, conn = 0): Promise<number> {
  const auth = await coord.take('auth', () => true, 5000, conn);
  await verifyMessage(auth, Date.now(), agent.nodeId);
  assert.equal(auth.body.challenge, coord.challenges[conn]);
  coord.send({ type: 'welcome', nodeId: agent.nodeId, leaseMs: 10_000, heartbeatMs: 50, serverTime: Date.now() });
  return (await coord.take('credit', () => true, 5000, conn)).n;
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

void test('auth, lease, signed results batch, ack, resend after reconnect, drain', async (t) => {
  const { coord, agent, sandbox, hash, dataDir, events } = await setup(t);

  const auth = await coord.take('auth');
  await verifyMessage(auth, Date.now(), agent.nodeId);
  assert.equal(auth.body.challenge, coord.challenges[0]);
  assert.deepEqual(auth.body.capabilities.runtimes, ['wasm']);
  assert.equal(auth.body.capabilities.maxTasks, 2);
  assert.equal(auth.body.capabilities.benchmark.fuelPerSec, 123);
  coord.send({ type: 'welcome', nodeId: agent.nodeId, leaseMs: 10_000, heartbeatMs: 50, serverTime: Date.now() });
  assert.equal((await coord.take('credit')).n, 4, 'initial credit is prefetch');
  assert.equal((await coord.take('heartbeat')).state, 'active');
  await until(() => events.some((e) => e.type === 'connected'), 'connected event');

  const missing = 'f'.repeat(64);
  const tasks = [...makeTasks(hash, ['hello', 'world', 'trap']), ...makeTasks(missing, ['x'])];
  const mark = coord.received.length;
  coord.send({ type: 'lease', tasks });

  const outcomes = new Map<string, TaskOutcome>();
  const batches: string[] = [];
  while (outcomes.size < tasks.length) {
    const msg = await coord.take('results');
    await verifyMessage(msg, Date.now(), agent.nodeId);
    batches.push(msg.nonce);
    for (const o of msg.results) outcomes.set(o.taskId, o);
  }
  assert.ok(batches.length < tasks.length || tasks.length === 1, 'results are batched');
  const [hello, world, trap, lost] = tasks.map((task) => outcomes.get(task.taskId));
  assert.equal(hello?.ok, true);
  assert.equal(Buffer.from(base64ToBytes(hello?.output ?? '')).toString(), 'HELLO');
  assert.equal(hello?.fuel, 35);
  assert.equal(hello?.attempt, 1);
  assert.ok((hello?.endedAt ?? 0) >= (hello?.startedAt ?? Infinity));
  assert.equal(Buffer.from(base64ToBytes(world?.output ?? '')).toString(), 'WORLD');
  assert.deepEqual([trap?.ok, trap?.error?.code, trap?.fuel], [false, 'IM_TRAP', 3]);
  assert.equal(lost?.ok, false);
  assert.equal(lost?.error?.code, 'IM_AGENT_ERROR');
  assert.match(lost?.error?.message ?? '', /404/);

  // One fetch for the shared module despite concurrent tasks, cached on disk.
  assert.equal(coord.fetches.filter((h) => h === hash).length, 1);
  assert.deepEqual(sandbox.added, [hash]);
  await access(join(dataDir, 'modules', `${hash}.wasm`));

  // Every finished task returned one credit: back to prefetch in total.
  await until(() => coord.since('credit', mark).reduce((s, c) => s + c.n, 0) === tasks.length, 'credits back');

  // Ack all but "world"; drop the connection; the unacked outcome is sent again, freshly signed.
  const all = [...outcomes.values()];
  const worldTask = tasks[1];
  assert.ok(worldTask !== undefined);
  coord.send({
    type: 'ack',
    batch: batches[0] ?? '',
    results: all.filter((o) => o.taskId !== worldTask.taskId).map((o) => ({ taskId: o.taskId, attempt: o.attempt, status: 'accepted' as const })),
  });
  await until(() => events.some((e) => e.type === 'acked'), 'acked event');
  coord.kill();
  await until(() => coord.connections === 2, 'reconnect', 5000);
  assert.equal(await handshake(coord, agent, 1), 4, 'credit restarts at prefetch on a new connection');
  const resent = await coord.take('results', () => true, 5000, 1);
  await verifyMessage(resent, Date.now(), agent.nodeId);
  assert.ok(!batches.includes(resent.nonce), 'a fresh nonce');
  assert.deepEqual(resent.results.map((o) => o.taskId), [worldTask.taskId]);
  coord.send({ type: 'ack', batch: resent.nonce, results: [{ taskId: worldTask.taskId, attempt: 1, status: 'duplicate' }] });

  await agent.stop({ drain: true });
  assert.ok(coord.received.some((r) => r.msg.type === 'heartbeat' && r.msg.state === 'draining'));
  const types = events.map((e) => e.type);
  assert.equal(types.at(-1), 'stopped');
  assert.ok(types.indexOf('draining') > types.lastIndexOf('connected'));
  assert.ok(events.some((e) => e.type === 'disconnected'));
});

void test('pause on battery: heartbeat paused, release everything held, no credit; resume sends credit', async (t) => {
  let charging = true;
  const { coord, agent, sandbox, hash, events } = await setup(t, { onlyWhenCharging: true, power: { charging: async () => charging } });
  assert.equal(await handshake(coord, agent), 4);

  const tasks = makeTasks(hash, ['block a', 'block b', 'block c']);
  coord.send({ type: 'lease', tasks });
  await until(() => sandbox.running === 2, 'two tasks running (maxTasks)');

  const mark = coord.received.length;
  charging = false;
  const hb = await coord.take('heartbeat', (m) => m.state === 'paused');
  assert.equal(hb.reason, 'on battery');
  const release = await coord.take('release');
  assert.deepEqual(release.tasks.map((r) => r.taskId).sort(), tasks.map((x) => x.taskId).sort());
  assert.equal(release.reason, 'on battery');
  await until(() => events.some((e) => e.type === 'paused'), 'paused event');
  assert.equal(agent.state, 'paused');
  await until(() => sandbox.running === 0, 'running tasks aborted');
  assert.equal(sandbox.aborted, 2);

  // A lease that crosses the pause goes straight back.
  const late = makeTasks(hash, ['late']);
  coord.send({ type: 'lease', tasks: late });
  const back = await coord.take('release');
  assert.deepEqual(back.tasks, [{ taskId: late[0]?.taskId, attempt: 1 }]);
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(coord.since('credit', mark), [], 'no credit while paused');
  assert.deepEqual(coord.since('results', mark), [], 'released tasks report nothing');

  charging = true;
  await coord.take('heartbeat', (m) => m.state === 'active');
  assert.equal((await coord.take('credit')).n, 4);
  await until(() => events.some((e) => e.type === 'resumed'), 'resumed event');
  assert.equal(agent.state, 'active');
});

void test('revoke drops queued and running tasks without a result', async (t) => {
  const { coord, agent, sandbox, hash } = await setup(t);
  await handshake(coord, agent);
  const tasks = makeTasks(hash, ['block 1', 'block 2', 'block 3', 'ok']);
  coord.send({ type: 'lease', tasks: tasks.slice(0, 3) });
  await until(() => sandbox.running === 2, 'two running');
  const mark = coord.received.length;
  coord.send({ type: 'revoke', taskIds: tasks.slice(0, 3).map((x) => x.taskId), reason: 'job cancelled' });
  await until(() => sandbox.running === 0, 'aborted');
  coord.send({ type: 'lease', tasks: tasks.slice(3) });
  const r = await coord.take('results');
  assert.deepEqual(r.results.map((o) => o.taskId), [tasks[3]?.taskId], 'only the task that was not revoked reports');
  assert.deepEqual(coord.since('release', mark), []);
  assert.equal(bytesToBase64(utf8('OK')), r.results[0]?.output);
});

void test('an agent with no coordinator keeps retrying and stops cleanly', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'im-agent-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const opts = resolveAgentOptions({ coordinator: 'http://127.0.0.1:1', dataDir, maxTasks: 1, logLevel: 'silent' }, { env: {} });
  const agent = await startAgent({ ...opts, sandbox: new FakeSandbox(), fuelPerSec: 1 });
  const events: AgentEvent[] = [];
  agent.on((e) => events.push(e));
  await until(() => events.some((e) => e.type === 'error' && e.code === 'IM_CONNECTION_FAILED'), 'connection error event');
  await agent.stop();
  assert.equal(events.at(-1)?.type, 'stopped');
});

void test('--max-memory bounds the memory of tasks running together', async (t) => {
  const { coord, agent, sandbox, hash } = await setup(t, { maxMemoryMb: 100 });
  await handshake(coord, agent);
  // Each task may use 64 MiB: only one fits in 100 MiB at a time, though maxTasks is 2.
  coord.send({ type: 'lease', tasks: makeTasks(hash, ['block 1', 'block 2']) });
  await until(() => sandbox.running === 1, 'one running');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(sandbox.running, 1);
});
