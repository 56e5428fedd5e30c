import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { verifyReceiptDocument } from '@idlemesh/protocol';
import type { ReceiptDocument } from '@idlemesh/protocol';
import { b64, example, fromB64, metric, runCli, startAgentProc, startCoordinatorProc, tempDir, waitForNodes } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

describe('a mesh of one coordinator and two agent processes', () => {
  const dir = tempDir('mesh');
  let coord: CoordinatorProc;
  const agents: Proc[] = [];

  before(async () => {
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
    for (const i of [1, 2]) agents.push(startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent${i}`, name: `agent${i}` }));
    await waitForNodes(coord.client, 2);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await coord.stop();
    dir.remove();
  });

  it('runs a 1,000-task sha256 job with every output correct', async () => {
    const inputs = Array.from({ length: 1000 }, (_, i) => randomBytes(i % 300));
    const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
    assert.equal(mod.abi, 'idlemesh/1');
    const job = await coord.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), name: 'sha256 x1000' });
    assert.equal(job.counts.total, 1000);
    const done = await coord.client.waitForJob(job.id);
    assert.equal(done.state, 'completed');
    assert.equal(done.counts.succeeded, 1000);
    let n = 0;
    let fuel = 0;
    for await (const r of coord.client.allResults(job.id)) {
      assert.equal(r.state, 'succeeded');
      const input = inputs[r.index];
      assert.ok(input);
      assert.equal(fromB64(r.output), createHash('sha256').update(input).digest('hex'), `task ${r.index}`);
      assert.ok((r.fuel ?? 0) > 0, 'metered fuel is reported');
      fuel += r.fuel ?? 0;
      n++;
    }
    assert.equal(n, 1000);
    assert.equal(done.fuelUsed, fuel, 'job fuel is the sum of accepted results');

    const nodes = await coord.client.nodes();
    assert.equal(nodes.length, 2);
    assert.equal(nodes.reduce((s, x) => s + x.completed, 0), 1000);
    assert.ok(nodes.every((x) => x.completed > 0), 'both agents did work');
    assert.ok(nodes.every((x) => x.capabilities.benchmark.fuelPerSec > 0), 'agents report a calibration score');

    const text = await (await fetch(`${coord.url}/metrics`)).text();
    assert.equal(metric(text, 'idlemesh_task_outcomes_total', { status: 'accepted' }), 1000);
    assert.equal(metric(text, 'idlemesh_agents_connected'), 2);
    // Every results batch is timed through its signature check, its receipts and its transaction; the submit once.
    const batches = metric(text, 'idlemesh_result_batch_size_count');
    assert.ok(batches >= 1);
    for (const step of ['signature', 'receipts', 'results']) {
      assert.equal(metric(text, 'idlemesh_job_path_step_seconds_count', { step }), batches, `${step} timed once a batch`);
      assert.ok(metric(text, 'idlemesh_job_path_step_seconds_sum', { step }) > 0);
    }
    assert.ok(metric(text, 'idlemesh_job_path_step_seconds_count', { step: 'submit' }) >= 1);
  });

  it('gives the same fuel for the same input on any agent', async () => {
    const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
    const job = await coord.client.submitJob({ module: mod.hash, inputs: Array.from({ length: 64 }, () => b64('same input')) });
    await coord.client.waitForJob(job.id);
    const fuels = new Set<number>();
    const nodes = new Set<string>();
    for await (const r of coord.client.allResults(job.id)) {
      fuels.add(r.fuel ?? -1);
      if (r.nodeId) nodes.add(r.nodeId);
    }
    assert.equal(fuels.size, 1, `fuel differs between runs: ${[...fuels].join(', ')}`);
  });

  it('cancels a running job: its tasks stop and the agents are free again', async () => {
    const mod = await coord.client.uploadModule(example('nbody/nbody.wasm'));
    const job = await coord.client.submitJob({ module: mod.hash, inputs: Array.from({ length: 2000 }, () => b64('50000')) });
    const start = Date.now();
    while ((await coord.client.getJob(job.id)).counts.succeeded < 3 && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 20));
    const cancelled = await coord.client.cancelJob(job.id);
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(cancelled.counts.queued + cancelled.counts.leased, 0);
    assert.ok(cancelled.counts.cancelled > 0);
    assert.equal((await coord.client.waitForJob(job.id)).state, 'cancelled');
    // The agents drop the revoked tasks and take new work at once.
    const noop = await coord.client.uploadModule(example('noop/noop.wasm'));
    const next = await coord.client.submitJob({ module: noop.hash, inputs: [b64('after cancel')] });
    assert.equal((await coord.client.waitForJob(next.id)).counts.succeeded, 1);
    const late = await coord.client.getJob(job.id);
    assert.equal(late.counts.succeeded, cancelled.counts.succeeded, 'no result is accepted for a cancelled task');
  });

  it('answers submit?wait= with the results, and keeps a receipt per result that verifies offline', async () => {
    const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
    const inputs = ['alpha', 'beta', 'gamma'];
    const job = await coord.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)) }, { wait: 20_000 });
    assert.equal(job.state, 'completed');
    assert.deepEqual(job.results?.map((r) => fromB64(r.output)), inputs.map((x) => createHash('sha256').update(x).digest('hex')));
    assert.equal(job.next, null);

    const key = ((await (await fetch(`${coord.url}/v1/receipts/key`)).json()) as { publicKey: string }).publicKey;
    const doc = (await (await fetch(`${coord.url}/v1/jobs/${job.id}/tasks/1/receipt`)).json()) as ReceiptDocument;
    const r1 = job.results?.[1];
    assert.equal(doc.receipt.task, `${job.id}/1`);
    assert.equal(doc.receipt.node, r1?.nodeId);
    assert.equal(doc.receipt.fuel, r1?.fuel);
    assert.equal(doc.receipt.inputHash, createHash('sha256').update('beta').digest('hex'));
    assert.equal(doc.receipt.outputHash, createHash('sha256').update(Buffer.from(r1?.output ?? '', 'base64')).digest('hex'));
    assert.equal(doc.coordinator.publicKey, key);
    assert.ok((await verifyReceiptDocument(doc, { coordinatorKey: key })).ok);
    assert.equal((await fetch(`${coord.url}/v1/jobs/${job.id}/tasks/9/receipt`)).status, 404);

    // The CLI checks it fetched, from a file, and refuses a copy with inflated effort.
    const saved = `${dir.path}/receipt.json`;
    const fetched = runCli('audit', ['--coordinator', coord.url, 'audit', 'receipt', '--task', `${job.id}/1`, '--save', saved, '--coordinator-key', key, '--json']);
    assert.equal(await fetched.wait(), 0, fetched.text);
    assert.equal((JSON.parse(fetched.text) as { ok: boolean }).ok, true);
    const forged = `${dir.path}/forged.json`;
    writeFileSync(forged, JSON.stringify({ ...doc, receipt: { ...doc.receipt, fuel: doc.receipt.fuel * 2 } }));
    const bad = runCli('audit', ['audit', 'receipt', forged]);
    assert.equal(await bad.wait(), 1, bad.text);
    assert.match(bad.text, /FAIL inclusion/);
    assert.match(bad.text, /IM_RECEIPT_INVALID/);
  });

  it('serves an OpenAPI document that lists the job routes', async () => {
    const doc = (await (await fetch(`${coord.url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths['/v1/jobs']);
    assert.ok(doc.paths['/v1/jobs/{id}/results']);
  });

  it('answers a repeated submit with the same idempotency key with the same job', async () => {
    const mod = await coord.client.uploadModule(example('noop/noop.wasm'));
    const body = { module: mod.hash, inputs: [b64('x')] };
    const a = await coord.client.submitJob(body, { idempotencyKey: 'same-key' });
    const b = await coord.client.submitJob(body, { idempotencyKey: 'same-key' });
    assert.equal(a.id, b.id);
    await assert.rejects(coord.client.submitJob({ ...body, inputs: [b64('y')] }, { idempotencyKey: 'same-key' }),
      (e: unknown) => (e as { code?: string }).code === 'IM_IDEMPOTENCY_CONFLICT');
  });
});
