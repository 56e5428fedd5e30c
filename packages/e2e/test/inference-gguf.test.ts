/**
 * A real model through the mesh: an agent serving the tiny random-weight GGUF
 * with node-llama-cpp, asked through the coordinator with the official client.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { FUEL_PER_TOKEN } from '@idlemesh/protocol';
import { startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';

const API_KEY = 'any-token-on-an-open-local-mesh';

describe('a real GGUF served by an agent (node-llama-cpp)', () => {
  const fixture = fileURLToPath(new URL('../../../../../shared/fixtures/llama-2-tiny-random.gguf', import.meta.url));

  it('answers through the coordinator deterministically at temperature 0, streamed and not, and bills the tokens', { timeout: 240_000 }, async (t) => {
    if (!existsSync(fixture)) {
      t.skip(`needs the GGUF fixture ${fixture} (../shared/fixtures/llama-2-tiny-random.gguf), which is not present`);
      return;
    }
    const dir = tempDir('gguf');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
    const agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, args: ['--model', fixture, '--gpu', 'off'] });
    try {
      // Bounded: a request that hangs fails the test with both processes' logs instead of stalling the suite.
      const openai = new OpenAI({ baseURL: `${coord.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 60_000 });
      await waitUntil(async () => (await openai.models.list()).data.some((m) => m.id === 'llama-2-tiny-random'), 120_000);
      const req = { model: 'llama-2-tiny-random', messages: [{ role: 'user' as const, content: 'Write a haiku about idle machines' }], temperature: 0, max_tokens: 12 };
      const a = await openai.chat.completions.create(req);
      const b = await openai.chat.completions.create(req);
      const text = a.choices[0]?.message.content ?? '';
      assert.ok(text.length > 0, 'the model says something');
      assert.equal(b.choices[0]?.message.content, text, 'deterministic at temperature 0');
      assert.ok((a.usage?.completion_tokens ?? 0) > 0 && (a.usage?.completion_tokens ?? 0) <= 12);
      let streamed = '';
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const c of await openai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
        streamed += c.choices[0]?.delta.content ?? '';
        if (c.usage) usage = c.usage;
      }
      assert.equal(streamed, text, 'the stream says the same');
      assert.equal(usage?.total_tokens, a.usage?.total_tokens);
      // Each request is a job whose fuel is its tokens (an xs model: weight 1).
      const jobs = (await coord.client.listJobs({ limit: 10 })).filter((j) => j.runtime === 'llm');
      assert.equal(jobs.length, 3);
      assert.ok(jobs.every((j) => j.state === 'completed' && j.fuelUsed === (a.usage?.total_tokens ?? 0) * FUEL_PER_TOKEN));
    } catch (err) {
      t.diagnostic(`--- agent ---\n${agent.text.slice(-4000)}\n--- coordinator ---\n${coord.text.slice(-4000)}`);
      throw err;
    } finally {
      await agent.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
