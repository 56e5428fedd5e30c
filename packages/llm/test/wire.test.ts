/**
 * The parts that need no model: the wire schemas and errors, SSE framing and
 * parsing, the text stream's stop strings, the per-model queue, and the
 * server's queueing, errors mid-stream and shutdown, driven by a scripted
 * backend (these run on a fresh clone, without the GGUF fixture).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { ImError } from '@idlemesh/protocol';
import {
  ChatCompletionRequest,
  CompletionRequest,
  createOpenAiServer,
  fromZodError,
  ModelQueue,
  parametersFromName,
  renderPlainChat,
  sizeClassOf,
  SSE_DONE,
  sseData,
  sseError,
  sseEvents,
  TextStream,
  toOpenAiError,
  rateLimited,
  type Chunk,
  type LlmBackend,
  type ModelInfo,
} from '../src/index.js';
import { collect, waitUntil } from './helpers.js';

describe('wire schemas and errors', () => {
  it('accepts what OpenAI clients send, unknown fields included', () => {
    const r = ChatCompletionRequest.parse({
      model: 'm', messages: [
        { role: 'developer', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '42' },
      ],
      temperature: null, user: 'someone', store: false, stream_options: { include_usage: true }, n: 1,
    });
    assert.equal(r.user, 'someone');
    assert.equal(CompletionRequest.parse({ model: 'm', prompt: ['one'] }).prompt[0], 'one');
  });

  it('names the parameter at fault, as OpenAI does', () => {
    const param = (v: unknown, schema: typeof ChatCompletionRequest | typeof CompletionRequest = ChatCompletionRequest): string | null => {
      const r = schema.safeParse(v);
      assert.equal(r.success, false);
      return r.success ? null : fromZodError(r.error).param;
    };
    assert.equal(param({ model: 'm', messages: [] }), 'messages');
    assert.equal(param({ model: 'm', messages: [{ role: 'user', content: 'x' }], n: 2 }), 'n');
    assert.equal(param({ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio' }] }] }), 'messages[0].content[0].type');
    assert.equal(param({ model: 'm', messages: [{ role: 'tool', content: 'x' }] }), 'messages[0].tool_call_id');
    assert.equal(param({ model: 'm', prompt: 'x', echo: true }, CompletionRequest), 'echo');
    assert.equal(param({ model: 'm', prompt: ['a', 'b'] }, CompletionRequest), 'prompt');
  });

  it('turns ImErrors into OpenAI errors with status, type, code and Retry-After', () => {
    const busy = toOpenAiError(new ImError('IM_RATE_LIMITED', 'busy', { retryAfterMs: 2500 }));
    assert.deepEqual([busy.status, busy.type, busy.code, busy.retryAfterSec], [429, 'rate_limit_error', 'rate_limit_exceeded', 3]);
    const missing = toOpenAiError(new ImError('IM_NOT_FOUND', 'no model x'));
    assert.deepEqual([missing.status, missing.code, missing.param], [404, 'model_not_found', 'model']);
    const down = toOpenAiError(new ImError('IM_UNAVAILABLE'));
    assert.deepEqual([down.status, down.retryAfterSec], [503, 1]);
    const bug = toOpenAiError(new TypeError('oops'));
    assert.deepEqual(bug.body(), { error: { message: 'oops', type: 'server_error', param: null, code: null } });
  });

  it('frames SSE as OpenAI does, and an error after the start as an event then [DONE]', () => {
    assert.equal(sseData({ a: 1 }), 'data: {"a":1}\n\n');
    assert.equal(SSE_DONE, 'data: [DONE]\n\n');
    assert.equal(sseError(rateLimited('slow down', 1)), 'data: {"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}\n\ndata: [DONE]\n\n');
  });

  it('parses SSE split anywhere, with CRLF, comments and multi-line data', async () => {
    const text = ': keep-alive\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: x\ndata: two\n\ndata: [DONE]\n\n';
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
        c.close();
      },
    });
    assert.deepEqual(await collect(sseEvents(body)), ['{"a":\n1}', 'two', '[DONE]']);
  });

  it('sizes models by parameters, and reads a size from a model name', () => {
    assert.deepEqual([5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 70e9].map(sizeClassOf), ['xs', 'xs', 's', 'm', 'm', 'l', 'xl']);
    assert.equal(parametersFromName('qwen2.5-coder:7b'), 7e9);
    assert.equal(parametersFromName('Llama-3.2-1B-Instruct'), 1e9);
    assert.equal(parametersFromName('qwen2.5:0.5b'), 5e8);
    assert.equal(parametersFromName('mistral'), undefined);
  });

  it('renders the plain chat format', () => {
    assert.equal(
      renderPlainChat([{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }, { role: 'assistant', content: 'A', tool_calls: [{ id: '1', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] }, { role: 'tool', tool_call_id: '1', content: 'R' }]),
      'System: S\nUser: U\nAssistant: A\nf({"x":1})\nTool: R\nAssistant:',
    );
  });
});

describe('TextStream', () => {
  // A toy vocabulary: token i is PIECES[i]; 9 is half a character.
  const PIECES = ['Hel', 'lo', ' wor', 'ld', '\n', 'User', ':', ' ', '!', '\uFFFD'];
  const detok = (tokens: readonly number[]): string => tokens.map((t) => PIECES[t] ?? '?').join('');

  it('cuts at a stop string split over tokens, releasing only the text before it', () => {
    const s = new TextStream(detok, [], ['\nUser:']);
    const out = [0, 1, 4, 5].map((t) => s.push(t));
    assert.deepEqual(out, ['Hel', 'lo', '', '']);
    assert.equal(s.push(6), '');
    assert.equal(s.stopped, true);
    assert.equal(s.push(8), '');
    assert.equal(s.flush(), '');
  });

  it('releases a held prefix that did not become a stop string', () => {
    const s = new TextStream(detok, [], ['\nUser:']);
    assert.deepEqual([0, 4, 2].map((t) => s.push(t)), ['Hel', '', '\n wor']);
    assert.deepEqual([4].map((t) => s.push(t)), ['']);
    assert.equal(s.flush(), '\n');
  });

  it('trims the start when asked, and holds half characters', () => {
    const s = new TextStream(detok, [], [], true);
    assert.equal(s.push(7), '');
    assert.equal(s.push(2), 'wor');
    assert.equal(s.push(9), '');
    assert.equal(s.flush(), '\uFFFD');
  });
});

describe('ModelQueue', () => {
  it('runs one at a time per model in order, refuses past the limit, and lets aborted waiters go', async () => {
    const q = new ModelQueue(2, 1500);
    const r1 = await q.acquire('a');
    const order: number[] = [];
    const w2 = q.acquire('a').then((r) => { order.push(2); return r; });
    const ac = new AbortController();
    const w3 = q.acquire('a', ac.signal);
    await assert.rejects(q.acquire('a'), (e: unknown) => e instanceof ImError && e.code === 'IM_RATE_LIMITED' && e.retryAfterMs === 1500);
    const other = await q.acquire('b');
    other();
    ac.abort(new Error('gone'));
    await assert.rejects(w3, /gone/);
    assert.equal(q.waiting('a'), 1);
    r1();
    const r2 = await w2;
    assert.deepEqual(order, [2]);
    r2();
    r2();
    assert.equal(q.waiting('a'), 0);
  });
});

/** Scripted answers: a test device for the server's own behaviour, apart from any model. */
class ScriptedBackend implements LlmBackend {
  gate: Promise<void> = Promise.resolve();
  failAfter: number | undefined;
  readonly aborted: boolean[] = [];

