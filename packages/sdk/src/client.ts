import { z } from 'zod';
import {
  AccountDetail, DepositAddressView, DepositList, DevFundBody, LedgerCheckView, LightningInvoiceView, MarketView, ModelRegistryView, StakeView, TransferView,
  PayoutBatchList, PayoutBatchView, WithdrawalList, WithdrawalView, type WithdrawBody,
  type SignedRequest, type StakeOp,
  ErrorBody, ImError, InfoView, JobEvent, JobList, JobView, ModuleInfo, NodeList, ResultsPage, SubmitJobBody, SubmittedJob,
  type ErrorCode, type JobState, type NodeView, type TaskResultView, type TaskState, type WireError,
} from '@idlemesh/protocol';
import { parseSse } from './sse.js';
import { nodeTransport, type SendText, type TextResponse } from './transport.js';

export interface ClientOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:7070 */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Replaces global fetch (tests, proxies, other runtimes). */
  fetch?: typeof fetch;
  /** Per request, until the whole response is read; for streams, until the headers arrive. Default 30 s. */
  timeoutMs?: number;
}

export interface ResultsQuery {
  after?: number;
  limit?: number;
  state?: TaskState;
  /** Long poll: the coordinator holds the request until the job ends, up to this many ms. */
  wait?: number;
}
export interface JobsQuery { state?: JobState; limit?: number }
export interface WaitOptions { onProgress?: (job: JobView) => void; signal?: AbortSignal }

const TERMINAL: ReadonlySet<JobState> = new Set(['completed', 'cancelled']);
const POLL_MS = 500;
/** While polling, how long the coordinator may stay unreachable before waitForJob gives up. */
const POLL_GIVE_UP_MS = 30_000;

interface RequestSpec<T> {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  schema: z.ZodType<T>;
  signal?: AbortSignal;
  /** Overrides the client's timeout for this request (long polls). */
  timeoutMs?: number;
}

/** A typed client for one coordinator's HTTP API. Every response is checked against the protocol schemas. */
export class IdlemeshClient {
  readonly url: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof fetch;
  /** node:http in Node unless a fetch was given: plain requests cost a fraction of fetch's CPU. */
  readonly #sendText: SendText | undefined;
  readonly #timeoutMs: number;

  constructor(opts: ClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new ImError('IM_CONFIG_INVALID', `not a URL: ${JSON.stringify(opts.url)}; use e.g. http://127.0.0.1:7070`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ImError('IM_CONFIG_INVALID', `coordinator URL must be http(s): ${opts.url}`);
    }
    this.url = opts.url.replace(/\/+$/, '');
    this.#apiKey = opts.apiKey;
    this.#fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.#sendText = opts.fetch === undefined ? nodeTransport() : undefined;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async health(): Promise<{ ok: boolean }> {
    return this.#request({ method: 'GET', path: '/healthz', schema: HealthSchema });
  }

  async info(): Promise<InfoView> {
    return this.#request({ method: 'GET', path: '/v1/info', schema: InfoView });
  }

  async uploadModule(bytes: Uint8Array): Promise<ModuleInfo> {
    return this.#request({ method: 'POST', path: '/v1/modules', bytes, schema: ModuleInfo });
  }

  /**
   * Submits a job. With `wait` (ms, up to 60,000) the coordinator holds the
   * answer until the job ends and includes its first page of results: one
   * round trip for a caller that wants the answer now. A job still running when
   * the wait runs out comes back without `results`.
   */
  async submitJob(body: SubmitJobBody, opts: { idempotencyKey?: string; wait?: number } = {}): Promise<SubmittedJob> {
    // Checked here too, so a bad job fails before its inputs cross the network.
    const checked = SubmitJobBody.safeParse(body);
    if (!checked.success) {
      throw new ImError('IM_VALIDATION', `invalid job: ${checked.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`, { details: checked.error.issues });
    }
    const headers: Record<string, string> = {};
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    return this.#request({
      method: 'POST',
      path: '/v1/jobs',
      json: checked.data,
      headers,
      schema: SubmittedJob,
      ...(opts.wait !== undefined ? { query: { wait: opts.wait }, timeoutMs: this.#timeoutMs + opts.wait } : {}),
    });
  }

