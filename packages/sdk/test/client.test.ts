import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { IdlemeshClient } from '../src/index.js';
import { fakeServer, job, JOB_ID, result, sendJson, HASH } from './helpers.js';

void test('a 404 error body becomes an ImError with its code, message and status', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 404, { error: { code: 'IM_NOT_FOUND', message: `no job ${JOB_ID}`, retryable: false } }));
  try {
    const client = new IdlemeshClient({ url: srv.url });
    const err = await client.getJob(JOB_ID).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ImError, 'rejects with an ImError');
    assert.equal(err.code, 'IM_NOT_FOUND');
    assert.equal(err.status, 404);
    assert.equal(err.message, `no job ${JOB_ID}`);
    assert.equal(srv.requests[0]?.url, `/v1/jobs/${JOB_ID}`);
  } finally {
    await srv.close();
  }
});

void test('a non-idlemesh error page maps by status; a wrong-shaped 200 is refused', async () => {
  const srv = await fakeServer((req, res) => {
    if (req.url === '/v1/nodes') {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    } else {
      sendJson(res, 200, { jobs: [{ id: 'nope' }] });
    }
  });
  try {
    const client = new IdlemeshClient({ url: srv.url });
    await assert.rejects(client.nodes(), (e: unknown) => e instanceof ImError && e.code === 'IM_UNAVAILABLE' && e.status === 502 && e.message.includes('bad gateway'));
    await assert.rejects(client.listJobs(), (e: unknown) => e instanceof ImError && e.code === 'IM_PROTOCOL_VERSION' && e.message.includes('jobs.0'));
  } finally {
    await srv.close();
  }
});

void test('a network failure is IM_CONNECTION_FAILED naming the URL', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 200, {}));
  const url = srv.url;
  await srv.close(); // nothing listens on this port now
  const client = new IdlemeshClient({ url });
  await assert.rejects(client.info(), (e: unknown) => {
    assert.ok(e instanceof ImError);
    assert.equal(e.code, 'IM_CONNECTION_FAILED');
    assert.match(e.message, new RegExp(`^could not reach ${url.replace(/\./g, '\\.')}.*: .*ECONNREFUSED`));
    assert.equal(e.retryable, true);
    return true;
  });
});

void test('a coordinator that does not answer in time is IM_CONNECTION_FAILED', async () => {
  const srv = await fakeServer(() => { /* never answers */ });
  try {
    const client = new IdlemeshClient({ url: srv.url, timeoutMs: 100 });
    await assert.rejects(client.info(), (e: unknown) => e instanceof ImError && e.code === 'IM_CONNECTION_FAILED' && /within 100 ms/.test(e.message));
  } finally {
    await srv.close();
  }
});

void test('uploadModule sends application/wasm bytes; submitJob sends JSON and the Idempotency-Key header', async () => {
  const info = { hash: HASH, instrumentedHash: 'b'.repeat(64), size: 4, instrumentedSize: 8, abi: 'idlemesh/1', memory: { initialPages: 1, maxPages: 16 }, createdAt: 1 };
  const srv = await fakeServer((req, res) => {
    if (req.url === '/v1/modules') sendJson(res, 201, info);
    else sendJson(res, 201, job());
  });
  try {
    const client = new IdlemeshClient({ url: `${srv.url}/`, apiKey: 'k1' });
    const mod = await client.uploadModule(new Uint8Array([0, 0x61, 0x73, 0x6d]));
    assert.deepEqual(mod, info);
    const up = srv.requests[0];
    assert.equal(up?.method, 'POST');
    assert.equal(up.headers['content-type'], 'application/wasm');
    assert.equal(up.headers.authorization, 'Bearer k1');
    assert.deepEqual([...up.body], [0, 0x61, 0x73, 0x6d]);

    const j = await client.submitJob({ module: HASH, inputs: ['aGk='], limits: { fuel: 5 } }, { idempotencyKey: 'key-1' });
    assert.equal(j.id, JOB_ID);
    const sub = srv.requests[1];
    assert.equal(sub?.url, '/v1/jobs');
    assert.equal(sub.headers['idempotency-key'], 'key-1');
    assert.equal(sub.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(sub.body.toString()), { module: HASH, runtime: 'wasm', inputs: ['aGk='], limits: { fuel: 5 } });
  } finally {
    await srv.close();
  }
});