  async models(): Promise<ModelInfo[]> {
    return [{ id: 'scripted', hash: 'a'.repeat(64), sizeClass: 'xs', contextSize: 100, device: 'cpu', backend: 'openai' }];
  }

  async *chat(_req: unknown, signal?: AbortSignal): AsyncGenerator<Chunk> {
    const i = this.aborted.push(false) - 1;
    signal?.addEventListener('abort', () => (this.aborted[i] = true));
    // Waits for the gate, as a real backend would for its model, but not past an abort.
    await new Promise<void>((resolve, reject) => {
      void this.gate.then(resolve);
      signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
    });
    const words = ['one', ' two', ' three'];
    for (const [n, w] of words.entries()) {
      if (this.failAfter === n) throw new Error('the model fell over');
      signal?.throwIfAborted();
      yield { type: 'text', text: w };
    }
    yield { type: 'finish', reason: 'stop' };
    yield { type: 'usage', usage: { promptTokens: 2, completionTokens: 3 } };
  }

  complete(req: unknown, signal?: AbortSignal): AsyncGenerator<Chunk> {
    return this.chat(req, signal);
  }

  async score(): Promise<never> {
    throw new ImError('IM_BAD_REQUEST', 'no scores here');
  }

  async close(): Promise<void> {}
}