  async getJob(id: string): Promise<JobView> {
    return this.#request({ method: 'GET', path: `/v1/jobs/${encodeURIComponent(id)}`, schema: JobView });
  }

  async listJobs(q: JobsQuery = {}): Promise<JobView[]> {
    const page = await this.#request({ method: 'GET', path: '/v1/jobs', query: { state: q.state, limit: q.limit }, schema: JobList });
    return page.jobs;
  }

  async cancelJob(id: string): Promise<JobView> {
    return this.#request({ method: 'POST', path: `/v1/jobs/${encodeURIComponent(id)}/cancel`, schema: JobView });
  }

  async results(id: string, q: ResultsQuery = {}): Promise<ResultsPage> {
    return this.#request({
      method: 'GET',
      path: `/v1/jobs/${encodeURIComponent(id)}/results`,
      query: { after: q.after, limit: q.limit, state: q.state, wait: q.wait },
      schema: ResultsPage,
      ...(q.wait !== undefined ? { timeoutMs: this.#timeoutMs + q.wait } : {}),
    });
  }

  /** Every result of a job in index order, fetching pages as the caller iterates. */
  async *allResults(id: string, q: Omit<ResultsQuery, 'after'> = {}): AsyncGenerator<TaskResultView> {
    let after: number | null = -1;
    while (after !== null) {
      const page: ResultsPage = await this.results(id, { ...q, after });
      yield* page.results;
      if (page.next !== null && page.next <= after) {
        throw new ImError('IM_PROTOCOL_VERSION', `results paging from ${this.url} did not advance (after=${after}, next=${page.next})`);
      }
      after = page.next;
    }
  }

