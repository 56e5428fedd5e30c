/**
 * A standalone OpenAI-compatible HTTP server in front of any backend: what
 * `idlemesh serve-model` runs, and what the OpenAI-compatible backend can
 * point at. Plain node:http: the surface is four routes, and the SSE
 * streaming needs the raw response anyway.
 *
 * Requests to one model run one at a time (ModelQueue); the rest wait in
 * order, and past `maxQueue` waiting the answer is 429 with Retry-After. A
 * client that disconnects aborts its generation (or leaves the queue).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ImError } from '@idlemesh/protocol';
import type { LlmBackend, ModelInfo } from './backend.js';
import {
  authenticationError,
  ChatCompletionRequest,
  CompletionRequest,
  fromZodError,
  invalidRequest,
  modelNotFound,
  OpenAiError,
  routeNotFound,
  serverUnavailable,
  SSE_DONE,
  sseData,
  sseError,
  toOpenAiError,
} from './openai.js';
import { ModelQueue } from './queue.js';
import { runChatCompletion, runTextCompletion } from './responses.js';

const ServerOptionsSchema = z.strictObject({
  host: z.string().min(1).optional(),
  port: z.int().min(0).max(65535).optional(),
  /** Clients must send `Authorization: Bearer <apiKey>`; none: open to whoever reaches the port. */
  apiKey: z.string().min(1).optional(),
  /** Requests waiting per model beyond the one running; more get 429. */
  maxQueue: z.int().min(0).max(100_000).optional(),
  retryAfterSec: z.int().min(1).max(3600).optional(),
  bodyLimitBytes: z.int().min(1024).optional(),
  /** Called with errors answered as 5xx (the client got an OpenAI-shaped error; this is for the operator's log). */
  onError: z.custom<(err: unknown) => void>((v) => typeof v === 'function').optional(),
});
export type OpenAiServerOptions = z.input<typeof ServerOptionsSchema>;

export interface ResolvedServerOptions {
  host: string;
  port: number;
  apiKey: string | undefined;
  maxQueue: number;
  retryAfterSec: number;
  bodyLimitBytes: number;
  onError: ((err: unknown) => void) | undefined;
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_QUEUE = 16;

export function resolveServerOptions(input: OpenAiServerOptions = {}): ResolvedServerOptions {
  const r = ServerOptionsSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ImError('IM_CONFIG_INVALID', `OpenAI server: ${i?.path.join('.') || 'options'}: ${i?.message ?? 'invalid'}`, { details: r.error.issues });
  }
  const o = r.data;
  return {
    host: o.host ?? '127.0.0.1',
    port: o.port ?? DEFAULT_PORT,
    apiKey: o.apiKey,
    maxQueue: o.maxQueue ?? DEFAULT_MAX_QUEUE,
    retryAfterSec: o.retryAfterSec ?? 1,
    bodyLimitBytes: o.bodyLimitBytes ?? 8 * 1024 * 1024,
    onError: o.onError,
  };
}

export interface OpenAiServer {
  /** Base URL of the API, ending in /v1 (what OpenAI clients take as baseURL). */
  url: string;
  host: string;
  port: number;
  /** Stops listening, aborts generations in flight and closes connections. Does not close the backend. */
  close(): Promise<void>;
}

