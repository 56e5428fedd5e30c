import type { ResultAck, TaskOutcome } from '@idlemesh/protocol';

/** Results per signed message at most when flushing by count. */
export const RESULTS_BATCH = 256;
/** Keep each results message well under the coordinator's 64 MiB message cap. */
const BATCH_BYTES = 16 * 1024 * 1024;
/** Outcomes per message at most (the schema allows 10,000). */
const MAX_PER_MESSAGE = 4096;

function keyOf(t: { taskId: string; attempt: number }): string {
  return `${t.taskId}#${t.attempt}`;
}

/**
 * Outcomes on their way to the coordinator. Each flush is one signed
 * `results` message. Outcomes stay until acked (with any status); after a
 * reconnect every unacked one is sent again under a fresh signature.
 */
export class Outbox {
  private readonly unacked = new Map<string, TaskOutcome>();
  private toSend: TaskOutcome[] = [];
  /** nonce of a sent results message -> its outcome keys, to map `error.ref` back. */
  private readonly batches = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private emptyWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: {
      /** Signs and sends one results message; returns its nonce, or undefined when it could not be sent. */
      send: (results: TaskOutcome[]) => Promise<string | undefined>;
      canSend: () => boolean;
      flushMs: number;
    },
  ) {}

  get pending(): number {
    return this.unacked.size;
  }

  /** Outcomes not yet acked: their leases are still ours to report. */
  unackedRefs(): Array<{ taskId: string; attempt: number }> {
    return [...this.unacked.values()].map((o) => ({ taskId: o.taskId, attempt: o.attempt }));
  }

  /**
   * Queues an outcome. When nothing else is running (`idle`) it goes at once,
   * for latency; under load outcomes wait up to flushMs to share one signature.
   */
  add(o: TaskOutcome, idle = false): void {
    this.unacked.set(keyOf(o), o);
    this.toSend.push(o);
    if (idle || this.toSend.length >= RESULTS_BATCH) this.flushSoon(0);
    else this.flushSoon(this.deps.flushMs);
  }

  /** A new authenticated connection: everything unacked goes again. */
  onConnected(): void {
    this.batches.clear();
    this.toSend = [...this.unacked.values()];
    if (this.toSend.length > 0) this.flushSoon(0);
  }

  /** Returns how many outcomes this ack settled, by status. */
  ack(batch: string, results: readonly ResultAck[]): { accepted: number; duplicate: number; rejected: number } {
    this.batches.delete(batch);
    const counts = { accepted: 0, duplicate: 0, rejected: 0 };
    for (const r of results) {
      if (this.unacked.delete(keyOf(r))) counts[r.status]++;
    }
    this.checkEmpty();
    return counts;
  }

  /**
   * The coordinator refused a whole results message (error with ref = its nonce).
   * Retryable: send those outcomes again shortly. Otherwise drop them; their
   * leases expire and the tasks run elsewhere. Returns how many were dropped.
   */
  refused(ref: string, retryable: boolean): number | undefined {
    const keys = this.batches.get(ref);
    if (keys === undefined) return undefined;
    this.batches.delete(ref);
    if (retryable) {
      for (const k of keys) {
        const o = this.unacked.get(k);
        if (o !== undefined) this.toSend.push(o);
      }
      this.flushSoon(1000);
      return 0;
    }
    let dropped = 0;
    for (const k of keys) if (this.unacked.delete(k)) dropped++;
    this.checkEmpty();
    return dropped;
  }

  /** Resolves when every outcome is acked. */
  whenEmpty(): Promise<void> {
    if (this.unacked.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  flushNow(): Promise<void> {
    this.clearTimer();
    this.flushing ??= this.flushLoop().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  close(): void {
    this.clearTimer();
  }

  private flushSoon(ms: number): void {
    if (this.timer !== undefined && ms > 0) return;
    this.clearTimer();
    if (ms === 0) {
      // setTimeout(0) waits a whole millisecond; an idle agent's result should not.
      setImmediate(() => void this.flushNow());
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flushNow();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async flushLoop(): Promise<void> {
    while (this.toSend.length > 0 && this.deps.canSend()) {
      const batch: TaskOutcome[] = [];
      let bytes = 0;
      let i = 0;
      for (; i < this.toSend.length && batch.length < MAX_PER_MESSAGE; i++) {
        const o = this.toSend[i] as TaskOutcome;
        if (!this.unacked.has(keyOf(o))) continue;
        const size = 200 + (o.output?.length ?? 0) + (o.error?.message.length ?? 0);
        if (batch.length > 0 && bytes + size > BATCH_BYTES) break;
        batch.push(o);
        bytes += size;
      }
      this.toSend = this.toSend.slice(i);
      if (batch.length === 0) continue;
      let nonce: string | undefined;
      try {
        nonce = await this.deps.send(batch);
      } catch {
        nonce = undefined;
      }
      // Not sent: they stay unacked and go again on the next connection.
      if (nonce !== undefined) this.batches.set(nonce, batch.map(keyOf));
    }
  }

  private checkEmpty(): void {
    if (this.unacked.size > 0 || this.emptyWaiters.length === 0) return;
    const waiters = this.emptyWaiters;
    this.emptyWaiters = [];
    for (const w of waiters) w();
  }
}
