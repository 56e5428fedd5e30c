import { readFile } from 'node:fs/promises';
import Fastify, { LogController } from 'fastify';
import type { FastifyError } from 'fastify';
import websocket from '@fastify/websocket';
import { ImError, MAX_AGENT_MESSAGE_BYTES } from '@idlemesh/protocol';
import type { CoordinatorOptions } from '../config.js';
import { Core } from '../core.js';
import { createMetrics } from '../metrics.js';
import { openStore } from '../store/index.js';
import type { Store } from '../store/index.js';
import { OpenAiError, toOpenAi } from '../inference.js';
import { openAiErrorBody } from './openai-errors.js';
import { handleAgentSocket } from './agents.js';
import { registerRoutes } from './http.js';
import { registerWeb } from './web.js';

export interface RunningCoordinator {
  /** Base URL, e.g. http://127.0.0.1:7070 */
  readonly url: string;
  readonly port: number;
  readonly store: Store;
  /** Until the first admin exists: the one-time token that creates it (`idlemesh bootstrap`). */
  readonly bootstrapToken: string | undefined;
  close(): Promise<void>;
}

const FASTIFY_ERRORS: Record<string, ImError['code']> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'IM_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'IM_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'IM_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'IM_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'IM_BAD_REQUEST',
};

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const store = await openStore(opts.store, opts.dataDir, { synchronous: opts.sqliteSynchronous });
  const https = opts.tlsCert !== undefined && opts.tlsKey !== undefined
    ? { cert: await readFile(opts.tlsCert), key: await readFile(opts.tlsKey) }
    : undefined;
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new ImError('IM_CONFIG_INVALID', 'HTTPS needs both tlsCert and tlsKey');
  const app = Fastify({
    ...(https ? { https } : {}),
    trustProxy: opts.trustProxy,
    // Logs go to stderr: stdout stays for what a command prints (`--json` documents, tables).
    logger: opts.logLevel === 'silent' ? false : { level: opts.logLevel, stream: process.stderr },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes,
    forceCloseConnections: true,
    return503OnClosing: true,
  });
  const metrics = createMetrics();
  const core = new Core(store, opts, metrics, app.log);

  app.addContentTypeParser(['application/wasm', 'application/octet-stream'], { parseAs: 'buffer', bodyLimit: opts.moduleLimitBytes }, (_req, body, done) => {
    done(null, body);
  });
  app.setErrorHandler((err: FastifyError | ImError | OpenAiError, req, reply) => {
    // The OpenAI-compatible routes answer in OpenAI's error shape, so its clients understand them.
    const openAi = OPENAI_ROUTES.has(req.routeOptions.url ?? '');
    if (err instanceof OpenAiError) {
      if (err.retryAfterSec !== undefined) reply.header('retry-after', err.retryAfterSec);
      return reply.code(err.status).send(openAiErrorBody(err));
    }
    let e: ImError;
    if (err instanceof ImError) e = err;
    else if (err.code && FASTIFY_ERRORS[err.code]) e = new ImError(FASTIFY_ERRORS[err.code] ?? 'IM_BAD_REQUEST', err.message);
    else if (err instanceof SyntaxError || err.statusCode === 400) e = new ImError('IM_BAD_REQUEST', err.message);
    else {
      req.log.error({ err }, 'unhandled error');
      e = new ImError('IM_INTERNAL');
    }
    if (e.retryAfterMs !== undefined) reply.header('retry-after', Math.ceil(e.retryAfterMs / 1000));
    if (openAi) return reply.code(e.status).send(openAiErrorBody(toOpenAi(e)));
    return reply.code(e.status).send({ error: e.toWire() });
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ImError('IM_ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0] ?? ''}`);
    return reply.code(404).send({ error: e.toWire() });
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpDuration.observe(
      { route: req.routeOptions.url ?? 'unknown', method: req.method, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  await app.register(websocket, { options: { maxPayload: MAX_AGENT_MESSAGE_BYTES, perMessageDeflate: false } });
  app.register(async (scoped) => {
    scoped.get('/v1/agent', { websocket: true }, (socket, req) => handleAgentSocket(core, socket, req.ip));
  });
  registerRoutes(app, core);
  registerWeb(app);

  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const scheme = https ? 'https' : 'http';
  // WebAuthn refuses IP addresses as the relying party: people open localhost (or the public URL).
  const publicUrl = new URL(opts.publicUrl ?? `${scheme}://localhost:${port}`);
  core.setRelyingParty({ rpID: publicUrl.hostname, origin: publicUrl.origin, rpName: `idlemesh ${opts.coordinatorId}` }, `${publicUrl.host}/idlemesh`);
  await core.start();
  app.log.info({ url: `${scheme}://${host}:${port}`, store: store.durability, dataDir: opts.dataDir }, 'coordinator listening');
  const bootstrapToken = await core.identity.bootstrapToken();
  if (bootstrapToken !== undefined) {
    app.log.info({ bootstrapToken }, 'no admin yet: open to this machine only; `idlemesh bootstrap --token <bootstrapToken> --org <name>` creates the first admin and turns API keys on');
  }

  let closing: Promise<void> | undefined;
  return {
    url: `${scheme}://${host}:${port}`,
    port,
    store,
    bootstrapToken,
    close: () =>
      (closing ??= (async () => {
        await core.stop();
        await app.close();
        await store.close();
      })()),
  };
}

/** Routes that speak OpenAI's dialect, errors included. */
const OPENAI_ROUTES = new Set(['/v1/models', '/v1/chat/completions', '/v1/completions']);

