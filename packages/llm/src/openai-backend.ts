/**
 * Any OpenAI-compatible server as a backend: Ollama, llama.cpp's
 * llama-server, vLLM, another serve-model. Plain fetch and SSE parsing, no
 * client library. Requests pass through as they came (tools, response_format
 * and fields we do not know included); we always stream from upstream, with
 * usage, and re-frame the answer ourselves, so streamed and whole answers go
 * through one path.
 *
 * Upstream errors become ImErrors that keep the upstream status and OpenAI
 * type/param/code in `details.openai`, so the server answers the client with
 * the upstream's own error.
 */
import { z } from 'zod';
import { ImError, ModelSizeClass, type ErrorCode } from '@idlemesh/protocol';
import { MODEL_ID_PATTERN, parametersFromName, sha256Hex, sizeClassOf, type Chunk, type LlmBackend, type ModelInfo, type ScoreRequest, type ScoreResult } from './backend.js';
import { httpFetch, httpStream } from './http.js';
import type { HttpInit, StreamedResponse } from './http.js';
import { ChatCompletionChunk, OpenAiErrorBody, TextCompletion, unsupported, type ChatCompletionRequest, type CompletionRequest, type OpenAiErrorDetails } from './openai.js';

const ModelEntry = z.strictObject({
  id: z.string().regex(MODEL_ID_PATTERN, 'letters, digits and . _ : / - (1-200)'),
  /** Default: from parameters, else from a size in the id (`7b`), else `m`. */
  sizeClass: ModelSizeClass.optional(),
  parameters: z.number().positive().optional(),
  contextSize: z.int().min(1).optional(),
  device: z.enum(['gpu', 'cpu']).optional(),
});

const OpenAiBackendOptionsSchema = z.strictObject({
  /** Base URL ending in /v1, e.g. http://127.0.0.1:11434/v1 for Ollama. */
  baseUrl: z.url().regex(/\/v1\/?$/, 'the base URL ends in /v1'),
  apiKey: z.string().min(1).optional(),
  /** The models to offer (ids as upstream knows them); default: whatever upstream's GET /models lists. */
  models: z.array(z.union([z.string().min(1), ModelEntry])).optional(),
  /** For models upstream does not describe. */
  contextSize: z.int().min(1).optional(),
  device: z.enum(['gpu', 'cpu']).optional(),
  /** How long upstream's model list is reused. */
  modelsTtlMs: z.int().min(0).optional(),
});
export type OpenAiBackendOptions = z.input<typeof OpenAiBackendOptionsSchema>;

const DEFAULT_CONTEXT_SIZE = 4096;
const DEFAULT_MODELS_TTL_MS = 10_000;

/** Upstream's model list: OpenAI's shape, plus what vLLM (max_model_len) and llama-server (meta) add. */
const UpstreamModels = z.looseObject({
  data: z.array(z.looseObject({
    id: z.string(),
    max_model_len: z.number().int().positive().optional(),
    context_size: z.number().int().positive().optional(),
    meta: z.looseObject({ n_ctx_train: z.number().int().positive().optional(), n_params: z.number().positive().optional() }).nullish(),
  })),
});

const EchoLogprobs = z.looseObject({
  choices: z.array(z.looseObject({
    logprobs: z.looseObject({
      tokens: z.array(z.string()),
      token_logprobs: z.array(z.number().nullable()),
      text_offset: z.array(z.number().int()),
    }).nullish(),
  })).min(1),
});

export class OpenAiCompatibleBackend implements LlmBackend {
  private readonly baseUrl: string;
  private readonly opts: z.infer<typeof OpenAiBackendOptionsSchema>;
  private cache: { at: number; models: ModelInfo[] } | undefined;