export async function createOpenAiServer(backend: LlmBackend, options: OpenAiServerOptions = {}): Promise<OpenAiServer> {
  const opts = resolveServerOptions(options);
  const queue = new ModelQueue(opts.maxQueue, opts.retryAfterSec * 1000);
  const keyDigest = opts.apiKey === undefined ? undefined : digest(opts.apiKey);
  const inFlight = new Set<{ abort: AbortController; done: Promise<void> }>();
  let closing = false;
  const created = Math.floor(Date.now() / 1000);

  const handle = async (req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (path === '/health' && method === 'GET') return sendJson(res, 200, { status: 'ok' });
    if (closing) throw serverUnavailable('the server is shutting down', opts.retryAfterSec);
    if (keyDigest !== undefined) checkKey(req, keyDigest);

    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (method !== 'GET') throw methodNotAllowed(method, path);
      const models = await backend.models();
      if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: models.map((m) => modelObject(m, created)) });
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      const m = models.find((x) => x.id === id);
      if (!m) throw modelNotFound(id);
      return sendJson(res, 200, modelObject(m, created));
    }
    const chat = path === '/v1/chat/completions';
    if (!chat && path !== '/v1/completions') throw routeNotFound(method, path);
    if (method !== 'POST') throw methodNotAllowed(method, path);

    const json = await readJson(req, opts.bodyLimitBytes);
    const parsed = chat ? ChatCompletionRequest.safeParse(json) : CompletionRequest.safeParse(json);
    if (!parsed.success) throw fromZodError(parsed.error);
    const body = parsed.data;
    if (!(await backend.models()).some((m) => m.id === body.model)) throw modelNotFound(body.model);

    const release = await queue.acquire(body.model, signal);
    try {
      if (body.stream !== true) {
        const r = chat ? await runChatCompletion(backend, body as ChatCompletionRequest, { signal }) : await runTextCompletion(backend, body as CompletionRequest, { signal });
        return sendJson(res, 200, r);
      }
      // Headers go out with the first chunk: a failure before it is still an HTTP error status.
      const onChunk = async (chunk: unknown): Promise<void> => {
        if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
        if (!res.write(sseData(chunk))) await once(res, 'drain', { signal });
      };
      try {
        if (chat) await runChatCompletion(backend, body as ChatCompletionRequest, { signal, onChunk });
        else await runTextCompletion(backend, body as CompletionRequest, { signal, onChunk });
      } catch (err) {
        if (!res.headersSent || signal.aborted) throw err;
        const e = toOpenAiError(err);
        if (e.status >= 500) opts.onError?.(err);
        res.end(sseError(e));
        return;
      }
      res.end(SSE_DONE);
    } finally {
      release();
    }
  };

  const server = createServer((req, res) => {
    const abort = new AbortController();
    // The client went away before the answer was complete: stop generating for it.
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ImError('IM_CANCELLED', 'the client went away'));
    });
    const entry = {
      abort,
      done: handle(req, res, abort.signal).catch((err: unknown) => {
        if (abort.signal.aborted || res.destroyed) return;
        const e = toOpenAiError(err);
        if (e.status >= 500) opts.onError?.(err);
        if (res.headersSent) res.end();
        else sendError(res, e);
      }).finally(() => inFlight.delete(entry)),
    };
    inFlight.add(entry);
  });

  server.listen(opts.port, opts.host);
  try {
    await once(server, 'listening');
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `cannot listen on ${opts.host}:${opts.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const port = (server.address() as AddressInfo).port;
  const urlHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;

  return {
    url: `http://${urlHost}:${port}/v1`,
    host: opts.host,
    port,
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const r of inFlight) r.abort.abort(new ImError('IM_UNAVAILABLE', 'the server is shutting down'));
      await Promise.all([...inFlight].map((r) => r.done));
      server.closeAllConnections();
      await stopped;
    },
  };
}

/** A model in OpenAI's list shape, plus what a mesh needs to know about it (same field names as the coordinator's list). */
function modelObject(m: ModelInfo, created: number): Record<string, unknown> {
  return {
    id: m.id, object: 'model', created, owned_by: 'idlemesh',
    hash: m.hash, size_class: m.sizeClass, context_size: m.contextSize, device: m.device, backend: m.backend,
    ...(m.parameters === undefined ? {} : { parameters: m.parameters }),
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares digests in constant time, so response timing says nothing about the key. */
function checkKey(req: IncomingMessage, expected: Buffer): void {
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim());
  if (!m) throw authenticationError('No API key provided: send it as "Authorization: Bearer <key>".');
  if (!timingSafeEqual(digest(m[1]!), expected)) throw authenticationError();
}

function methodNotAllowed(method: string, path: string): OpenAiError {
  return new OpenAiError(405, 'invalid_request_error', `${method} is not allowed on ${path}`, null, 'method_not_allowed');
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new OpenAiError(413, 'invalid_request_error', `The request body is larger than ${limit} bytes.`, null, 'request_too_large');
    chunks.push(b);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw invalidRequest('The body of the request is not valid JSON; send a JSON object (Content-Type: application/json).');
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: OpenAiError): void {
  sendJson(res, e.status, e.body(), e.retryAfterSec === undefined ? {} : { 'Retry-After': String(e.retryAfterSec) });
}
