/**
 * serve-model's API with the official `openai` client against real llama.cpp
 * inference (the tiny random-weight fixture, loaded once): models, chat and
 * legacy completions streamed and not, determinism, stop strings, a chat
 * template with tools, OpenAI-shaped errors, the API key, and a client that
 * goes away mid-stream.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { createOpenAiServer, LlamaCppBackend, type OpenAiServer } from '../src/index.js';
import { FIXTURE, NEEDS_FIXTURE, TEST_LLAMA, TINY, WatchedBackend, waitUntil } from './helpers.js';

const KEY = 'test-key';
const CHATML = 'tiny-chatml';

describe('OpenAI-compatible server on llama.cpp', { skip: NEEDS_FIXTURE }, () => {
  let backend: LlamaCppBackend;
  let watched: WatchedBackend;
  let server: OpenAiServer;
  let openai: OpenAI;
  const messages = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'Say hello' }];

  before(async () => {
    const t0 = performance.now();
    backend = await LlamaCppBackend.load({ ...TEST_LLAMA, models: [FIXTURE, { path: FIXTURE, name: CHATML, chatFormat: 'chatML' }] });
    console.log(`loaded two models from the fixture in ${Math.round(performance.now() - t0)} ms`);
    watched = new WatchedBackend(backend);
    server = await createOpenAiServer(watched, { host: '127.0.0.1', port: 0, apiKey: KEY });
    openai = new OpenAI({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
  });
  after(async () => {
    await server?.close();
    await backend?.close();
  });

  it('lists the models with their hash, size class, context and device', async () => {
    const list = await openai.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [TINY, CHATML]);
    const m = list.data[0] as unknown as Record<string, unknown>;
    assert.match(String(m.hash), /^[0-9a-f]{64}$/);
    assert.equal(m.size_class, 'xs');
    assert.equal(m.context_size, 512);
    assert.equal(m.device, 'cpu');
    assert.equal((await openai.models.retrieve(CHATML)).id, CHATML);
  });

  it('answers chat deterministically at temperature 0, and the stream (with usage) gives the same text', async () => {
    const req = { model: TINY, messages, max_tokens: 24, temperature: 0 };
    const t0 = performance.now();
    const a = await openai.chat.completions.create(req);
    const ms = performance.now() - t0;
    const b = await openai.chat.completions.create(req);
    const text = a.choices[0]?.message.content ?? '';
    assert.ok(text.length > 0);
    assert.equal(b.choices[0]?.message.content, text);
    assert.equal(a.choices[0]?.finish_reason, 'length');
    assert.equal(a.usage?.completion_tokens, 24);
    assert.ok((a.usage?.prompt_tokens ?? 0) > 0);
    assert.equal(a.usage?.total_tokens, (a.usage?.prompt_tokens ?? 0) + 24);
    console.log(`24 tokens over HTTP in ${Math.round(ms)} ms (${Math.round((24 / ms) * 1000)} tokens/s)`);

    const stream = await openai.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let streamed = '';
    let chunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    let role: string | undefined;
    for await (const chunk of stream) {
      chunks++;
      role ??= chunk.choices[0]?.delta.role;
      streamed += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) {
        assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
        usage = chunk.usage;
      }
    }
    assert.ok(chunks > 3);
    assert.equal(role, 'assistant');
    assert.equal(streamed, text);
    assert.equal(finish, 'length');
    assert.deepEqual(usage, a.usage);
  });

  it('samples reproducibly with a seed', async () => {
    const req = { model: TINY, messages, max_tokens: 12, temperature: 1, seed: 42 };
    const a = await openai.chat.completions.create(req);
    const b = await openai.chat.completions.create(req);
    assert.equal(b.choices[0]?.message.content, a.choices[0]?.message.content);
  });

  it('serves legacy completions, streamed and not, and cuts at a stop string', async () => {
    const req = { model: TINY, prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
    const whole = await openai.completions.create(req);
    const text = whole.choices[0]?.text ?? '';
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.usage?.completion_tokens, 16);
    assert.equal(whole.choices[0]?.finish_reason, 'length');
    let streamed = '';
    for await (const c of await openai.completions.create({ ...req, stream: true })) streamed += c.choices[0]?.text ?? '';
    assert.equal(streamed, text);

    // A stop string from the middle of the answer: the text ends right before it.
    const stop = text.slice(6, 9);
    const cut = await openai.completions.create({ ...req, stop: [stop] });
    assert.equal(cut.choices[0]?.text, text.slice(0, text.indexOf(stop)));
    assert.equal(cut.choices[0]?.finish_reason, 'stop');
    let cutStreamed = '';
    for await (const c of await openai.completions.create({ ...req, stop: [stop], stream: true })) cutStreamed += c.choices[0]?.text ?? '';
    assert.equal(cutStreamed, cut.choices[0]?.text);
  });

  it('chats through a chat template (LlamaChat) with tools offered, the same streamed and not', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_time', description: 'The current time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } }];
    const req = { model: CHATML, messages, tools, max_tokens: 12, temperature: 0 };
    const a = await openai.chat.completions.create(req);
    const b = await openai.chat.completions.create(req);
    assert.deepEqual(b.choices[0]?.message, a.choices[0]?.message);
    assert.ok(['length', 'stop', 'tool_calls'].includes(a.choices[0]?.finish_reason ?? ''));
    assert.ok((a.usage?.completion_tokens ?? 0) > 0);
    const plain = await openai.chat.completions.create({ ...req, model: TINY });
    assert.ok((a.usage?.prompt_tokens ?? 0) > (plain.usage?.prompt_tokens ?? 0), 'the template and the tool documentation make a longer prompt');
    let streamed = '';
    for await (const c of await openai.chat.completions.create({ ...req, stream: true })) streamed += c.choices[0]?.delta.content ?? '';
    assert.equal(streamed, a.choices[0]?.message.content ?? '');
  });

  it('answers bad requests in OpenAI error shapes with the right status', async () => {
    const expect = async (p: Promise<unknown>, status: number, param: string | null, code?: string): Promise<void> => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, status);
        assert.equal(e.param ?? null, param);
        if (code !== undefined) assert.equal(e.code, code);
        assert.equal(typeof e.message, 'string');
        return true;
      });
    };
    await expect(openai.chat.completions.create({ model: TINY, messages: [] }), 400, 'messages');
    await expect(openai.chat.completions.create({ model: 'nope', messages }), 404, 'model', 'model_not_found');
    await expect(openai.chat.completions.create({ model: TINY, messages, n: 2 }), 400, 'n');
    await expect(openai.chat.completions.create({ model: TINY, messages, logprobs: true }), 400, 'logprobs');
    await expect(openai.chat.completions.create({ model: TINY, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }), 400, 'messages[0].content[0].type');
    await expect(openai.completions.create({ model: TINY, prompt: 'x', echo: true }), 400, 'echo');
    await expect(openai.completions.create({ model: TINY, prompt: 'hello '.repeat(600) }), 400, 'prompt', 'context_length_exceeded');

    const raw = await fetch(`${server.url}/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: '{not json' });
    assert.equal(raw.status, 400);
    assert.equal(((await raw.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
    const route = await fetch(`${server.url}/embeddings`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: '{}' });
    assert.equal(route.status, 404);
    await route.body?.cancel();
  });

  it('refuses a wrong or missing API key with 401', async () => {
    const wrong = new OpenAI({ baseURL: server.url, apiKey: 'not-the-key', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key');
    const none = await fetch(`${server.url}/models`);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { type: string } }).error.type, 'authentication_error');
  });

  it('stops generating when the client goes away mid-stream, and serves the next request normally', async () => {
    const req = { model: TINY, messages, max_tokens: 20, temperature: 0 };
    const expected = (await openai.chat.completions.create(req)).choices[0]?.message.content;
    watched.delayMs = 20; // ~400 tokens would take 8 s: the abort surely lands mid-generation
    try {
      const ac = new AbortController();
      const stream = await openai.chat.completions.create({ ...req, max_tokens: 400, stream: true }, { signal: ac.signal });
      let seen = 0;
      // The client library ends the iteration quietly when its own signal aborts.
      for await (const c of stream) {
        if (c.choices[0]?.delta.content) seen++;
        if (seen === 2) ac.abort();
      }
      assert.equal(seen, 2);
      const signal = watched.signals.at(-1);
      await waitUntil(() => signal?.aborted === true);
    } finally {
      watched.delayMs = 0;
    }
    const after = await openai.chat.completions.create(req);
    assert.equal(after.choices[0]?.message.content, expected);
  });
});