void test('submitJob refuses an invalid body before sending it', async () => {
  const srv = await fakeServer((_req, res) => sendJson(res, 201, job()));
  try {
    const client = new IdlemeshClient({ url: srv.url });
    await assert.rejects(client.submitJob({ module: HASH, inputs: [] }), (e: unknown) => e instanceof ImError && e.code === 'IM_VALIDATION' && e.message.includes('inputs'));
    assert.equal(srv.requests.length, 0);
  } finally {
    await srv.close();
  }
});

void test('allResults follows pages until next is null', async () => {
  const srv = await fakeServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const after = Number(u.searchParams.get('after'));
    const all = [0, 1, 2, 3, 4].map(result);
    const page = all.filter((r) => r.index > after).slice(0, 2);
    const last = page.at(-1);
    sendJson(res, 200, { results: page, next: last !== undefined && last.index < 4 ? last.index : null });
  });
  try {
    const client = new IdlemeshClient({ url: srv.url });
    const seen: number[] = [];
    for await (const r of client.allResults(JOB_ID, { state: 'succeeded' })) seen.push(r.index);
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.deepEqual(srv.requests.map((r) => new URL(r.url, 'http://x').searchParams.get('after')), ['-1', '1', '3']);
    assert.ok(srv.requests.every((r) => r.url.includes('state=succeeded')));
  } finally {
    await srv.close();
  }
});

void test('events parses an SSE stream split at awkward chunk boundaries', async () => {
  const frames = [
    ': keep-alive\r\n\r\n',
    `event: progress\r\ndata: ${JSON.stringify({ type: 'progress', job: job({ name: 'naïve ✓ job' }) })}\r\n\r\n`,
    `event: progress\ndata: ${JSON.stringify({ type: 'progress', job: job({ counts: { total: 5, queued: 2, leased: 0, succeeded: 3, failed: 0, cancelled: 0 } }) })}\n\n`,
    `event: end\ndata: ${JSON.stringify({ type: 'end', job: job({ state: 'completed' }) })}\n\n`,
    `event: progress\ndata: ${JSON.stringify({ type: 'progress', job: job() })}\n\n`, // after end: must not be yielded
  ];
  const bytes = Buffer.from(frames.join(''));
  const srv = await fakeServer(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // 7-byte chunks split CRLF pairs and multi-byte characters.
    for (let i = 0; i < bytes.length; i += 7) {
      res.write(bytes.subarray(i, i + 7));
      if (i % 70 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    res.end();
  });
  try {
    const client = new IdlemeshClient({ url: srv.url });
    const events = [];
    for await (const ev of client.events(JOB_ID)) events.push(ev);
    assert.deepEqual(events.map((e) => e.type), ['progress', 'progress', 'end']);
    assert.equal(events[0]?.job.name, 'naïve ✓ job');
    assert.equal(events[1]?.job.counts.succeeded, 3);
    assert.equal(events[2]?.job.state, 'completed');
    assert.equal(srv.requests[0]?.headers.accept, 'text/event-stream');
  } finally {
    await srv.close();
  }
});

void test('waitForJob falls back to polling when the event stream breaks', async () => {
  let polls = 0;
  const srv = await fakeServer((req, res) => {
    if (req.url.endsWith('/events')) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ type: 'progress', job: job() })}\n\n`);
      setTimeout(() => res.destroy(), 20); // connection drops mid-stream
      return;
    }
    polls++;
    sendJson(res, 200, polls < 2 ? job() : job({ state: 'completed', finishedAt: 2 }));
  });
  try {
    const client = new IdlemeshClient({ url: srv.url });
    const progress: string[] = [];
    const done = await client.waitForJob(JOB_ID, { onProgress: (j) => progress.push(j.state) });
    assert.equal(done.state, 'completed');
    assert.equal(polls, 2);
    assert.deepEqual(progress, ['running', 'running', 'completed']);
  } finally {
    await srv.close();
  }
});

void test('waitForJob can be aborted', async () => {
  const srv = await fakeServer((req, res) => {
    if (req.url.endsWith('/events')) sendJson(res, 404, { error: { code: 'IM_ROUTE_NOT_FOUND', message: 'no', retryable: false } });
    else sendJson(res, 200, job());
  });
  try {
    const client = new IdlemeshClient({ url: srv.url });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error('stop')), 50);
    await assert.rejects(client.waitForJob(JOB_ID, { signal: ctl.signal }), /stop/);
  } finally {
    await srv.close();
  }
});
