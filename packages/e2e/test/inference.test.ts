/**
 * The OpenAI-compatible API end to end, with the official `openai` client:
 * a real coordinator, nodes serving a model over the real agent protocol
 * (scripted answers, see fake-model-agent.ts), streaming and not, failover
 * before the first chunk, errors in OpenAI's shape, and usage billed through
 * the ledger at the serving node's ask.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { FUEL_PER_EU, FUEL_PER_TOKEN } from '@idlemesh/protocol';
import { FakeModelAgent } from './fake-model-agent.js';
import { runCli, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc } from './helpers.js';

const API_KEY = 'any-token-on-an-open-local-mesh';

describe('OpenAI-compatible API', () => {
  const dir = tempDir('inference');
  let coord: CoordinatorProc;
  let openai: OpenAI;
  const nodes: FakeModelAgent[] = [];

  before(async () => {
    // No honesty checks here: they would lease extra score tasks to the scripted nodes (inference-check.test.ts covers them).
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--inference-check-rate', '0'] });
    openai = new OpenAI({ baseURL: `${coord.url}/v1`, apiKey: API_KEY, maxRetries: 0 });
    nodes.push(await new FakeModelAgent({ url: coord.url, model: 'tiny' }).start());
    await waitUntil(async () => (await openai.models.list()).data.some((m) => m.id === 'tiny'));
  });
  after(async () => {
    for (const n of nodes) n.close();
    await coord.stop();
    dir.remove();
  });

  it('lists the models agents serve and answers chat completions, streamed and not, the same', async () => {
    const models = await openai.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['tiny']);
    const messages = [{ role: 'user' as const, content: 'hi' }];
    const plain = await openai.chat.completions.create({ model: 'tiny', messages, temperature: 0 });
    assert.equal(plain.object, 'chat.completion');
    assert.equal(plain.choices[0]?.message.content, 'Hello from the mesh.');
    assert.equal(plain.choices[0]?.finish_reason, 'stop');
    assert.equal(plain.usage?.total_tokens, 12);

    const stream = await openai.chat.completions.create({ model: 'tiny', messages, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, plain.choices[0]?.message.content);
    assert.equal(finish, 'stop');
    assert.equal(usage?.completion_tokens, 5);

    const legacy = await openai.completions.create({ model: 'tiny', prompt: 'Say hello', max_tokens: 8 });
    assert.equal(legacy.choices[0]?.text, 'Hello from the mesh.');

    // Every request is a job of one llm task, with the node's signed receipt like any task.
    const jobs = await coord.client.listJobs({ limit: 10 });
    const done = jobs.filter((j) => j.runtime === 'llm');
    assert.equal(done.length, 3);
    assert.ok(done.every((j) => j.state === 'completed' && j.fuelUsed === 12 * FUEL_PER_TOKEN));
    const receipt = await (await fetch(`${coord.url}/v1/jobs/${done[0]!.id}/tasks/0/receipt`)).json() as { receipt: { runtime: string; node: string } };
    assert.equal(receipt.receipt.runtime, 'llm');
    assert.equal(receipt.receipt.node, nodes[0]!.nodeId);
  });

  it('answers in OpenAI error shapes: unknown model, bad requests, llm jobs submitted directly', async () => {
    await assert.rejects(openai.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
    await assert.rejects(openai.chat.completions.create({ model: 'tiny', messages: [] }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && e.param === 'messages');
    await assert.rejects(openai.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], n: 2 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 400 && e.param === 'n');
    const raw = await fetch(`${coord.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[1,2]' });
    assert.equal(raw.status, 400);
    const body = await raw.json() as { error: { type: string; message: string; param: unknown; code: unknown } };
    assert.equal(body.error.type, 'invalid_request_error');
    assert.ok('param' in body.error && 'code' in body.error, 'OpenAI shape');
    const direct = await fetch(`${coord.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ module: 'a'.repeat(64), runtime: 'llm', inputs: ['e30='] }) });
    assert.equal(direct.status, 400);
  });

  it('fails over to another node when the first dies before its first chunk', async () => {
    const dying = await new FakeModelAgent({ url: coord.url, model: 'flaky' , dieOnLease: true }).start();
    await waitUntil(async () => (await openai.models.list()).data.some((m) => m.id === 'flaky'));
    const healthy = await new FakeModelAgent({ url: coord.url, model: 'flaky', words: ['still', ' here'], ask: 5 }).start();
    nodes.push(dying, healthy);
    await waitUntil(async () => (await openai.models.list()).data.find((m) => m.id === 'flaky') !== undefined
      && ((await openai.models.list()).data.find((m) => m.id === 'flaky') as unknown as { hosts: number }).hosts === 2);
    // The free node (ask 0) is tried first, dies on the lease; the paid one answers.
    const r = await openai.chat.completions.create({ model: 'flaky', messages: [{ role: 'user', content: 'x' }], stream: true });
    let text = '';
    for await (const c of r) text += c.choices[0]?.delta.content ?? '';
    assert.equal(text, 'still here');
    assert.equal(dying.leases.length, 1);
    assert.equal(healthy.leases.length, 1);
  });

  it('bills usage at the serving node\'s ask through the ledger, and refuses a buyer who cannot pay', async () => {
    const paid = await new FakeModelAgent({ url: coord.url, model: 'pricey', ask: 2_000_000 }).start();
    nodes.push(paid);
    await waitUntil(async () => (await openai.models.list()).data.some((m) => m.id === 'pricey'));
    // The hold covers the whole context at the ask; an empty account cannot.
    await assert.rejects(openai.chat.completions.create({ model: 'pricey', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 402);
      assert.equal(e.code, 'insufficient_quota');
      return true;
    });
    // The lease went out ahead of the hold (for latency): it is taken back, and no job or charge is left of it.
    await waitUntil(() => paid.revoked.length === 1);
    assert.equal(paid.revoked[0], paid.leases[0]?.taskId);
    assert.equal((await coord.client.listJobs({ limit: 100 })).filter((j) => j.id === paid.leases[0]?.jobId).length, 0);
    // On an open local mesh a Bearer token still names the buyer: key:<sha256 prefix>.
    const buyer = `buyer:key:${createHash('sha256').update(API_KEY).digest('hex').slice(0, 32)}`;
    await coord.client.devFund({ account: buyer, sats: 100_000 });
    const before = BigInt((await coord.client.account(buyer)).account.balanceMsat);
    const r = await openai.chat.completions.create({ model: 'pricey', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.choices[0]?.message.content, 'Hello from the mesh.');
    // 12 tokens × weight 1 × 1e6 fuel/token at 2,000,000 msat/EU, plus the coordinator and pool fees (5 % each).
    const charge = (12n * BigInt(FUEL_PER_TOKEN) * 2_000_000n) / BigInt(FUEL_PER_EU);
    await waitUntil(async () => {
      const jobs = await coord.client.listJobs({ limit: 1 });
      return jobs[0]?.settledAt !== undefined;
    }, 20_000);
    const after = BigInt((await coord.client.account(buyer)).account.balanceMsat);
    assert.equal(before - after, charge + (charge * 500n) / 10_000n * 2n);
    const operator = await coord.client.account(`operator:${paid.nodeId}`);
    assert.equal(BigInt(operator.account.balanceMsat), charge);
    const check = await (await fetch(`${coord.url}/v1/ledger/check`)).json() as { ok: boolean };
    assert.equal(check.ok, true);
  });

  it('keeps a model registry: hosts with their asks, and demand in requests and tokens (idlemesh models)', async () => {
    const jobs = (await coord.client.listJobs({ limit: 100 })).filter((j) => j.runtime === 'llm');
    const tokensOf = (model: string): number => jobs.filter((j) => j.name?.endsWith(` ${model}`) && j.state === 'completed').reduce((s, j) => s + j.fuelUsed, 0) / FUEL_PER_TOKEN;
    const registry = await coord.client.modelRegistry();
    const byId = new Map(registry.map((m) => [m.id, m]));
    assert.deepEqual([...byId.keys()].sort(), (await openai.models.list()).data.map((m) => m.id).sort(), 'the models the OpenAI API lists');
    const pricey = byId.get('pricey');
    assert.equal(pricey?.hosts.length, 1);
    assert.deepEqual(pricey?.price, { askMin: 2_000_000, askMedian: 2_000_000 });
    assert.equal(pricey?.demand.tokens, tokensOf('pricey'));
    assert.equal(pricey?.demand.tokens, 12, 'the one paid request: 12 tokens');
    const tiny = byId.get('tiny');
    assert.ok((tiny?.hosts.length ?? 0) >= 1);
    assert.equal(tiny?.demand.tokens, tokensOf('tiny'));
    assert.ok((tiny?.demand.requests ?? 0) >= 3, 'chat, stream and legacy completion at least');
    assert.equal(tiny?.demand.waiting, 0);
    // The busiest model first.
    assert.equal(registry[0]?.id, (tiny?.demand.tokens ?? 0) >= 12 ? 'tiny' : 'pricey');
    // The CLI shows the same registry.
    const cli = runCli('models', ['models', '--coordinator', coord.url, '--json']);
    assert.equal(await cli.wait(), 0, cli.text);
    assert.deepEqual((JSON.parse(cli.output.join('')) as { models: unknown }).models, registry);
    const text = runCli('models-table', ['models', '--coordinator', coord.url]);
    assert.equal(await text.wait(), 0, text.text);
    assert.match(text.text, /^MODEL\s+SIZE\s+LICENCE\s+HOSTS/m);
    assert.match(text.text, /^pricey\s+xs\s+1\s+0\s+2,000,000\/2,000,000\s+1\s+12\s+0\s+0%$/m);
  });
});