  constructor(options: OpenAiBackendOptions) {
    const r = OpenAiBackendOptionsSchema.safeParse(options);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new ImError('IM_CONFIG_INVALID', `OpenAI-compatible backend: ${i?.path.join('.') || 'options'}: ${i?.message ?? 'invalid'}`, { details: r.error.issues });
    }
    this.opts = r.data;
    this.baseUrl = r.data.baseUrl.replace(/\/+$/, '');
  }

  async models(): Promise<ModelInfo[]> {
    if (this.opts.models) return this.opts.models.map((m) => this.info(typeof m === 'string' ? { id: m } : m));
    const ttl = this.opts.modelsTtlMs ?? DEFAULT_MODELS_TTL_MS;
    if (this.cache && Date.now() - this.cache.at < ttl) return this.cache.models;
    const res = await this.fetch('/models', { method: 'GET' });
    const parsed = UpstreamModels.safeParse(await readJson(res));
    if (!parsed.success) throw new ImError('IM_UNAVAILABLE', `${this.baseUrl}/models answered something other than an OpenAI model list`);
    const models = parsed.data.data.filter((m) => MODEL_ID_PATTERN.test(m.id)).map((m) => {
      const contextSize = m.max_model_len ?? m.context_size ?? m.meta?.n_ctx_train;
      const parameters = m.meta?.n_params;
      return this.info({ id: m.id, ...(contextSize === undefined ? {} : { contextSize }), ...(parameters === undefined ? {} : { parameters }) });
    });
    this.cache = { at: Date.now(), models };
    return models;
  }

  async *chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncGenerator<Chunk> {
    const body = { ...req, stream: true, stream_options: { include_usage: true } };
    for await (const data of this.stream('/chat/completions', body, signal)) {
      const chunk = ChatCompletionChunk.safeParse(data);
      if (!chunk.success) continue;
      const choice = chunk.data.choices[0];
      if (choice) {
        const d = choice.delta;
        if (d.content) yield { type: 'text', text: d.content };
        for (const t of d.tool_calls ?? []) {
          yield {
            type: 'tool_call', index: t.index,
            ...(t.id ? { id: t.id } : {}),
            ...(t.function?.name ? { name: t.function.name } : {}),
            ...(t.function?.arguments ? { arguments: t.function.arguments } : {}),
          };
        }
        if (choice.finish_reason) yield { type: 'finish', reason: choice.finish_reason };
      }
      const u = chunk.data.usage;
      if (u) yield { type: 'usage', usage: { promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens } };
    }
  }

  async *complete(req: CompletionRequest, signal?: AbortSignal): AsyncGenerator<Chunk> {
    const body = { ...req, stream: true, stream_options: { include_usage: true } };
    for await (const data of this.stream('/completions', body, signal)) {
      const chunk = TextCompletion.safeParse(data);
      if (!chunk.success) continue;
      const choice = chunk.data.choices[0];
      if (choice?.text) yield { type: 'text', text: choice.text };
      if (choice?.finish_reason) yield { type: 'finish', reason: choice.finish_reason };
      const u = chunk.data.usage;
      if (u) yield { type: 'usage', usage: { promptTokens: u.prompt_tokens, completionTokens: u.completion_tokens } };
    }
  }

  /**
   * Through the legacy completions API with `echo` and `logprobs`: upstream
   * scores prompt + continuation as one text and we keep the tokens that
   * start inside the continuation. Upstream tokenises the whole text, so end
   * the prompt where a token ends (before a space). Servers without echo
   * (Ollama, llama-server, serve-model) get the unsupported error.
   */
  async score(req: ScoreRequest, signal?: AbortSignal): Promise<ScoreResult> {
    if (typeof req.prompt !== 'string') throw unsupported('the OpenAI-compatible backend scores raw text only: chat messages need the model\'s template, which upstream does not expose');
    if (typeof req.continuation !== 'string') throw unsupported('the OpenAI-compatible backend scores text only, not token ids');
    const text = req.prompt + req.continuation;
    let data: unknown;
    try {
      const res = await this.fetch('/completions', { method: 'POST', body: JSON.stringify({ model: req.model, prompt: text, max_tokens: 1, echo: true, logprobs: 0, temperature: 0 }), signal: signal ?? null });
      data = await readJson(res);
    } catch (err) {
      if (err instanceof ImError && err.status === 400) throw unsupported(`${this.baseUrl} does not score prompts (completions with echo and logprobs): ${err.message}`);
      throw err;
    }
    const lp = EchoLogprobs.safeParse(data);
    const l = lp.success ? lp.data.choices[0]?.logprobs : undefined;
    if (!l) throw unsupported(`${this.baseUrl} returned no logprobs for an echoed prompt: it cannot score`);
    const tokenLogprobs: number[] = [];
    const tokenTexts: string[] = [];
    l.text_offset.forEach((offset, i) => {
      if (offset < req.prompt.length || offset >= text.length) return;
      const v = l.token_logprobs[i];
      if (v === null || v === undefined) throw unsupported(`${this.baseUrl} returned no logprob for token ${i}`);
      tokenLogprobs.push(v);
      tokenTexts.push(l.tokens[i] ?? '');
    });
    return { tokenLogprobs, tokenTexts };
  }

  async close(): Promise<void> {
    this.cache = undefined;
  }

  private info(m: z.infer<typeof ModelEntry>): ModelInfo {
    const parameters = m.parameters ?? parametersFromName(m.id);
    return {
      id: m.id,
      // No file to hash: the id's hash, as the protocol's ModelOffer says.
      hash: sha256Hex(m.id),
      sizeClass: m.sizeClass ?? (parameters === undefined ? 'm' : sizeClassOf(parameters)),
      ...(parameters === undefined ? {} : { parameters }),
      contextSize: m.contextSize ?? this.opts.contextSize ?? DEFAULT_CONTEXT_SIZE,
      device: m.device ?? this.opts.device ?? 'cpu',
      backend: 'openai',
    };
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    return this.request(path, init, httpFetch);
  }

  private async request<R extends { ok: boolean; status: number; text(): Promise<string>; headers: Headers }>(path: string, init: RequestInit, send: (url: string, init: HttpInit) => Promise<R>): Promise<R> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = { Accept: 'application/json, text/event-stream' };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.opts.apiKey !== undefined) headers.Authorization = `Bearer ${this.opts.apiKey}`;
    let res: R;
    try {
      res = await send(url, { method: init.method ?? 'GET', headers, ...(typeof init.body === 'string' ? { body: init.body } : {}), signal: init.signal ?? null });
    } catch (err) {
      if (init.signal?.aborted) throw init.signal.reason;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ImError('IM_UNAVAILABLE', `cannot reach ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, { retryAfterMs: 1000, cause: err });
    }
    if (!res.ok) throw await upstreamError(url, res);
    return res;
  }

  /** POSTs a streaming request and yields each SSE data payload, parsed, until [DONE]. */
  private async *stream(path: string, body: unknown, signal: AbortSignal | undefined): AsyncGenerator<unknown> {
    const res: StreamedResponse = await this.request(path, { method: 'POST', body: JSON.stringify(body), ...(signal ? { signal } : {}) }, httpStream);
    try {
      for await (const data of sseEvents(res.body)) {
        if (data === '[DONE]') return;
        let value: unknown;
        try {
          value = JSON.parse(data);
        } catch {
          continue;
        }
        const err = OpenAiErrorBody.safeParse(value);
        if (err.success) throw errorFromBody(502, err.data, `${this.baseUrl}${path} failed mid-stream`);
        yield value;
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw err;
    } finally {
      // Stops the upstream generation when our caller stops early.
      res.cancel();
    }
  }
}

/** The `data:` payloads of a server-sent-event stream (multi-line data joined by \n; comments and other fields skipped). */
export async function* sseEvents(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  let data: string[] = [];
  const reader = 'getReader' in body ? body.getReader() : undefined;
  const it = reader ? undefined : (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      const { value, done } = reader ? await reader.read() : await it!.next();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield data.join('\n');
          data = [];
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
        }
      }
      if (done) break;
    }
    if (data.length > 0) yield data.join('\n');
  } finally {
    reader?.releaseLock();
    await it?.return?.();
  }
}

async function readJson(res: Response): Promise<unknown> {
  try {
    return await res.json();
  } catch (err) {
    throw new ImError('IM_UNAVAILABLE', `${res.url} answered something other than JSON`, { cause: err });
  }
}

const CODE_BY_STATUS: Record<number, ErrorCode> = { 400: 'IM_VALIDATION', 401: 'IM_UNAUTHORIZED', 403: 'IM_FORBIDDEN', 404: 'IM_NOT_FOUND', 413: 'IM_BODY_TOO_LARGE', 422: 'IM_VALIDATION', 429: 'IM_RATE_LIMITED', 503: 'IM_UNAVAILABLE' };

async function upstreamError(url: string, res: { status: number; text(): Promise<string>; headers: Headers }): Promise<ImError> {
  const text = await res.text().catch(() => '');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const retryAfter = Number(res.headers.get('retry-after'));
  const parsed = OpenAiErrorBody.safeParse(body);
  const fallback = `${url} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  return errorFromBody(res.status, parsed.success ? parsed.data : undefined, fallback, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
}

function errorFromBody(status: number, body: OpenAiErrorBody | undefined, fallback: string, retryAfterMs?: number): ImError {
  const code = CODE_BY_STATUS[status] ?? (status >= 500 ? 'IM_UNAVAILABLE' : 'IM_BAD_REQUEST');
  const details: OpenAiErrorDetails & { status: number } = { status };
  if (body) details.openai = { type: body.error.type, param: body.error.param, code: body.error.code };
  const opts: { details: unknown; retryAfterMs?: number } = { details };
  if (retryAfterMs !== undefined) opts.retryAfterMs = retryAfterMs;
  else if (code === 'IM_RATE_LIMITED' || code === 'IM_UNAVAILABLE') opts.retryAfterMs = 1000;
  return new ImError(code, body?.error.message ?? fallback, opts);
}
