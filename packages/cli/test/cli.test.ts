import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, fakeServer, HASH, job, JOB_ID, result, sendJson } from './helpers.js';

const HELP: Record<string, string[]> = {
  '': ['--coordinator', 'up', 'coordinator', 'agent', 'submit', 'jobs', 'job', 'cancel', 'nodes'],
  up: ['--port', '--data-dir', '--agents', '--no-demo', '--exit-after-demo', '--json'],
  coordinator: ['--host', '--port', '--data-dir', '--store', '--config', '--lease-ms', '--heartbeat-ms', '--log-level'],
  agent: ['--coordinator', '--data-dir', '--key-file', '--max-tasks', '--max-memory', '--hours', '--only-when-idle', '--only-when-charging', '--power-supply-path', '--name', '--config', '--log-level', '--json'],
  submit: ['<module.wasm>', '--inputs', '--fuel', '--memory-mb', '--timeout-ms', '--bid', '--max-attempts', '--name', '--priority', '--idempotency-key', '--detach', '--out', '--json'],
  jobs: ['--state', '--limit', '--json'],
  job: ['<id>', '--results', '--out', '--watch', '--json'],
  cancel: ['<id>', '--json'],
  nodes: ['--json', '--coordinator'],
};

void test('--help of every command exits 0 and lists its options', async () => {
  await Promise.all(Object.entries(HELP).map(async ([command, words]) => {
    const r = await cli(command === '' ? ['--help'] : [command, '--help']);
    assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
    for (const w of words) assert.ok(r.stdout.includes(w), `${command || 'idlemesh'} --help mentions ${w}`);
  }));
});

void test('an unknown flag, argument or command exits 2 with IM_CLI_USAGE', async () => {
  const cases = [['jobs', '--bogus'], ['submit', 'm.wasm', '--inputs', 'i.jsonl', '--nope'], ['nodes', 'extra'], ['frobnicate'], ['jobs', '--limit', 'ten'], ['jobs', '--state', 'weird']];
  for (const args of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^error IM_CLI_USAGE: /m, args.join(' '));
    assert.equal(r.stdout, '');
  }
  const j = await cli(['jobs', '--json', '--bogus']);
  assert.equal(j.code, 2);
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'IM_CLI_USAGE');
});

void test('submit with a missing module or a bad inputs file fails clearly before any request', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 500, {}));
  const dir = await mkdtemp(join(tmpdir(), 'im-cli-'));
  try {
    const missing = await cli(['submit', join(dir, 'nope.wasm'), '--inputs', join(dir, 'in.jsonl'), '--coordinator', srv.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error IM_INPUT_INVALID: cannot read module file .*nope\.wasm: no such file$/m);

    await writeFile(join(dir, 'm.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(join(dir, 'in.jsonl'), '"ok"\n{oops\n');
    const bad = await cli(['submit', join(dir, 'm.wasm'), '--inputs', join(dir, 'in.jsonl'), '--coordinator', srv.url]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error IM_INPUT_INVALID: .*in\.jsonl line 2: not valid JSON/m);
    assert.equal(srv.requests.length, 0, 'nothing was sent');
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});

void test('jobs --json prints the coordinator job list as one JSON document; jobs prints a table', async () => {
  const jobs = [job({ counts: { total: 5, queued: 1, leased: 1, succeeded: 2, failed: 1, cancelled: 0 } }), job({ id: 'job_zzzzzzzzzzzzzzzzzzzz', state: 'queued', name: 'second' })];
  const srv = await fakeServer((req, res) => sendJson(res, 200, req.url.startsWith('/v1/jobs') ? { jobs } : {}));
  try {
    const r = await cli(['jobs', '--json', '--state', 'running', '--limit', '5'], { env: { IDLEMESH_COORDINATOR: srv.url } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { jobs });
    assert.equal(srv.requests[0]?.url, '/v1/jobs?state=running&limit=5');

    const t = await cli(['--coordinator', srv.url, 'jobs']);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ID\s+STATE\s+DONE\/TOTAL\s+FAILED\s+AGE\s+NAME$/);
    assert.match(lines[1] ?? '', new RegExp(`^${JOB_ID}\\s+running\\s+3/5\\s+1\\s+\\S+ ago\\s+demo$`));
    assert.match(lines[2] ?? '', /^job_z+\s+queued\s+0\/5\s+0\s+.*second$/);
  } finally {
    await srv.close();
  }
});

void test('a coordinator that is not there: exit 1 with IM_CONNECTION_FAILED (and a JSON error with --json)', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 200, {}));
  const url = srv.url;
  await srv.close();
  const r = await cli(['nodes', '--json', '--coordinator', url]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^error IM_CONNECTION_FAILED: could not reach ${url.replace(/\./g, '\\.')}`, 'm'));
  const body = JSON.parse(r.stdout) as { error: { code: string; retryable: boolean } };
  assert.equal(body.error.code, 'IM_CONNECTION_FAILED');
  assert.equal(body.error.retryable, true);
});

void test('a coordinator error body is printed with its code', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 404, { error: { code: 'IM_NOT_FOUND', message: 'no job job_missingmissingmissing', retryable: false } }));
  try {
    const r = await cli(['cancel', 'job_missingmissingmissing', '--coordinator', srv.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error IM_NOT_FOUND: no job job_missingmissingmissing$/m);
    assert.equal(srv.requests[0]?.method, 'POST');
    assert.equal(srv.requests[0]?.url, '/v1/jobs/job_missingmissingmissing/cancel');
  } finally {
    await srv.close();
  }
});

/** A fake coordinator for one job of 3 tasks, the last of which fails. */
async function fakeCoordinator() {
  const final = job({ state: 'completed', counts: { total: 3, queued: 0, leased: 0, succeeded: 2, failed: 1, cancelled: 0 }, fuelUsed: 21, finishedAt: 1_700_000_001_000 });
  const results = [result(0), result(1), { index: 2, state: 'failed' as const, fuel: 0, attempts: 3, error: { code: 'IM_TRAP', message: 'unreachable', retryable: false } }];
  return fakeServer(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/v1/modules') {
      sendJson(res, 201, { hash: HASH, instrumentedHash: 'b'.repeat(64), size: 8, instrumentedSize: 9, abi: 'idlemesh/1', memory: { initialPages: 1, maxPages: 1 }, createdAt: 1 });
    } else if (u.pathname === '/v1/jobs') {
      sendJson(res, 201, job({ counts: { total: 3, queued: 3, leased: 0, succeeded: 0, failed: 0, cancelled: 0 } }));
    } else if (u.pathname.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: progress\ndata: ${JSON.stringify({ type: 'progress', job: job({ counts: { total: 3, queued: 1, leased: 1, succeeded: 1, failed: 0, cancelled: 0 } }) })}\n\n`);
      await new Promise((r) => setTimeout(r, 20));
      res.end(`event: end\ndata: ${JSON.stringify({ type: 'end', job: final })}\n\n`);
    } else if (u.pathname.endsWith('/results')) {
      const after = Number(u.searchParams.get('after'));
      const page = results.filter((r) => r.index > after).slice(0, 2);
      sendJson(res, 200, { results: page, next: after === -1 ? 1 : null });
    } else if (u.pathname === `/v1/jobs/${JOB_ID}`) {
      sendJson(res, 200, final);
    } else {
      sendJson(res, 404, { error: { code: 'IM_ROUTE_NOT_FOUND', message: 'no route', retryable: false } });
    }
  });
}

