import WebSocket from 'ws';
import { ServerMessage } from '@idlemesh/protocol';
import type { AgentMessage } from '@idlemesh/protocol';
import type { Logger } from './log.js';

export type Welcome = Extract<ServerMessage, { type: 'welcome' }>;
export type Hello = Extract<ServerMessage, { type: 'hello' }>;

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;
/** hello + auth + welcome must complete within this. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** A silent server is pinged; no pong within one interval ends the connection. */
const PING_MIN_MS = 15_000;

/** ws(s)://host/base/v1/agent for an http(s):// or ws(s):// coordinator URL. */
export function agentSocketUrl(coordinator: string): string {
  const u = new URL(coordinator);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/agent`;
  u.search = '';
  u.hash = '';
  return u.toString();
}

/** http(s)://host/base without a trailing slash, for REST calls. */
export function httpBaseUrl(coordinator: string): string {
  const u = new URL(coordinator);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'https:' : 'http:';
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

export interface ConnectionHandlers {
  /** Builds the signed auth message answering a hello. */
  auth(hello: Hello): Promise<AgentMessage>;
  onWelcome(w: Welcome): void;
  /** Every message after welcome. */
  onMessage(m: ServerMessage): void;
  /** The handshake was refused (the server sends error, then closes). */
  onRefused(err: { code: string; message: string; retryable: boolean }): void;
  /** Any close; `welcomed` says whether this connection had been authenticated. */
  onClose(info: { code: number; reason: string; welcomed: boolean; retryInMs: number }): void;
  /** A connection attempt failed before it was established. */
  onConnectError(err: Error, attempt: number): void;
}

/**
 * One logical connection to the coordinator: connects, authenticates,
 * reconnects with exponential backoff and jitter (250 ms doubling to 10 s,
 * reset after a welcome).
 */
export class Connection {
  private ws: WebSocket | undefined;
  private welcomed = false;
  private attempt = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private alive = true;
  private closedWaiters: (() => void)[] = [];
  private corked = false;

  /** Which of the URLs the current (or next) connection uses. */
  index = 0;

  constructor(
    private readonly urls: readonly string[],
    private readonly handlers: ConnectionHandlers,
    private readonly log: Logger,
  ) {}

  /** Open and authenticated: messages can be sent. */
  get ready(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Sends if ready; false otherwise (the caller keeps what must survive). */
  send(msg: AgentMessage): boolean {
    if (!this.ready || this.ws === undefined) return false;
    this.batchWrites(this.ws);
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Messages sent in one turn of the event loop leave in one write: the
   * chunks of one backend read (a role chunk and the first token, say)
   * reach the coordinator together instead of each waking it on its own.
   */
  private batchWrites(ws: WebSocket): void {
    const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void; destroyed: boolean } })._socket;
    if (this.corked || !socket || socket.destroyed) return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }

  /** Next reconnect waits the longest backoff (after a non-retryable refusal). */
  backOffFully(): void {
    this.attempt = Math.max(this.attempt, Math.ceil(Math.log2(BACKOFF_MAX_MS / BACKOFF_MIN_MS)));
  }

  /** Stops reconnecting and closes the socket; resolves once it is closed. */
  close(code = 1000, reason = 'agent stopped'): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const ws = this.ws;
    if (ws === undefined || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(code, reason);
    // A peer that never answers the close frame must not hold up shutdown.
    const force = setTimeout(() => ws.terminate(), 2000);
    return closed.finally(() => clearTimeout(force));
  }

  private connect(): void {
    if (this.stopped) return;
    this.welcomed = false;
    this.alive = true;
    const url = this.urls[this.index % this.urls.length] ?? '';
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
    this.ws = ws;
    let opened = false;
    this.handshakeTimer = setTimeout(() => {
      this.log.warn('coordinator did not complete the handshake in time; reconnecting');
      ws.terminate();
    }, HANDSHAKE_TIMEOUT_MS);
    ws.on('open', () => {
      opened = true;
    });
    ws.on('message', (data) => {
      this.alive = true;
      this.onData(ws, data);
    });
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (err) => {
      if (!opened) this.handlers.onConnectError(err, this.attempt);
      else this.log.debug(`socket error: ${err.message}`);
    });
    ws.on('close', (code, reasonBuf) => {
      const welcomed = this.welcomed;
      this.welcomed = false;
      this.clearConnTimers();
      if (this.ws === ws) this.ws = undefined;
      const retryInMs = this.stopped ? 0 : this.scheduleReconnect();
      this.handlers.onClose({ code, reason: reasonBuf.toString(), welcomed, retryInMs });
      if (this.stopped) {
        const waiters = this.closedWaiters;
        this.closedWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  private onData(ws: WebSocket, data: WebSocket.RawData): void {
    let parsed: ServerMessage;
    try {
      const r = ServerMessage.safeParse(JSON.parse(rawToString(data)));
      if (!r.success) {
        this.log.warn('ignoring a message the protocol does not know', { issues: r.error.issues.slice(0, 3) });
        return;
      }
      parsed = r.data;
    } catch {
      this.log.warn('ignoring a message that is not JSON');
      return;
    }
    if (this.welcomed) {
      this.handlers.onMessage(parsed);
      return;
    }
    switch (parsed.type) {
      case 'hello':
        this.handlers.auth(parsed).then(
          (msg) => {
            if (this.ws === ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
          },
          (err: unknown) => {
            this.log.error(`cannot sign auth: ${(err as Error).message}`);
            ws.terminate();
          },
        );
        return;
      case 'welcome':
        this.welcomed = true;
        this.attempt = 0;
        if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = undefined;
        this.startPing(parsed.heartbeatMs);
        this.handlers.onWelcome(parsed);
        return;
      case 'error':
        this.handlers.onRefused(parsed.error);
        return;
      default:
        this.log.debug(`ignoring ${parsed.type} before welcome`);
    }
  }

  private startPing(heartbeatMs: number): void {
    const every = Math.max(PING_MIN_MS, heartbeatMs * 3);
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (ws === undefined) return;
      if (!this.alive) {
        this.log.warn('coordinator stopped answering; reconnecting');
        ws.terminate();
        return;
      }
      this.alive = false;
      ws.ping();
    }, every);
  }

  private clearConnTimers(): void {
    if (this.handshakeTimer !== undefined) clearTimeout(this.handshakeTimer);
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.handshakeTimer = undefined;
    this.pingTimer = undefined;
  }

  private scheduleReconnect(): number {
    // Several coordinators share one store: try the next one, so a dead one is left at once.
    if (this.urls.length > 1) {
      this.index = (this.index + 1) % this.urls.length;
      if (this.attempt < this.urls.length) {
        this.attempt++;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.connect();
        }, BACKOFF_MIN_MS / 5);
        return BACKOFF_MIN_MS / 5;
      }
    }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    // Jitter over the upper half of the window, so a restarted coordinator is not stampeded.
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
    return delay;
  }
}

function rawToString(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
