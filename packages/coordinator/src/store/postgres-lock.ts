/**
 * Leader election for the coordinators sharing one schema: session-level
 * advisory locks held on one dedicated connection. The server releases them
 * when that session ends, so a coordinator that dies (or loses its
 * connection) hands leadership on without anyone cleaning up.
 */
import pg from 'pg';
import type { ClientConfig } from 'pg';

/** How long a held lock is believed without asking the server whether its session is still alive. */
const RECHECK_MS = 1000;

export class AdvisoryLocks {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly held = new Set<string>();
  private checkedAt = 0;
  private closed = false;

  /** `namespace` (the schema) keeps two idlemesh installations in one database from electing each other. */
  constructor(private readonly config: ClientConfig, private readonly namespace: string) {}

  /**
   * True while this instance holds `name`. Re-entrant: once held it stays
   * held, confirmed by a round trip at most every RECHECK_MS. When the
   * connection dies every lock is lost, and the next call tries to take the
   * lock again on a new connection.
   */
  async holds(name: string): Promise<boolean> {
    if (this.closed) return false;
    let c: pg.Client;
    try {
      c = await this.connection();
    } catch {
      return false;
    }
    try {
      if (this.held.has(name)) {
        if (Date.now() - this.checkedAt < RECHECK_MS) return true;
        await c.query('SELECT 1');
        this.checkedAt = Date.now();
        return this.client === c && this.held.has(name);
      }
      const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS ok', [this.namespace, name]);
      if (r.rows[0]?.ok !== true || this.client !== c) return false;
      this.held.add(name);
      this.checkedAt = Date.now();
      return true;
    } catch {
      await this.drop(c);
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = await this.connecting?.catch(() => undefined);
    await this.drop(this.client ?? c);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    const c = new pg.Client(this.config);
    c.on('error', () => void this.drop(c));
    c.on('end', () => void this.drop(c));
    try {
      await c.connect();
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    if (this.closed) {
      await c.end().catch(() => undefined);
      throw new Error('store is closed');
    }
    this.client = c;
    return c;
  }

  /** Forgets the connection and with it every lock it held (ending the session releases them). */
  private async drop(c: pg.Client | undefined): Promise<void> {
    if (!c) return;
    if (this.client === c) {
      this.client = undefined;
      this.held.clear();
    }
    await c.end().catch(() => undefined);
  }
}