void test('submit uploads, submits, follows and prints JSON-line results; exit 1 when a task failed', async () => {
  const srv = await fakeCoordinator();
  const dir = await mkdtemp(join(tmpdir(), 'im-cli-'));
  try {
    await writeFile(join(dir, 'm.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(join(dir, 'in.jsonl'), '"abc"\n\n{"hex":"00ff"}\n{"n":1}\n');
    const r = await cli(['submit', join(dir, 'm.wasm'), '--inputs', join(dir, 'in.jsonl'), '--fuel', '1000', '--name', 'n1', '--idempotency-key', 'k-9', '--json', '--coordinator', srv.url]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [l.index, l.state, l.outputText]), [[0, 'succeeded', 'out0'], [1, 'succeeded', 'out1'], [2, 'failed', null]]);
    assert.deepEqual(Object.keys(lines[0] ?? {}), ['index', 'state', 'output', 'outputText', 'fuel', 'error']);
    assert.deepEqual((lines[2]?.error as { code: string }).code, 'IM_TRAP');
    assert.match(r.stderr, /2 succeeded, 1 failed/);

    const upload = srv.requests.find((q) => q.url === '/v1/modules');
    assert.equal(upload?.headers['content-type'], 'application/wasm');
    const submit = srv.requests.find((q) => q.url === '/v1/jobs');
    assert.equal(submit?.headers['idempotency-key'], 'k-9');
    const body = JSON.parse(submit?.body.toString() ?? '{}') as { inputs: string[]; limits: unknown; name: string; module: string };
    assert.deepEqual(body.inputs, [Buffer.from('abc').toString('base64'), 'AP8=', Buffer.from('{"n":1}').toString('base64')]);
    assert.deepEqual(body.limits, { fuel: 1000 });
    assert.equal(body.name, 'n1');
    assert.equal(body.module, HASH);
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});

void test('submit --out writes JSON lines to the file and prints a summary; readable results otherwise', async () => {
  const srv = await fakeCoordinator();
  const dir = await mkdtemp(join(tmpdir(), 'im-cli-'));
  try {
    await writeFile(join(dir, 'm.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    await writeFile(join(dir, 'in.jsonl'), '"a"\n"b"\n"c"\n');
    const outFile = join(dir, 'results.jsonl');
    const r = await cli(['submit', join(dir, 'm.wasm'), '--inputs', join(dir, 'in.jsonl'), '--out', outFile, '--coordinator', srv.url]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /wrote 3 results to .*results\.jsonl: 2 succeeded, 1 failed/);
    const written = (await readFile(outFile, 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as { index: number });
    assert.deepEqual(written.map((l) => l.index), [0, 1, 2]);

    const plain = await cli(['job', JOB_ID, '--results', '--coordinator', srv.url]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^#0 succeeded out0 \(10 fuel\)$/m);
    assert.match(plain.stdout, /^#2 failed IM_TRAP: unreachable \(0 fuel\)$/m);
    assert.match(plain.stdout, /progress\s+3\/3 done/);
  } finally {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  }
});
