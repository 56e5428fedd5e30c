/**
 * StoreEvents between coordinators over PostgreSQL LISTEN/NOTIFY: one channel
 * per schema, JSON payloads, one dedicated connection that LISTENs and comes
 * back by itself if it drops.
 */
import pg from 'pg';
import type { ClientConfig, Notification } from 'pg';
import type { StoreEvent } from './types.js';

/** NOTIFY refuses payloads of 8000 bytes or more; keep a margin. */
export const MAX_PAYLOAD_BYTES = 7500;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/**
 * One event as one or more NOTIFY payloads. Only lists grow without bound, so
 * a progress event's jobs (or a revoke's task ids) are split over several
 * events of the same kind; each listener handles them as it would the whole.
 */
export function encodeEvent(event: StoreEvent): string[] {
  const whole = JSON.stringify(event);
  if (Buffer.byteLength(whole) <= MAX_PAYLOAD_BYTES) return [whole];
  if (event.type === 'progress') return split(event.jobs, (jobs) => ({ ...event, jobs }));
  if (event.type === 'revoke') return split(event.taskIds, (taskIds) => ({ ...event, taskIds }));
  throw new Error(`store event of ${Buffer.byteLength(whole)} bytes does not fit a NOTIFY payload`);
}

function split(items: readonly string[], make: (items: string[]) => StoreEvent): string[] {
  const base = Buffer.byteLength(JSON.stringify(make([])));
  const out: string[] = [];
  let chunk: string[] = [];
  let size = base;
  for (const item of items) {
    const add = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (base + add > MAX_PAYLOAD_BYTES) throw new Error('a single store event item does not fit a NOTIFY payload');
    if (size + add > MAX_PAYLOAD_BYTES) {
      out.push(JSON.stringify(make(chunk)));
      chunk = [];
      size = base;
    }
    chunk.push(item);
    size += add;
  }
  if (chunk.length > 0) out.push(JSON.stringify(make(chunk)));
  return out;
}

function decodeEvent(payload: string): StoreEvent | undefined {
  try {
    const e = JSON.parse(payload) as StoreEvent;
    return typeof e === 'object' && e !== null && ['work', 'progress', 'revoke'].includes(e.type) ? e : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The LISTEN side. Connects on the first handler, disconnects after the
 * last. Events sent while the connection is down are lost, so after a
 * reconnect handlers hear one `work` event: it makes a coordinator look for
 * claimable tasks instead of waiting for the next notification.
 */
export class Listener {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly handlers = new Set<(event: StoreEvent) => void>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = RECONNECT_MIN_MS;
  private closed = false;

  constructor(private readonly config: ClientConfig, private readonly channel: string) {}

  async add(handler: (event: StoreEvent) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new Error('store is closed');
    this.handlers.add(handler);
    try {
      await this.ensure();
    } catch (e) {
      this.handlers.delete(handler);
      throw e;
    }
    return async () => {
      this.handlers.delete(handler);
      if (this.handlers.size === 0) await this.stop();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  private async ensure(): Promise<void> {
    if (this.client) return;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  private async connect(): Promise<void> {
    const c = new pg.Client(this.config);
    c.on('error', () => this.lost(c));
    c.on('end', () => this.lost(c));
    c.on('notification', (msg: Notification) => {
      if (msg.channel === this.channel && msg.payload !== undefined) this.dispatch(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${this.channel}`);
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    if (this.closed || this.handlers.size === 0) {
      await c.end().catch(() => undefined);
      return;
    }
    this.client = c;
    this.retryMs = RECONNECT_MIN_MS;
  }

  private dispatch(payload: string): void {
    const event = decodeEvent(payload);
    if (!event) return;
    for (const h of this.handlers) {
      try {
        h(event);
      } catch {
        // A failing handler must not stop the others or the listener.
      }
    }
  }

  private lost(c: pg.Client): void {
    if (this.client !== c) return;
    this.client = undefined;
    c.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.handlers.size === 0 || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.ensure().then(
        () => this.dispatch(JSON.stringify({ type: 'work' })),
        () => {
          this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
          this.scheduleReconnect();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }

  private async stop(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.connecting?.catch(() => undefined);
    const c = this.client;
    this.client = undefined;
    if (c) await c.end().catch(() => undefined);
  }
}
