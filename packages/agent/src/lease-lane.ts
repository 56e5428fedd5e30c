/**
 * Leases served one at a time, in arrival order, each abortable: the split
 * heads (pipeline-host.ts, split/mesh.ts) run one request at a time, and the
 * coordinator may revoke a request (its client went away) or the agent stop.
 */
import type { LeasedTask } from '@idlemesh/protocol';

export class LeaseLane {
  private readonly running = new Map<string, AbortController>();
  private lane: Promise<void> = Promise.resolve();

  constructor(private readonly serve: (t: LeasedTask, signal: AbortSignal) => Promise<void>) {}

  /** Queues a lease (again for the same attempt: ignored). */
  add(t: LeasedTask): void {
    const key = `${t.taskId}#${t.attempt}`;
    if (this.running.has(key)) return;
    const ac = new AbortController();
    this.running.set(key, ac);
    this.lane = this.lane.then(() => this.serve(t, ac.signal)).catch(() => undefined).finally(() => this.running.delete(key));
  }

  /** The leases queued or running, as the agent reports what it holds. */
  heldRefs(): Array<{ taskId: string; attempt: number }> {
    return [...this.running.keys()].map((k) => ({ taskId: k.split('#')[0]!, attempt: Number(k.split('#')[1]) }));
  }

  /** Stops these tasks (the coordinator revoked them); nothing is reported for them. */
  revoke(taskIds: readonly string[]): void {
    for (const [key, ac] of this.running) {
      if (taskIds.includes(key.split('#')[0]!)) {
        ac.abort(new Error('revoked'));
        this.running.delete(key);
      }
    }
  }

  /** Stops everything (the agent is stopping). */
  abortAll(reason: string): void {
    for (const ac of this.running.values()) ac.abort(new Error(reason));
  }
}
