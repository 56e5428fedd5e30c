/**
 * Split inference in the mesh, engine `pipeline`: a real coordinator and three
 * agent processes that each lend memory for ~5 of a generated 8-block
 * model's layers. Two of them form the group (4 + 4 layers), the third is
 * the spare. Asked through the official openai client, the group streams
 * what one unsplit pipeline computes on the same file; a stage killed with
 * SIGKILL mid-generation is replaced by the spare and the stream finishes
 * with exactly the same text; stages are paid by layers × the multiplier.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import WebSocket from 'ws';
import { PipelineHost } from '@idlemesh/agent';
import { FUEL_PER_EU, FUEL_PER_TOKEN, PROTOCOL_VERSION, generateNodeKey, signMessage } from '@idlemesh/protocol';
import type { Capabilities, ServerMessage, TransferView } from '@idlemesh/protocol';
import { LocalStageTransport, PipelineBackend, PipelineSession, SpmTokenizer, Stage, agentBackend, ggufFromBytes, llamaConfigOf, writeRandomLlama } from '@idlemesh/llm';
import { runCli, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const API_KEY = 'split-pipeline-buyer';
const MODEL = 'split-test-8';
const ASK = 2_000_000;
const MULTIPLIER = 1.25;

interface SplitModel extends OpenAI.Model {
  owned_by: string;
  hosts: number;
  split?: { engine: string; group: string; blocks: number; stages: Array<{ node: string; from: number; to: number }>; spares: number };
}

describe('split inference over agents (engine pipeline)', () => {
  const dir = tempDir('split');
  const bytes = writeRandomLlama({ blocks: 8, hidden: 128, heads: 4, kvHeads: 2, ff: 352, vocab: 600, ctx: 512, seed: 21, type: 'f16' });
  const file = join(dir.path, `${MODEL}.gguf`);
  let coord: CoordinatorProc;
  const agents: Proc[] = [];
  let openai: OpenAI;
  /** The agent process behind a node id (each prints the first 12 hex digits of its id). */
  const procOf = (nodeId: string): Proc => {
    const p = agents.find((a) => a.text.includes(`idlemesh agent ${nodeId.slice(0, 12)}`));
    assert.ok(p, `no agent process for ${nodeId}`);
    return p;
  };
  const group = async (): Promise<SplitModel | undefined> => ((await openai.models.list()).data as SplitModel[]).find((m) => m.id === MODEL);

  /** The same request run unsplit: one local stage holding all 8 layers, the same backend code. */
  async function unsplit(kind: 'chat' | 'completion', request: Record<string, unknown>): Promise<string> {
    const source = ggufFromBytes(bytes);
    const c = llamaConfigOf(source.header);
    const stage = await Stage.load(source, { from: 0, to: c.blocks, contextSize: Math.min(c.contextLength, 4096) });
    const session = new PipelineSession({ stages: [new LocalStageTransport(stage)] });
    const info = { id: MODEL, hash: '0'.repeat(64), sizeClass: 'xs' as const, contextSize: stage.contextSize, device: 'cpu' as const, backend: 'llama.cpp' as const };
    const backend = agentBackend(new PipelineBackend({ info, tokenizer: SpmTokenizer.fromGguf(source.header), session }));
    const { response } = await backend.run(kind, { ...request, model: MODEL, stream: false }, () => undefined, new AbortController().signal);
    const choice = (response as { choices: Array<{ text?: string; message?: { content: string } }> }).choices[0];
    return choice?.message?.content ?? choice?.text ?? '';
  }

  before(async () => {
    writeFileSync(file, bytes);
    // Lend each agent room for 5 layers (plus the ends), from the agent's own accounting of the file.
    const probe = await PipelineHost.open({ model: file, memoryBytes: 1 });
    const memory = probe.offer.edgeBytes + 5 * probe.offer.layerBytes + Math.floor(probe.offer.layerBytes / 2);
    await probe.close();
    coord = await startCoordinatorProc({ dataDir: join(dir.path, 'coord') });
    for (let i = 0; i < 3; i++) {
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: join(dir.path, `agent${i}`), name: `agent${i}`, args: ['--split-model', file, '--split-memory', `${memory}B`, '--ask', String(ASK)] }));
    }
    openai = new OpenAI({ baseURL: `${coord.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 120_000 });
    // The buyer pays the stages: fund its account (an open local mesh names it by the token's hash).
    await coord.client.devFund({ account: `buyer:key:${createHash('sha256').update(API_KEY).digest('hex').slice(0, 32)}`, sats: 1_000_000 });
    await waitUntil(async () => (await group())?.split?.spares === 1, 60_000, () => coord.text);
  });

  after(async () => {
    for (const a of agents) await a.stop();
    await coord?.stop();
    dir.remove();
  });

  it('lists the group in /v1/models: two stages of 4 layers, one spare', async () => {
    const m = await group();
    assert.equal(m?.owned_by, 'idlemesh-split');
    assert.equal(m?.split?.engine, 'pipeline');
    assert.deepEqual(m?.split?.stages.map((s) => [s.from, s.to]), [[0, 4], [4, 8]]);
    assert.equal(m?.hosts, 2);
    assert.notEqual(m?.split?.stages[0]?.node, m?.split?.stages[1]?.node);
  });

  it('streams a chat completion equal to the unsplit run, and pays the stages by layers × the multiplier', { timeout: 180_000 }, async (t) => {
    try {
      const request = { messages: [{ role: 'user' as const, content: 'Tell me about idle machines' }], temperature: 0, max_tokens: 40 };
      const expected = await unsplit('chat', request);
      assert.ok(expected.length > 0, 'the model says something');
      let streamed = '';
      let chunks = 0;
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const c of await openai.chat.completions.create({ ...request, model: MODEL, stream: true, stream_options: { include_usage: true } })) {
        streamed += c.choices[0]?.delta.content ?? '';
        chunks++;
        if (c.usage) usage = c.usage;
      }
      assert.equal(streamed, expected, 'split = unsplit, exactly');
      assert.ok(chunks > 3, 'it streamed');
      assert.ok((usage?.completion_tokens ?? 0) > 0);

      // Charges: the head's fuel (tokens × weight 1) × 1.25, shared 4:4 by layers, each at its ask.
      const m = await group();
      const stages = m!.split!.stages;
      const job = (await coord.client.listJobs({ limit: 5 })).find((j) => j.runtime === 'llm');
      assert.ok(job);
      assert.equal(job.fuelUsed, (usage?.total_tokens ?? 0) * FUEL_PER_TOKEN);
      await waitUntil(async () => (await coord.client.getJob(job.id)).settledAt !== undefined, 20_000);
      const total = Math.round(job.fuelUsed * MULTIPLIER);
      const layers = stages.map((s) => s.to - s.from);
      const shares = layers.map((l) => Math.floor((total * l) / 8));
      shares[0] = shares[0]! + (total - shares.reduce((a, b) => a + b, 0)); // the remainder (ties go to the first stage)
      for (const [i, s] of stages.entries()) {
        const detail = await coord.client.account(`operator:${s.node}`);
        const paid: TransferView[] = detail.transfers.filter((x) => x.ref === job.id && x.creditAccount === `operator:${s.node}`);
        assert.equal(paid.length, 1, `stage ${i} is paid once for the job`);
        assert.equal(paid[0]!.meta?.fuel, String(shares[i]), `stage ${i}'s fuel is its layers' share × ${MULTIPLIER}`);
        assert.equal(BigInt(paid[0]!.amountMsat), (BigInt(shares[i]!) * BigInt(ASK)) / BigInt(FUEL_PER_EU));
      }
    } catch (err) {
      t.diagnostic(`--- coordinator ---\n${coord.text.slice(-3000)}\n${agents.map((a) => `--- ${a.name} ---\n${a.text.slice(-2000)}`).join('\n')}`);
      throw err;
    }
  });

  it('refuses frames from a node outside the group with IM_SPLIT_NOT_MEMBER', { timeout: 30_000 }, async () => {
    const m = await group();
    const key = await generateNodeKey();
    const caps: Capabilities = { runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 'intruder' };
    const ws = new WebSocket(`${coord.url.replace(/^http/, 'ws')}/v1/agent`);
    try {
      const reply = await new Promise<Extract<ServerMessage, { type: 'stage-reply' }>>((resolve, reject) => {
        ws.once('error', reject);
        ws.on('message', (d: Buffer) => {
          const msg = JSON.parse(d.toString()) as ServerMessage;
          if (msg.type === 'hello') void signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge: msg.challenge, capabilities: caps }, Date.now()).then((a) => ws.send(JSON.stringify(a)));
          else if (msg.type === 'welcome') ws.send(JSON.stringify({ type: 'stage-frame', group: m!.split!.group, stage: 1, seq: 7, request: 'steal', op: 'reset' }));
          else if (msg.type === 'stage-reply') resolve(msg);
        });
      });
      assert.equal(reply.ok, false);
      assert.equal(reply.seq, 7);
      assert.equal(reply.error?.code, 'IM_SPLIT_NOT_MEMBER');
    } finally {
      ws.close();
    }
  });

  it('refuses bad split flags with a clear message', { timeout: 30_000 }, async () => {
    const bad = runCli('bad-size', ['agent', '--coordinator', coord.url, '--data-dir', join(dir.path, 'bad'), '--split-model', file, '--split-memory', '6XB']);
    assert.notEqual(await bad.wait(), 0);
    assert.match(bad.text, /IM_CLI_USAGE: --split-memory "6XB": expected a size such as 512MB, 6GB/);
    const lone = runCli('lone', ['agent', '--coordinator', coord.url, '--data-dir', join(dir.path, 'bad'), '--split-model', file]);
    assert.notEqual(await lone.wait(), 0);
    assert.match(lone.text, /IM_CLI_USAGE: --split-model needs --split-memory/);
    const missing = runCli('missing', ['agent', '--coordinator', coord.url, '--data-dir', join(dir.path, 'bad'), '--split-model', join(dir.path, 'none.gguf'), '--split-memory', '1GB']);
    assert.notEqual(await missing.wait(), 0);
    assert.match(missing.text, /IM_CONFIG_INVALID: cannot open .*none\.gguf/);
  });

  it('a stage killed mid-generation is replaced by the spare; the stream finishes equal to an uninterrupted run', { timeout: 240_000 }, async (t) => {
    try {
      const before = await group();
      const [head, stage1] = before!.split!.stages;
      const victim = procOf(stage1!.node);
      const request = { prompt: 'Once upon a time the machines were idle', temperature: 0.8, seed: 11, max_tokens: 300 };
      const expected = await unsplit('completion', request);
      assert.ok(expected.length > 0);
      let streamed = '';
      let chunks = 0;
      let killedAt = -1;
      for await (const c of await openai.completions.create({ ...request, model: MODEL, stream: true })) {
        streamed += c.choices[0]?.text ?? '';
        chunks++;
        if (chunks === 4) {
          killedAt = streamed.length;
          await victim.kill9();
        }
      }
      assert.ok(killedAt >= 0 && killedAt < expected.length, 'the stage died mid-generation');
      assert.equal(streamed, expected, 'the stream finished and equals the uninterrupted run');
      const headProc = procOf(head!.node);
      assert.match(headProc.text, /split stage 1 replaced; replayed [1-9]\d* rows/, 'the head replayed into the replacement');
      assert.match(coord.text, /split stage replaced by a spare/);
      const now = await group();
      assert.equal(now?.split?.stages[0]?.node, head!.node, 'the head kept its stage');
      assert.notEqual(now?.split?.stages[1]?.node, stage1!.node, 'stage 1 is the former spare');
      assert.deepEqual(now?.split?.stages.map((s) => [s.from, s.to]), [[0, 4], [4, 8]]);

      // The replacement, not the dead stage, is paid for stage 1 of this request; the ledger balances.
      const job = (await coord.client.listJobs({ limit: 5 })).find((j) => j.runtime === 'llm' && j.state === 'completed');
      assert.ok(job);
      await waitUntil(async () => (await coord.client.getJob(job.id)).settledAt !== undefined, 20_000);
      const paidTo = async (node: string): Promise<number> => (await coord.client.account(`operator:${node}`)).transfers.filter((x) => x.ref === job.id).length;
      assert.equal(await paidTo(now!.split!.stages[1]!.node), 1);
      assert.equal(await paidTo(stage1!.node), 0);
      const check = runCli('ledger-check', ['ledger', 'check', '--coordinator', coord.url]);
      assert.equal(await check.wait(), 0, check.text);
      assert.match(check.text, /^ok:/m);
    } catch (err) {
      t.diagnostic(`--- coordinator ---\n${coord.text.slice(-4000)}\n${agents.map((a) => `--- ${a.name} ---\n${a.text.slice(-3000)}`).join('\n')}`);
      throw err;
    }
  });
});
