// `npm run bench -- compare`: the same no-op work for idlemesh and its peers,
// one contender after another, on this machine. Prints one JSON line per
// contender and a summary line. See docs/BENCHMARKS.md for what each figure is.
//
//   --tasks N          bulk batch size (default 100000)
//   --single N         sequential single-task submits for the enqueue rate (default 2000)
//   --reps N           idle-system latency samples (default 2000)
//   --warm N           latency samples thrown away first, for every contender (default 5000: the JIT of
//                      every process on the path takes thousands of jobs to settle; the first 1,000
//                      are reported apart as coldSubmitToResultMs)
//   --kill-tasks N     batch size of the kill -9 run (default: --tasks)
//   --workers N        worker processes / agents (default 2), --concurrency N (default 1)
//   --only a,b         contenders to run (idlemesh-sqlite,idlemesh-postgres,idlemesh-2coord,bullmq,graphile-worker)
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { arg, example, machine, percentile, ROOT } from './lib.mjs';
import { IdlemeshClient } from '../packages/sdk/dist/src/index.js';
import { load } from './compare/contenders.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(ROOT, 'packages/cli/bin/idlemesh.js');
const TASKS = arg('tasks', 100_000);
const SINGLE = arg('single', 2_000);
const REPS = arg('reps', 2000);
const WARM = arg('warm', 5000);
const KILL_TASKS = arg('kill-tasks', TASKS);
const WORKERS = arg('workers', 2);
const CONCURRENCY = arg('concurrency', 1);
const ALL = ['idlemesh-sqlite', 'idlemesh-postgres', 'idlemesh-2coord', 'bullmq', 'graphile-worker'];
const onlyIdx = process.argv.indexOf('--only');
const ONLY = onlyIdx >= 0 ? process.argv[onlyIdx + 1].split(',') : ALL;
const PG = 'postgres://postgres@127.0.0.1:5432';
const REDIS = { host: '127.0.0.1', port: 6379 };
/** Kill run: give up when nothing completes for this long (graphile-worker holds a dead worker's lock for 4 h). */
const STUCK_MS = arg('stuck-ms', 90_000);