  /** Spot prices (median clearing ask of the last hour), supply and demand per runtime. */
  /** The model registry: each model agents serve, its hosts and asks, and its demand over the last day. */
  async modelRegistry(): Promise<ModelRegistryView['models']> {
    return (await this.#request({ method: 'GET', path: '/v1/registry/models', schema: ModelRegistryView })).models;
  }

  async market(): Promise<MarketView> {
    return this.#request({ method: 'GET', path: '/v1/market', schema: MarketView });
  }

  /** An account and its latest transfers; without an id, the caller's own buyer account. */
  async account(id?: string, opts: { limit?: number } = {}): Promise<AccountDetail> {
    const path = id === undefined ? '/v1/accounts/me' : `/v1/accounts/${encodeURIComponent(id)}`;
    return this.#request({ method: 'GET', path, query: { limit: opts.limit }, schema: AccountDetail });
  }

  /** Audits the coordinator's ledger. */
  async ledgerCheck(): Promise<LedgerCheckView> {
    return this.#request({ method: 'GET', path: '/v1/ledger/check', schema: LedgerCheckView });
  }

  /** A fresh on-chain receive address; credited after the coordinator's minConf confirmations. */
  async depositAddress(account?: string): Promise<DepositAddressView> {
    return this.#request({ method: 'POST', path: '/v1/deposits/address', json: account === undefined ? {} : { account }, schema: DepositAddressView });
  }

  /** A Lightning invoice that credits the account once paid. */
  async lightningDeposit(sats: number, account?: string): Promise<LightningInvoiceView> {
    return this.#request({ method: 'POST', path: '/v1/deposits/lightning', json: account === undefined ? { sats } : { sats, account }, schema: LightningInvoiceView });
  }

  async deposits(): Promise<DepositList> {
    return this.#request({ method: 'GET', path: '/v1/deposits', schema: DepositList });
  }

  /** Withdraw from your buyer account (or, with a node-signed request, from operator:<node id>). */
  async withdraw(body: WithdrawBody | SignedRequest<WithdrawBody>): Promise<WithdrawalView> {
    return this.#request({ method: 'POST', path: '/v1/withdrawals', json: body, schema: WithdrawalView });
  }

  async withdrawals(account?: string): Promise<WithdrawalView[]> {
    return (await this.#request({ method: 'GET', path: '/v1/withdrawals', query: { account }, schema: WithdrawalList })).withdrawals;
  }

  async payoutBatches(): Promise<PayoutBatchView[]> {
    return (await this.#request({ method: 'GET', path: '/v1/payouts/batches', schema: PayoutBatchList })).batches;
  }

  async payoutBatch(id: string): Promise<PayoutBatchView> {
    return this.#request({ method: 'GET', path: `/v1/payouts/batches/${encodeURIComponent(id)}`, schema: PayoutBatchView });
  }

  /** Batches the queued on-chain withdrawals into one unsigned PSBT now. */
  async buildPayoutBatch(): Promise<PayoutBatchView> {
    return this.#request({ method: 'POST', path: '/v1/payouts/batches', schema: PayoutBatchView });
  }

  async importSignedPsbt(batchId: string, psbt: string): Promise<PayoutBatchView> {
    return this.#request({ method: 'POST', path: `/v1/payouts/batches/${encodeURIComponent(batchId)}/signed`, json: { psbt }, schema: PayoutBatchView });
  }

  async rejectPayoutBatch(batchId: string, reason: string): Promise<PayoutBatchView> {
    return this.#request({ method: 'POST', path: `/v1/payouts/batches/${encodeURIComponent(batchId)}/reject`, json: { reason }, schema: PayoutBatchView });
  }

  /** A node's bonds and its stake and operator accounts. */
  async stakes(nodeId: string): Promise<StakeView> {
    return this.#request({ method: 'GET', path: `/v1/stakes/${encodeURIComponent(nodeId)}`, schema: StakeView });
  }

  /** Bond, unbond or release: `req` is signed with the node key (`signRequest(key, 'stake', op, now)`). */
  async stake(req: SignedRequest<StakeOp>): Promise<StakeView> {
    return this.#request({ method: 'POST', path: '/v1/stakes', json: req, schema: StakeView });
  }

  /** Dev only (coordinator on --network regtest): credits regtest sats to an account. */
  async devFund(body: DevFundBody): Promise<TransferView> {
    return this.#request({ method: 'POST', path: '/v1/dev/fund', json: body, schema: TransferView });
  }

  async nodes(): Promise<NodeView[]> {
    const list = await this.#request({ method: 'GET', path: '/v1/nodes', schema: NodeList });
    return list.nodes;
  }

  /**
   * Live progress of a job: `progress` events, then one `end` event, after
   * which the iteration finishes. Ends early (without `end`) if the server
   * closes the stream; throws IM_CONNECTION_FAILED if it cannot be opened.
   */
  async *events(id: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<JobEvent> {
    const path = `/v1/jobs/${encodeURIComponent(id)}/events`;
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort(opts.signal?.reason);
    if (opts.signal?.aborted) throw opts.signal.reason;
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await this.#send('GET', path, { headers: { accept: 'text/event-stream' } }, ctl, opts.signal, true);
      if (!res.ok) throw await this.#errorFrom(res, path);
      const type = res.headers.get('content-type') ?? '';
      if (!type.startsWith('text/event-stream')) {
        await res.body?.cancel();
        throw this.#badResponse(path, `expected text/event-stream, got ${type || 'no content type'}`);
      }
      if (res.body === null) return;
      for await (const msg of parseSse(this.#readBody(res.body, path, opts.signal))) {
        const ev = this.#toJobEvent(msg.event, msg.data, path);
        if (ev === undefined) continue;
        yield ev;
        if (ev.type === 'end') return;
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      ctl.abort(); // closes the stream when the caller stops early
    }
  }

  /**
   * Resolves with the job once it is completed or cancelled. Follows the event
   * stream; if the stream breaks, polls GET /v1/jobs/:id every 500 ms instead.
   */
  async waitForJob(id: string, opts: WaitOptions = {}): Promise<JobView> {
    const { onProgress, signal } = opts;
    try {
      for await (const ev of this.events(id, signal === undefined ? {} : { signal })) {
        onProgress?.(ev.job);
        if (ev.type === 'end' || TERMINAL.has(ev.job.state)) return ev.job;
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      // A job that does not exist will not appear by polling.
      if (err instanceof ImError && !err.retryable && err.code !== 'IM_ROUTE_NOT_FOUND' && err.code !== 'IM_PROTOCOL_VERSION') throw err;
    }
    let failingSince: number | undefined;
    for (;;) {
      try {
        const job = await this.getJob(id);
        failingSince = undefined;
        onProgress?.(job);
        if (TERMINAL.has(job.state)) return job;
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (!(err instanceof ImError) || !err.retryable) throw err;
        failingSince ??= Date.now();
        if (Date.now() - failingSince > POLL_GIVE_UP_MS) throw err;
      }
      await sleep(POLL_MS, signal);
    }
  }

  // ---- plumbing ------------------------------------------------------------

  async #request<T>(spec: RequestSpec<T>): Promise<T> {
    const ctl = new AbortController();
    const onAbort = (): void => ctl.abort(spec.signal?.reason);
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctl.abort(new TimeoutSignal()), spec.timeoutMs ?? this.#timeoutMs);
    let path = spec.path;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    if (qs.size > 0) path += `?${qs.toString()}`;
    try {
      const init: SendInit = { headers: { ...spec.headers } };
      if (spec.json !== undefined) {
        init.headers['content-type'] = 'application/json';
        init.body = JSON.stringify(spec.json);
      } else if (spec.bytes !== undefined) {
        init.headers['content-type'] = 'application/wasm';
        init.body = spec.bytes;
      }
      const { status, text } = await this.#exchange(spec.method, path, init, ctl, spec.signal);
      if (status < 200 || status > 299) {
        // /healthz answers 503 {ok:false} when the store is down: that is an answer, not an error.
        if (spec.schema === (HealthSchema as z.ZodType)) {
          const health = HealthSchema.safeParse(safeJson(text));
          if (health.success) return health.data as T;
        }
        throw this.#errorFromText(status, text, path);
      }
      const body = safeJson(text);
      if (body === NOT_JSON) throw this.#badResponse(path, `not JSON: ${preview(text)}`);
      const parsed = spec.schema.safeParse(body);
      if (!parsed.success) {
        throw this.#badResponse(path, parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
      }
      return parsed.data;
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** One whole request and response, on node:http when there is one, else fetch. */
  async #exchange(method: string, path: string, init: SendInit, ctl: AbortController, signal: AbortSignal | undefined): Promise<TextResponse> {
    if (this.#sendText === undefined) {
      const res = await this.#send(method, path, init, ctl, signal, false);
      return { status: res.status, text: await this.#text(res, path, ctl, signal) };
    }
    try {
      return await this.#sendText(`${this.url}${path}`, { method, headers: this.#headers(init), ...(init.body !== undefined ? { body: init.body } : {}), signal: ctl.signal });
    } catch (err) {
      throw this.#transportError(err, ctl, signal, path);
    }
  }

  #headers(init: SendInit): Record<string, string> {
    const headers = { ...init.headers };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    if (headers.accept === undefined) headers.accept = 'application/json';
    return headers;
  }

  async #send(method: string, path: string, init: SendInit, ctl: AbortController, signal: AbortSignal | undefined, stream: boolean): Promise<Response> {
    const headers = this.#headers(init);
    // Streams get the timeout only until their headers arrive.
    const timer = stream ? setTimeout(() => ctl.abort(new TimeoutSignal()), this.#timeoutMs) : undefined;
    try {
      const req: RequestInit = { method, headers, signal: ctl.signal };
      if (init.body !== undefined) req.body = init.body as NonNullable<RequestInit['body']>;
      return await this.#fetch(`${this.url}${path}`, req);
    } catch (err) {
      throw this.#transportError(err, ctl, signal);
    } finally {
      clearTimeout(timer);
    }
  }

  async #text(res: Response, path: string, ctl: AbortController, signal: AbortSignal | undefined): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      throw this.#transportError(err, ctl, signal, path);
    }
  }

  async *#readBody(body: ReadableStream<Uint8Array>, path: string, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const reader = body.getReader();
    try {
      for (;;) {
        const r = await reader.read().catch((err: unknown) => {
          if (signal?.aborted) throw signal.reason;
          throw new ImError('IM_CONNECTION_FAILED', `event stream from ${this.url}${path} broke: ${describe(err)}`, { cause: err });
        });
        if (r.done) return;
        yield r.value;
      }
    } finally {
      reader.releaseLock();
    }
  }

  #transportError(err: unknown, ctl: AbortController, signal: AbortSignal | undefined, path?: string): unknown {
    if (signal?.aborted) return signal.reason;
    if (ctl.signal.reason instanceof TimeoutSignal) {
      return new ImError('IM_CONNECTION_FAILED', `${this.url} did not answer within ${this.#timeoutMs} ms`, { cause: err });
    }
    const where = path === undefined ? this.url : `${this.url}${path}`;
    return new ImError('IM_CONNECTION_FAILED', `could not reach ${where}: ${describe(err)}`, { cause: err });
  }

  async #errorFrom(res: Response, path: string, ctl?: AbortController, signal?: AbortSignal): Promise<ImError> {
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw this.#transportError(err, ctl ?? new AbortController(), signal, path);
    }
    return this.#errorFromText(res.status, text, path);
  }

