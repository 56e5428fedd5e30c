/**
 * What the two split-inference hosts share (pipeline-host.ts for engine
 * `pipeline`, split/mesh.ts for `llamacpp-rpc`): how the agent wires them,
 * the input of a split request, and the lane their heads serve leases in.
 */
import type { AgentMessage, LeasedTask, StagePlan, TaskOutcome } from '@idlemesh/protocol';

/** What a split host needs from the agent. */
export interface SplitHostDeps {
  send(msg: AgentMessage): boolean;
  sendChunk(t: LeasedTask, seq: number, data: string): boolean;
  onOutcome(o: TaskOutcome): void;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
}

/** A split request's task input: the OpenAI request and the group's plan (inference.ts `runSplit`). */
export interface SplitInput {
  kind: 'chat' | 'completion';
  request: Record<string, unknown>;
  split: { group: string; engine: string; model: string; hash: string; blocks: number; stages: StagePlan[] };
}

/**
 * Leases served one at a time, in arrival order, each abortable: a split head
 * runs one request at a time, and the coordinator may revoke a request (its
 * client went away) or the agent stop.
 */
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