describe('server behaviour with a scripted backend', () => {
  const messages = [{ role: 'user' as const, content: 'x' }];

  it('queues per model and answers 429 with Retry-After past the limit', async () => {
    const backend = new ScriptedBackend();
    let open!: () => void;
    backend.gate = new Promise<void>((r) => (open = r));
    const server = await createOpenAiServer(backend, { port: 0, maxQueue: 1, retryAfterSec: 2 });
    try {
      const post = (): Promise<Response> => fetch(`${server.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'scripted', messages }) });
      const first = post();
      await waitUntil(() => backend.aborted.length === 1); // running, holding the model
      // Of two more, one waits (and answers only once the model is free), the other is told to come back now.
      const second = post();
      const third = post();
      const refused = await Promise.race([second, third]);
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '2');
      assert.equal(((await refused.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
      open();
      const all = await Promise.all([first, second, third]);
      assert.deepEqual(all.map((r) => r.status).sort(), [200, 200, 429]);
      const waited = all.find((r, i) => i > 0 && r.status === 200);
      assert.equal(((await waited?.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content, 'one two three');
      await (await first).body?.cancel();
    } finally {
      await server.close();
    }
  });

  it('a failure before the first chunk is an HTTP error; after it, an error event the client raises', async () => {
    const backend = new ScriptedBackend();
    const errors: unknown[] = [];
    const server = await createOpenAiServer(backend, { port: 0, onError: (e) => errors.push(e) });
    try {
      const openai = new OpenAI({ baseURL: server.url, apiKey: 'none', maxRetries: 0 });
      backend.failAfter = 0;
      await assert.rejects(openai.chat.completions.create({ model: 'scripted', messages, stream: true }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 500);
      backend.failAfter = 2;
      let text = '';
      await assert.rejects((async () => {
        for await (const c of await openai.chat.completions.create({ model: 'scripted', messages, stream: true })) text += c.choices[0]?.delta.content ?? '';
      })(), (e: unknown) => e instanceof OpenAI.APIError && /fell over/.test(e.message));
      assert.equal(text, 'one two');
      assert.equal(errors.length, 2);
      const health = await fetch(`${server.url.replace(/\/v1$/, '')}/health`);
      assert.deepEqual(await health.json(), { status: 'ok' });
    } finally {
      await server.close();
    }
  });

  it('close() aborts requests in flight and stops listening', async () => {
    const backend = new ScriptedBackend();
    backend.gate = new Promise<void>(() => undefined);
    const server = await createOpenAiServer(backend, { port: 0 });
    const pending = fetch(`${server.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'scripted', messages, stream: true }) }).then(
      (r) => r.status,
      () => 'disconnected',
    );
    await new Promise((r) => setTimeout(r, 100));
    await server.close();
    assert.deepEqual(backend.aborted, [true]);
    assert.equal(await pending, 'disconnected');
    await assert.rejects(fetch(`${server.url}/models`));
  });
});
