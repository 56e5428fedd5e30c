/**
 * The conformance suite every LlmBackend must pass: what the server and the
 * agent rely on, whatever the engine behind it.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { MODEL_ID_PATTERN, type Chunk, type LlmBackend } from '../src/index.js';
import { collect, textOf } from './helpers.js';

export interface ConformanceOptions {
  /** A model the backend serves. */
  model: string;
  /** Whether score() works (else it must refuse with a 400). */
  scores: boolean;
}

/** Registers the suite's tests in the current describe(); `backend` is read when they run. */
export function backendConformance(backend: () => LlmBackend, o: ConformanceOptions): void {
  it('conformance: models() describes each model', async () => {
    const models = await backend().models();
    assert.ok(models.some((m) => m.id === o.model));
    for (const m of models) {
      assert.match(m.id, MODEL_ID_PATTERN);
      assert.match(m.hash, /^[0-9a-f]{64}$/);
      assert.ok(['xs', 's', 'm', 'l', 'xl'].includes(m.sizeClass));
      assert.ok(Number.isInteger(m.contextSize) && m.contextSize > 0);
      assert.ok(m.device === 'gpu' || m.device === 'cpu');
    }
  });

  it('conformance: chat yields deltas, one finish, then usage; the same twice at temperature 0', async () => {
    const req = { model: o.model, messages: [{ role: 'user' as const, content: 'Count to three' }], max_tokens: 10, temperature: 0 };
    const a = await collect(backend().chat(req));
    const b = await collect(backend().chat(req));
    assertShape(a, 10);
    assert.equal(textOf(b), textOf(a));
    assert.ok(textOf(a).length > 0);
  });

  it('conformance: complete yields deltas, one finish, then usage, within max_tokens', async () => {
    const chunks = await collect(backend().complete({ model: o.model, prompt: 'The sky is', max_tokens: 6, temperature: 0 }));
    assertShape(chunks, 6);
  });

  it('conformance: an aborted signal stops the generation and the backend keeps serving', async () => {
    const ac = new AbortController();
    const req = { model: o.model, messages: [{ role: 'user' as const, content: 'Talk' }], max_tokens: 200, temperature: 0 };
    await assert.rejects((async () => {
      for await (const c of backend().chat(req, ac.signal)) if (c.type === 'text' && c.text) ac.abort(new Error('enough'));
    })());
    const next = await collect(backend().chat({ ...req, max_tokens: 4 }));
    assertShape(next, 4);
  });

  it('conformance: an unknown model is a 404', async () => {
    await assert.rejects(collect(backend().chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })), (e: unknown) => e instanceof ImError && e.status === 404);
  });

  it(`conformance: score() ${o.scores ? 'gives one finite log-probability ≤ 0 per continuation token' : 'is refused with a 400'}`, async () => {
    const p = backend().score({ model: o.model, prompt: 'The sky is', continuation: ' blue today' });
    if (!o.scores) {
      await assert.rejects(p, (e: unknown) => e instanceof ImError && e.status === 400);
      return;
    }
    const r = await p;
    assert.ok(r.tokenLogprobs.length > 0);
    if (r.tokens) assert.equal(r.tokens.length, r.tokenLogprobs.length);
    for (const lp of r.tokenLogprobs) assert.ok(Number.isFinite(lp) && lp <= 0, String(lp));
  });
}

/** Deltas first, then exactly one finish, then usage last; completion tokens within the limit. */
function assertShape(chunks: readonly Chunk[], maxTokens: number): void {
  const finishes = chunks.flatMap((c, i) => (c.type === 'finish' ? [i] : []));
  assert.equal(finishes.length, 1, 'exactly one finish');
  const last = chunks.at(-1);
  assert.equal(last?.type, 'usage', 'usage comes last');
  assert.ok(chunks.slice(0, finishes[0]).every((c) => c.type === 'text' || c.type === 'tool_call'), 'deltas before the finish');
  if (last?.type === 'usage') {
    assert.ok(last.usage.promptTokens > 0);
    assert.ok(last.usage.completionTokens > 0 && last.usage.completionTokens <= maxTokens, String(last.usage.completionTokens));
  }
}