// ~100-byte JSON payload, the same bytes for everyone.
const PAYLOAD = { task: 'noop', payload: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01' };
const PAYLOAD_JSON = JSON.stringify(PAYLOAD); // 97 bytes
const PAYLOAD_B64 = Buffer.from(PAYLOAD_JSON).toString('base64');
const REC_B64 = Buffer.from(JSON.stringify({ ...PAYLOAD, rec: 1 })).toString('base64');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[compare ${new Date().toISOString().slice(11, 19)}]`, ...a);
const r1 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10) / 10);
const r3 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000);
function pct(samples) {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { p50: null, p99: null, n: 0 };
  return { p50: r1(percentile(s, 50)), p99: r1(percentile(s, 99)), n: s.length };
}
async function until(fn, { timeoutMs = 600_000, everyMs = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
async function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
const exited = (p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r)));

/** Worker processes that report start/done of `rec` tasks over IPC. */
function recorder() {
  const byId = new Map(); // id -> [{ev, t, pid}]
  const waiters = new Map();
  return {
    byId,
    on(m) {
      if (m.ev !== 'start' && m.ev !== 'done') return;
      const id = String(m.id);
      const list = byId.get(id) ?? [];
      list.push(m);
      byId.set(id, list);
      const w = waiters.get(`${m.ev}:${id}`);
      if (w) { waiters.delete(`${m.ev}:${id}`); w(m); }
    },
    wait(ev, id) {
      const hit = (byId.get(String(id)) ?? []).find((m) => m.ev === ev);
      if (hit) return Promise.resolve(hit);
      return new Promise((r) => waiters.set(`${ev}:${id}`, r));
    },
    clear() { byId.clear(); },
  };
}

/**
 * Kill analysis shared by BullMQ and graphile-worker. `inflight`: the ids the
 * killed worker held at the kill (from the system's own active/locked set, see
 * stuckIds); `completedAt(id)`:
 * when the system committed that task's completion (ms) or undefined.
 * duplicated = tasks whose handler ran to the end more than once.
 */
async function killFigures(rec, inflight, completedAt, killAt) {
  let duplicated = 0;
  let reExecuted = 0;
  for (const evs of rec.byId.values()) {
    if (evs.filter((e) => e.ev === 'done').length > 1) duplicated++;
    if (evs.filter((e) => e.ev === 'start').length > 1) reExecuted++;
  }
  const times = [];
  for (const id of inflight) times.push(await completedAt(id));
  const recoverySec = times.length > 0 && times.every((t) => t !== undefined) ? (Math.max(...times) - killAt) / 1000 : null;
  return { duplicated, reExecuted, inflightAtKill: inflight.length, recoverySec: r3(recoverySec) };
}
/** The dead worker's in-flight ids: held (active/locked) in two snapshots 300 ms apart; the survivor turns its one task over in about a millisecond. */
async function stuckIds(snapshot) {
  const a = new Set(await snapshot());
  await sleep(300);
  return (await snapshot()).filter((id) => a.has(id));
}

// ---- idlemesh ---------------------------------------------------------------

function idlemeshContender(kind) {
  let dir;
  const coords = [];
  const agents = [];
  const clients = [];
  let client;
  let mod;
  let schema;
  let info;
  const spawnCli = (args) => spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, IDLEMESH_LOG_LEVEL: 'warn' },
  });
  const stderrTail = (p) => { let s = ''; p.stderr.on('data', (d) => { s = (s + d).slice(-4000); if (process.env.BENCH_VERBOSE) process.stderr.write(d); }); return () => s; };
  async function startCoordinator(i, store) {
    const port = await freePort();
    const cfg = join(dir, `coord${i}.json`);
    writeFileSync(cfg, JSON.stringify({ coordinatorId: `bench-c${i}` }));
    const args = ['coordinator', '--port', String(port), '--data-dir', join(dir, `coord${i}`), '--config', cfg];
    if (store) args.push('--store', store);
    const p = spawnCli(args);
    const tail = stderrTail(p);
    coords.push(p);
    const c = new IdlemeshClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 120_000 });
    for (let k = 0; k < 300; k++) {
      if (p.exitCode !== null) throw new Error(`coordinator exited ${p.exitCode}: ${tail().trim().split('\n').slice(-3).join(' | ').slice(0, 400)}`);
      if (await c.health().then((h) => h.ok, () => false)) return c;
      await sleep(50);
    }
    throw new Error(`coordinator did not become healthy: ${tail().slice(-400)}`);
  }
  function startAgent(i, c) {
    // BENCH_AGENT_ARGS="--inline-ms 0" passes flags to every idlemesh agent.
    const extra = (process.env.BENCH_AGENT_ARGS ?? '').split(' ').filter(Boolean);
    const p = spawnCli(['agent', '--coordinator', c.url, '--data-dir', join(dir, `agent${i}`), '--max-tasks', String(CONCURRENCY), ...extra]);
    stderrTail(p);
    agents.push(p);
    return p;
  }
  async function waitJob(id, c = client) {
    return c.waitForJob(id);
  }
  return {
    name: `idlemesh-${kind}`,
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'idlemesh-compare-'));
      let store;
      if (kind !== 'sqlite') {
        schema = `bench_${randomBytes(4).toString('hex')}`;
        store = `${PG}/test?schema=${schema}`;
      }
      clients.push(await startCoordinator(0, store));
      if (kind === '2coord') clients.push(await startCoordinator(1, store));
      client = clients[0];
      for (let i = 0; i < WORKERS; i++) startAgent(i, clients[i % clients.length]);
      await until(async () => {
        for (const a of agents) if (a.exitCode !== null) throw new Error(`agent exited ${a.exitCode}`);
        const nodes = await client.nodes();
        return nodes.filter((n) => n.state === 'online').length >= WORKERS;
      }, { timeoutMs: 30_000, everyMs: 100, what: `${WORKERS} agents online (as seen by the first coordinator)` });
      info = await client.info();
      mod = await client.uploadModule(example('noop/noop.wasm'));
      if (kind === '2coord') await clients[1].uploadModule(example('noop/noop.wasm')).catch(() => {});
      let durability = `${info.store}: ${info.durability}`;
      if (kind !== 'sqlite') durability += `; PostgreSQL synchronous_commit=${await pgSetting('test', 'synchronous_commit')}, fsync=${await pgSetting('test', 'fsync')}`;
      if (kind === '2coord') durability += '; 2 coordinators, one agent on each, jobs submitted to the first';
      return durability;
    },
    async warm() {
      const j = await client.submitJob({ module: mod.hash, inputs: Array.from({ length: 200 }, () => PAYLOAD_B64) });
      const done = await waitJob(j.id);
      if (done.counts.succeeded !== 200) throw new Error(`warm-up: ${JSON.stringify(done.counts)}`);
    },
    async single(n) {
      const ids = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) ids.push((await client.submitJob({ module: mod.hash, inputs: [PAYLOAD_B64] })).id);
      const sec = (performance.now() - t0) / 1000;
      // drain them before the next phase
      for (const id of ids.slice(-20)) await waitJob(id);
      await until(async () => {
        const jobs = await client.listJobs({ state: 'queued', limit: 1 });
        const running = await client.listJobs({ state: 'running', limit: 1 });
        return jobs.length === 0 && running.length === 0;
      }, { what: 'single jobs drained' });
      return sec;
    },
    async bulk(n) {
      const t0 = performance.now();
      const job = await client.submitJob({ module: mod.hash, inputs: Array.from({ length: n }, () => PAYLOAD_B64) });
      const t1 = performance.now();
      const done = await waitJob(job.id);
      const t2 = performance.now();
      if (done.counts.succeeded !== n) throw new Error(`bulk: ${JSON.stringify(done.counts)}`);
      return { enqueueSec: (t1 - t0) / 1000, drainSec: (t2 - t1) / 1000, totalSec: (t2 - t0) / 1000 };
    },
    /** The result as a client gets it: one request, submit?wait=, answered when the job ends, results inline. */
    async latencyOne() {
      const t0 = performance.now();
      const job = await client.submitJob({ module: mod.hash, inputs: [PAYLOAD_B64] }, { wait: 10_000 });
      const t1 = performance.now();
      if (job.results?.[0]?.state !== 'succeeded') throw new Error(`latency task: ${JSON.stringify(job)}`);
      return { resultMs: t1 - t0, serverMs: (job.finishedAt ?? NaN) - job.createdAt };
    },
    /**
     * start: the job's updatedAt in the first event showing the task leased
     * (claim commit, coordinator clock). Sampled apart from latencyOne, so the
     * event stream's own work does not load the result samples.
     */
    async startOne() {
      const wall0 = Date.now();
      const job = await client.submitJob({ module: mod.hash, inputs: [PAYLOAD_B64] });
      let start;
      for await (const ev of client.events(job.id)) {
        if (start === undefined && ev.job.counts.leased > 0) start = ev.job.updatedAt;
        if (ev.type === 'end') break;
      }
      await client.waitForJob(job.id);
      return start === undefined ? NaN : start - wall0;
    },
    async kill(n) {
      const job = await client.submitJob({ module: mod.hash, inputs: Array.from({ length: n }, () => PAYLOAD_B64) });
      const victim = agents[0];
      let killAt;
      let lastProgress = Date.now();
      let lastDone = 0;
      const ctl = new AbortController();
      const watchdog = setInterval(() => { if (Date.now() - lastProgress > STUCK_MS) ctl.abort(new Error('stuck')); }, 1000);
      let final;
      try {
        final = await client.waitForJob(job.id, {
          signal: ctl.signal,
          onProgress: (j) => {
            const d = j.counts.succeeded + j.counts.failed;
            if (d !== lastDone) { lastDone = d; lastProgress = Date.now(); }
            if (killAt === undefined && j.counts.succeeded >= 0.3 * n) {
              killAt = Date.now();
              victim.kill('SIGKILL');
            }
          },
        });
      } catch {
        final = await client.getJob(job.id);
      } finally {
        clearInterval(watchdog);
      }
      const doneAt = Date.now();
      let succeeded = 0;
      let reLeased = 0;
      let recoveredAt = 0;
      const seen = new Map();
      for await (const r of client.allResults(job.id)) {
        seen.set(r.index, (seen.get(r.index) ?? 0) + 1);
        if (r.state === 'succeeded') succeeded++;
        if (r.attempts > 1) {
          reLeased++;
          if (r.state === 'succeeded') recoveredAt = Math.max(recoveredAt, r.finishedAt ?? 0);
        }
      }
      const duplicated = [...seen.values()].filter((c) => c > 1).length;
      return {
        killedAtDone: killAt === undefined ? null : 0.3,
        lost: n - succeeded,
        duplicated,
        // tasks whose lease moved to the surviving agent (upper bound on tasks executed twice; only one result each was accepted)
        reLeased,
        recoverySec: killAt && recoveredAt ? r3((recoveredAt - killAt) / 1000) : null,
        killToDoneSec: killAt ? r3((doneAt - killAt) / 1000) : null,
        finalState: final.state,
      };
    },
    async teardown() {
      for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill('SIGTERM');
      await Promise.race([Promise.all(agents.map(exited)), sleep(15_000)]);
      for (const a of agents) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
      for (const c of coords) if (c.exitCode === null) c.kill('SIGTERM');
      await Promise.race([Promise.all(coords.map(exited)), sleep(15_000)]);
      for (const c of coords) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      if (schema) await pgQuery('test', `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((e) => log('drop schema', e.message));
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- PostgreSQL helpers ------------------------------------------------------------

async function pgQuery(db, sql, params) {
  const { default: pg } = await import('pg');
  const c = new pg.Client(`${PG}/${db}`);
  await c.connect();
  try { return await c.query(sql, params); } finally { await c.end(); }
}
async function pgSetting(db, name) {
  return (await pgQuery(db, `SELECT current_setting($1) AS v`, [name])).rows[0].v;
}

// ---- BullMQ --------------------------------------------------------------------

function bullmqContender() {
  let queue;
  let events;
  let redis;
  let saved;
  const workers = [];
  const rec = recorder();
  const name = `compare-${randomBytes(4).toString('hex')}`;
  let bull;
  function startWorker() {
    const p = fork(join(here, 'compare/bullmq-worker.mjs'), [name, String(CONCURRENCY), REDIS.host, String(REDIS.port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    p.on('message', (m) => rec.on(m));
    workers.push(p);
    return new Promise((resolve, reject) => {
      p.on('message', (m) => { if (m.ev === 'ready') resolve(p); });
      p.once('exit', (c) => reject(new Error(`bullmq worker exited ${c}`)));
    });
  }
  const completed = async () => (await queue.getJobCounts('completed')).completed;
  return {
    name: 'bullmq',
    async setup() {
      bull = load('bullmq');
      const IORedis = load('ioredis');
      redis = new IORedis({ ...REDIS, maxRetriesPerRequest: null });
      const [, ao] = await redis.config('GET', 'appendonly');
      const [, af] = await redis.config('GET', 'appendfsync');
      saved = { appendonly: ao, appendfsync: af };
      await redis.config('SET', 'appendonly', 'yes');
      await redis.config('SET', 'appendfsync', 'everysec');
      // Turning AOF on rewrites the log in the background: wait for it.
      await until(async () => /aof_rewrite_in_progress:0/.test(await redis.info('persistence')) && /aof_enabled:1/.test(await redis.info('persistence')), { what: 'AOF rewrite', everyMs: 200 });
      const [, ao2] = await redis.config('GET', 'appendonly');
      const [, af2] = await redis.config('GET', 'appendfsync');
      const version = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
      log(`redis: appendonly ${saved.appendonly} -> ${ao2}, appendfsync ${saved.appendfsync} -> ${af2}`);
      queue = new bull.Queue(name, { connection: { ...REDIS } });
      events = new bull.QueueEvents(name, { connection: { ...REDIS } });
      await events.waitUntilReady();
      await Promise.all(Array.from({ length: WORKERS }, () => startWorker()));
      return `Redis ${version}: appendonly=${ao2}, appendfsync=${af2} (restored to ${saved.appendonly}/${saved.appendfsync} after)`;
    },
    async warm() {
      const before = await completed();
      await queue.addBulk(Array.from({ length: 200 }, () => ({ name: 'noop', data: PAYLOAD })));
      await until(async () => (await completed()) >= before + 200, { what: 'warm-up', everyMs: 20 });
    },
    async single(n) {
      const before = await completed();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await queue.add('noop', PAYLOAD);
      const sec = (performance.now() - t0) / 1000;
      await until(async () => (await completed()) >= before + n, { what: 'single drained' });
      return sec;
    },
    async bulk(n) {
      const before = await completed();
      const t0 = performance.now();
      for (let i = 0; i < n; i += 1000) {
        await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'noop', data: PAYLOAD })));
      }
      const t1 = performance.now();
      await until(async () => (await completed()) >= before + n, { what: 'bulk drained', everyMs: 50 });
      const t2 = performance.now();
      const failed = (await queue.getJobCounts('failed')).failed;
      if (failed) throw new Error(`bulk: ${failed} failed`);
      return { enqueueSec: (t1 - t0) / 1000, drainSec: (t2 - t1) / 1000, totalSec: (t2 - t0) / 1000 };
    },
    /** start: the job's processedOn (worker clock, ms); result: waitUntilFinished via QueueEvents (holds the return value). */
    async latencyOne() {
      const wall0 = Date.now();
      const t0 = performance.now();
      const job = await queue.add('noop', PAYLOAD);
      await job.waitUntilFinished(events, 30_000);
      const t1 = performance.now();
      const j = await bull.Job.fromId(queue, job.id);
      return { startMs: j.processedOn - wall0, resultMs: t1 - t0, serverMs: j.finishedOn - j.timestamp };
    },
    async kill(n) {
      rec.clear();
      const before = await completed();
      const victim = workers[0];
      const jobs = [];
      for (let i = 0; i < n; i += 1000) {
        jobs.push(...await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'noop', data: { ...PAYLOAD, rec: 1 } }))));
      }
      await until(async () => (await completed()) - before >= 0.3 * n, { what: '30 %', everyMs: 20 });
      const killAt = Date.now();
      victim.kill('SIGKILL');
      await exited(victim);
      await sleep(100); // let its last IPC messages arrive
      const inflight = await stuckIds(async () => (await queue.getActive()).map((j) => String(j.id)));
      let last = -1;
      let lastAt = Date.now();
      await until(async () => {
        const c = (await completed()) - before;
        if (c !== last) { last = c; lastAt = Date.now(); }
        return c >= n || Date.now() - lastAt > STUCK_MS;
      }, { what: 'kill run', timeoutMs: 3_600_000, everyMs: 100 });
      const doneAt = Date.now();
      const got = (await completed()) - before;
      const f = await killFigures(rec, inflight, async (id) => (await bull.Job.fromId(queue, id))?.finishedOn ?? undefined, killAt);
      return { killedAtDone: 0.3, lost: n - got, ...f, killToDoneSec: got >= n ? r3((doneAt - killAt) / 1000) : null };
    },
    async teardown() {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await Promise.race([Promise.all(workers.map(exited)), sleep(10_000)]);
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      if (events) await events.close();
      if (queue) { await queue.obliterate({ force: true }).catch((e) => log('obliterate', e.message)); await queue.close(); }
      if (redis && saved) {
        await redis.config('SET', 'appendfsync', saved.appendfsync);
        await redis.config('SET', 'appendonly', saved.appendonly);
        const [, ao] = await redis.config('GET', 'appendonly');
        const [, af] = await redis.config('GET', 'appendfsync');
        log(`redis restored: appendonly=${ao}, appendfsync=${af}`);
      }
      if (redis) await redis.quit();
    },
  };
}