  #errorFromText(status: number, text: string, path: string): ImError {
    const body = ErrorBody.safeParse(safeJson(text));
    if (body.success) {
      const e = body.data.error;
      const wire: WireError = { code: e.code, message: e.message, retryable: e.retryable };
      if (e.retryAfterMs !== undefined) wire.retryAfterMs = e.retryAfterMs;
      if (e.details !== undefined) wire.details = e.details;
      return ImError.fromWire(wire, status);
    }
    // Not an idlemesh error body: a proxy, or not a coordinator at all.
    const code: ErrorCode = status === 404 ? 'IM_ROUTE_NOT_FOUND'
      : status === 401 || status === 403 ? 'IM_UNAUTHORIZED'
        : status === 429 ? 'IM_RATE_LIMITED'
          : status >= 500 ? 'IM_UNAVAILABLE'
            : 'IM_BAD_REQUEST';
    const err = new ImError(code, `HTTP ${status} from ${this.url}${path}: ${preview(text) || '(empty body)'}`);
    if (status !== err.status) Object.defineProperty(err, 'status', { value: status });
    return err;
  }

  #badResponse(path: string, why: string): ImError {
    return new ImError('IM_PROTOCOL_VERSION', `unexpected response from ${this.url}${path} (is this an idlemesh coordinator of a compatible version?): ${why}`);
  }

  #toJobEvent(name: string, data: string, path: string): JobEvent | undefined {
    const value = safeJson(data);
    if (value === NOT_JSON) throw this.#badResponse(path, `event data is not JSON: ${preview(data)}`);
    if (name === 'error') {
      const body = ErrorBody.safeParse(value);
      if (body.success) throw this.#errorFromText(500, data, path);
    }
    let candidate: unknown = value;
    // Accept `event: progress` + `data: {job}` or `data: JobView` as well as `data: {type, job}`.
    if (isObject(value) && value.type === undefined && (name === 'progress' || name === 'end')) {
      candidate = { type: name, job: 'job' in value ? value.job : value };
    }
    if (!isObject(candidate) || (candidate.type !== 'progress' && candidate.type !== 'end')) return undefined; // keep-alive or future event
    const parsed = JobEvent.safeParse(candidate);
    if (!parsed.success) throw this.#badResponse(path, `bad ${name} event: ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }
}

interface SendInit { headers: Record<string, string>; body?: string | Uint8Array }

/** Marks an abort as ours (timeout) rather than the caller's. */
class TimeoutSignal extends Error {}

const HealthSchema = z.object({ ok: z.boolean() });

const NOT_JSON = Symbol('not json');
function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function preview(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici wraps the useful part (ECONNREFUSED …) in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return err.message;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
