/**
 * Both backends on real llama.cpp inference (the fixture, loaded once): the
 * conformance suite for each, LlamaCppBackend directly and
 * OpenAiCompatibleBackend through serve-model's server in front of it (so
 * both must give the same text), and teacher-forced scoring.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { createOpenAiServer, LlamaCppBackend, OpenAiCompatibleBackend, runChatCompletion, type OpenAiServer } from '../src/index.js';
import { backendConformance } from './conformance.js';
import { collect, FIXTURE, NEEDS_FIXTURE, TEST_LLAMA, textOf, TINY, tokensOf } from './helpers.js';

const KEY = 'k';

describe('inference backends on llama.cpp', { skip: NEEDS_FIXTURE }, () => {
  let llama: LlamaCppBackend;
  let server: OpenAiServer;
  let remote: OpenAiCompatibleBackend;

  before(async () => {
    llama = await LlamaCppBackend.load({ ...TEST_LLAMA, models: [FIXTURE] });
    server = await createOpenAiServer(llama, { port: 0, apiKey: KEY });
    remote = new OpenAiCompatibleBackend({ baseUrl: server.url, apiKey: KEY });
  });
  after(async () => {
    await remote?.close();
    await server?.close();
    await llama?.close();
  });

  describe('LlamaCppBackend', () => {
    backendConformance(() => llama, { model: TINY, scores: true });

    it('hashes the file and reports what it loaded', async () => {
      const [m] = await llama.models();
      assert.equal(m?.id, TINY);
      assert.equal(m?.hash, '81f226c62d28ed4a1a9b9fa080fcd9f0cc40e0f9d5680036583ff98fbcd035cb');
      assert.equal(m?.bytes, 1_750_560);
      assert.equal(m?.parameters, 513_048);
      assert.equal(m?.sizeClass, 'xs');
      assert.equal(m?.device, 'cpu');
      assert.equal(m?.backend, 'llama.cpp');
    });

    it('score(): greedy tokens get finite negative log-probabilities, higher than other tokens', async () => {
      const prompt = 'Hello world';
      const t0 = performance.now();
      const chunks = await collect(llama.complete({ model: TINY, prompt, max_tokens: 12, temperature: 0 }));
      const genMs = performance.now() - t0;
      const greedy = tokensOf(chunks);
      assert.equal(greedy.length, 12);
      const t1 = performance.now();
      const g = await llama.score({ model: TINY, prompt, continuation: greedy });
      console.log(`generated 12 tokens in ${Math.round(genMs)} ms, scored them in ${Math.round(performance.now() - t1)} ms`);
      assert.deepEqual(g.tokens, greedy);
      assert.equal(g.tokenLogprobs.length, greedy.length);
      assert.equal(g.tokenTexts?.join(''), textOf(chunks));
      for (const lp of g.tokenLogprobs) assert.ok(Number.isFinite(lp) && lp < 0, String(lp));

      // The same length of other tokens (deterministic, none of them the greedy one).
      const other = greedy.map((t, i) => (t + 1009 * (i + 1)) % 32_000);
      const r = await llama.score({ model: TINY, prompt, continuation: other });
      const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
      assert.ok(sum(g.tokenLogprobs) > sum(r.tokenLogprobs), `${sum(g.tokenLogprobs)} > ${sum(r.tokenLogprobs)}`);
      // At every position, after the greedy prefix, the greedy token is at least as likely as the other one (it is the argmax).
      for (let i = 0; i < greedy.length; i++) {
        const alt = await llama.score({ model: TINY, prompt, continuation: [...greedy.slice(0, i), other[i]!] });
        assert.ok((g.tokenLogprobs[i] ?? -Infinity) >= (alt.tokenLogprobs[i] ?? 0), `position ${i}`);
      }

      // Scoring is deterministic.
      assert.deepEqual((await llama.score({ model: TINY, prompt, continuation: greedy })).tokenLogprobs, g.tokenLogprobs);
    });

    it('score(): text continuations and chat prompts, rendered as chat() renders them', async () => {
      const text = await llama.score({ model: TINY, prompt: 'Hello', continuation: ' there, friend' });
      assert.equal(text.tokenLogprobs.length, text.tokens?.length);
      assert.ok((text.tokens?.length ?? 0) >= 2);

      const messages = [{ role: 'user' as const, content: 'Hi' }];
      const chunks = await collect(llama.chat({ model: TINY, messages, max_tokens: 8, temperature: 0 }));
      const tokens = tokensOf(chunks);
      const s = await llama.score({ model: TINY, prompt: messages, continuation: tokens });
      assert.equal(s.tokenLogprobs.length, tokens.length);
      for (const lp of s.tokenLogprobs) assert.ok(Number.isFinite(lp) && lp < 0);
    });

    it('score(): refuses token ids outside the vocabulary and an unknown model', async () => {
      await assert.rejects(llama.score({ model: TINY, prompt: 'x', continuation: [5, 32_000] }), (e: unknown) => e instanceof ImError && e.code === 'IM_VALIDATION');
      await assert.rejects(llama.score({ model: 'nope', prompt: 'x', continuation: 'y' }), (e: unknown) => e instanceof ImError && e.code === 'IM_NOT_FOUND');
    });

    it('requests to one model run one at a time and each stays deterministic', async () => {
      const req = { model: TINY, messages: [{ role: 'user' as const, content: 'Go' }], max_tokens: 8, temperature: 0 };
      const alone = textOf(await collect(llama.chat(req)));
      const together = await Promise.all([1, 2, 3].map(() => collect(llama.chat(req))));
      for (const c of together) assert.equal(textOf(c), alone);
    });
  });

  describe('OpenAiCompatibleBackend in front of serve-model', () => {
    backendConformance(() => remote, { model: TINY, scores: false });

    it('gives the same text and usage as the model directly, for chat and completions', async () => {
      const chat = { model: TINY, messages: [{ role: 'user' as const, content: 'Hello' }], max_tokens: 16, temperature: 0 };
      const direct = await runChatCompletion(llama, chat);
      const viaHttp = await runChatCompletion(remote, chat);
      assert.equal(viaHttp.choices[0]?.message.content, direct.choices[0]?.message.content);
      assert.deepEqual(viaHttp.usage, direct.usage);
      assert.equal(viaHttp.choices[0]?.finish_reason, 'length');

      const completion = { model: TINY, prompt: 'In the beginning', max_tokens: 10, temperature: 0 };
      assert.equal(textOf(await collect(remote.complete(completion))), textOf(await collect(llama.complete(completion))));
    });

    it('keeps the upstream error: status, code and param', async () => {
      await assert.rejects(collect(remote.chat({ model: TINY, messages: [{ role: 'user', content: 'x' }], n: 1, logprobs: true })), (e: unknown) => {
        assert.ok(e instanceof ImError);
        assert.equal(e.status, 400);
        assert.deepEqual((e.details as { openai?: { param?: string } }).openai?.param, 'logprobs');
        return true;
      });
      const wrongKey = new OpenAiCompatibleBackend({ baseUrl: server.url, apiKey: 'wrong' });
      await assert.rejects(wrongKey.models(), (e: unknown) => e instanceof ImError && e.code === 'IM_UNAUTHORIZED');
      const nowhere = new OpenAiCompatibleBackend({ baseUrl: 'http://127.0.0.1:9/v1' });
      await assert.rejects(nowhere.models(), (e: unknown) => e instanceof ImError && e.code === 'IM_UNAVAILABLE' && e.retryable);
    });
  });
});