// ---- graphile-worker ------------------------------------------------------------------

function graphileContender() {
  const db = 'bench_graphile';
  const conn = `${PG}/${db}`;
  let utils;
  let pool;
  const workers = [];
  const rec = recorder();
  function startWorker() {
    const p = fork(join(here, 'compare/graphile-worker.mjs'), [conn, String(CONCURRENCY)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    p.on('message', (m) => rec.on(m));
    workers.push(p);
    return new Promise((resolve, reject) => {
      p.on('message', (m) => { if (m.ev === 'ready') resolve(p); });
      p.once('exit', (c) => reject(new Error(`graphile worker exited ${c}`)));
    });
  }
  const remaining = async () => Number((await pool.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs')).rows[0].n);
  return {
    name: 'graphile-worker',
    async setup() {
      await pgQuery('test', `DROP DATABASE IF EXISTS ${db}`);
      await pgQuery('test', `CREATE DATABASE ${db}`);
      const gw = load('graphile-worker');
      const { default: pg } = await import('pg');
      await gw.runMigrations({ connectionString: conn, logger: new gw.Logger(() => () => {}) });
      utils = await gw.makeWorkerUtils({ connectionString: conn, logger: new gw.Logger(() => () => {}) });
      pool = new pg.Pool({ connectionString: conn, max: 2 });
      await Promise.all(Array.from({ length: WORKERS }, () => startWorker()));
      const version = (await pool.query('SHOW server_version')).rows[0].server_version;
      return `PostgreSQL ${version}: synchronous_commit=${await pgSetting(db, 'synchronous_commit')}, fsync=${await pgSetting(db, 'fsync')} (graphile-worker 0.17 defaults: no local queue, no completion batching)`;
    },
    async warm() {
      await utils.addJobs(Array.from({ length: 200 }, () => ({ identifier: 'noop', payload: PAYLOAD })));
      await until(async () => (await remaining()) === 0, { what: 'warm-up', everyMs: 20 });
    },
    async single(n) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await utils.addJob('noop', PAYLOAD);
      const sec = (performance.now() - t0) / 1000;
      await until(async () => (await remaining()) === 0, { what: 'single drained' });
      return sec;
    },
    async bulk(n) {
      const t0 = performance.now();
      for (let i = 0; i < n; i += 1000) {
        await utils.addJobs(Array.from({ length: Math.min(1000, n - i) }, () => ({ identifier: 'noop', payload: PAYLOAD })));
      }
      const t1 = performance.now();
      await until(async () => (await remaining()) === 0, { what: 'bulk drained', everyMs: 100 });
      const t2 = performance.now();
      return { enqueueSec: (t1 - t0) / 1000, drainSec: (t2 - t1) / 1000, totalSec: (t2 - t0) / 1000 };
    },
    /** start: Date.now() in the task handler (IPC); result: the producer sees the job row deleted (completion committed), polled every 1 ms. */
    async latencyOne() {
      const wall0 = Date.now();
      const t0 = performance.now();
      const job = await utils.addJob('noop', { ...PAYLOAD, rec: 1 });
      for (;;) {
        const r = await pool.query('SELECT 1 FROM graphile_worker._private_jobs WHERE id = $1', [job.id]);
        if (r.rowCount === 0) break;
        await sleep(1);
      }
      const t1 = performance.now();
      const start = await rec.wait('start', job.id);
      return { startMs: start.t - wall0, resultMs: t1 - t0, serverMs: NaN };
    },
    async kill(n) {
      rec.clear();
      const victim = workers[0];
      for (let i = 0; i < n; i += 1000) {
        await utils.addJobs(Array.from({ length: Math.min(1000, n - i) }, () => ({ identifier: 'noop', payload: { ...PAYLOAD, rec: 1 } })));
      }
      await until(async () => n - (await remaining()) >= 0.3 * n, { what: '30 %', everyMs: 20 });
      const killAt = Date.now();
      victim.kill('SIGKILL');
      await exited(victim);
      await sleep(100); // let its last IPC messages arrive
      const inflight = await stuckIds(async () => (await pool.query('SELECT id::text FROM graphile_worker._private_jobs WHERE locked_at IS NOT NULL')).rows.map((r) => r.id));
      let last = -1;
      let lastAt = Date.now();
      await until(async () => {
        const left = await remaining();
        if (left !== last) { last = left; lastAt = Date.now(); }
        return left === 0 || Date.now() - lastAt > STUCK_MS;
      }, { what: 'kill run', timeoutMs: 3_600_000, everyMs: 100 });
      const doneAt = Date.now();
      const left = await remaining();
      const locked = Number((await pool.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE locked_at IS NOT NULL')).rows[0].n);
      // A job is complete when its row is gone; the time is the other worker's handler end (graphile-worker keeps no finish time).
      const f = await killFigures(rec, inflight, async (id) => {
        const gone = (await pool.query('SELECT 1 FROM graphile_worker._private_jobs WHERE id = $1', [id])).rowCount === 0;
        return gone ? (rec.byId.get(id) ?? []).filter((e) => e.ev === 'done' && e.pid !== victim.pid).at(-1)?.t : undefined;
      }, killAt);
      return { killedAtDone: 0.3, lost: left, lockedByDeadWorker: locked, ...f, killToDoneSec: left === 0 ? r3((doneAt - killAt) / 1000) : null, gaveUpAfterIdleSec: left === 0 ? null : STUCK_MS / 1000 };
    },
    async teardown() {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await Promise.race([Promise.all(workers.map(exited)), sleep(10_000)]);
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      if (utils) await utils.release();
      if (pool) await pool.end();
      await pgQuery('test', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch((e) => log('drop db', e.message));
    },
  };
}

// ---- the run ---------------------------------------------------------------------

const factories = {
  'idlemesh-sqlite': () => idlemeshContender('sqlite'),
  'idlemesh-postgres': () => idlemeshContender('postgres'),
  'idlemesh-2coord': () => idlemeshContender('2coord'),
  bullmq: bullmqContender,
  'graphile-worker': graphileContender,
};

async function runOne(name) {
  const c = factories[name]();
  const out = { bench: 'compare', contender: name };
  // Other processes on the machine skew every figure: the load average when the contender starts and ends is printed.
  const load = { atStart: +loadavg()[0].toFixed(2) };
  try {
    log(`${name}: setup`);
    out.durability = await c.setup();
    out.tasks = TASKS;
    out.workers = { processes: WORKERS, concurrency: CONCURRENCY };
    await c.warm();
    log(`${name}: ${SINGLE} single submits`);
    const singleSec = await c.single(SINGLE);
    log(`${name}: bulk of ${TASKS}`);
    const b = await c.bulk(TASKS);
    out.enqueue = { singlePerSec: Math.round(SINGLE / singleSec), singleN: SINGLE, bulkPerSec: Math.round(TASKS / b.enqueueSec), bulkSec: r3(b.enqueueSec) };
    out.drainSec = r3(b.drainSec);
    out.tasksPerSec = Math.round(TASKS / b.totalSec);
    log(`${name}: ${REPS} latency samples`);
    const start = [];
    const result = [];
    const server = [];
    const cold = [];
    for (let i = 0; i < REPS + WARM; i++) {
      const s = await c.latencyOne();
      if (i < WARM) {
        // warms the JIT of every process on the path; the first jobs show what a fresh start costs
        if (i < 1000) cold.push(s.resultMs);
        continue;
      }
      if (s.startMs !== undefined) start.push(s.startMs);
      result.push(s.resultMs);
      server.push(s.serverMs);
    }
    if (c.startOne) for (let i = 0; i < REPS + 20; i++) {
      const ms = await c.startOne();
      if (i >= 20) start.push(ms);
    }
    out.submitToStartMs = pct(start);
    out.submitToResultMs = pct(result);
    if (cold.length > 0) out.coldSubmitToResultMs = pct(cold);
    const sv = pct(server);
    if (sv.n > 0) out.serverSubmitToDoneMs = sv;
    log(`${name}: kill run of ${KILL_TASKS}`);
    out.kill = { tasks: KILL_TASKS, ...(await c.kill(KILL_TASKS)) };
  } catch (err) {
    log(`${name}: ${err.stack ?? err}`);
    const partial = { ...out };
    delete partial.bench; delete partial.contender;
    return { bench: 'compare', contender: name, skipped: String(err.message ?? err).slice(0, 500), ...(Object.keys(partial).length ? { partial } : {}), machine: machine() };
  } finally {
    await c.teardown().catch((e) => log(`${name}: teardown: ${e.message}`));
  }
  load.atEnd = +loadavg()[0].toFixed(2);
  out.machine = { ...machine(), loadavg1: load };
  return out;
}

const results = [];
for (const name of ONLY) {
  if (!factories[name]) { console.error(`unknown contender ${name}; choose from ${ALL.join(',')}`); process.exit(2); }
  const r = await runOne(name);
  results.push(r);
  console.log(JSON.stringify(r));
}
console.log(JSON.stringify({
  bench: 'compare-summary',
  tasks: TASKS,
  workers: { processes: WORKERS, concurrency: CONCURRENCY },
  rows: results.map((r) => r.skipped ? { contender: r.contender, skipped: r.skipped } : {
    contender: r.contender, tasksPerSec: r.tasksPerSec, drainSec: r.drainSec, singlePerSec: r.enqueue.singlePerSec, bulkPerSec: r.enqueue.bulkPerSec,
    startP50: r.submitToStartMs.p50, resultP50: r.submitToResultMs.p50, resultP99: r.submitToResultMs.p99, lost: r.kill.lost, duplicated: r.kill.duplicated, recoverySec: r.kill.recoverySec,
  }),
  machine: machine(),
}));
