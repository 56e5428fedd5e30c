/**
 * Federation: an upstream coordinator as capacity. The upstream appears to
 * this coordinator's scheduler as one public-pool node (its id is derived
 * from the URL); what the policies let it take is submitted upstream as an
 * ordinary job, bought with this coordinator's own account there through the
 * public API, and the results come back into the original tasks. An
 * organisation can thus run a private coordinator and overflow to a public
 * network it does not control. Leases are kept alive while upstream works; a
 * cancelled job is cancelled upstream too; a budget caps the holds placed.
 */
import { createHash } from 'node:crypto';
import { IdlemeshClient } from '@idlemesh/sdk';
import { ImError, errorFrom } from '@idlemesh/protocol';
import type { Capabilities, LeasedTask, ServerMessage } from '@idlemesh/protocol';
import type { AgentSession, Core } from '../core.js';
import type { Outcome } from '../store/index.js';
import { maxJobCost } from '../pricing/index.js';

export interface UpstreamOptions {
  url: string;
  apiKey?: string;
  /** msat per EU bid upstream; also this node's ask here, so local buyers cover it. */
  bid: number;
  /** Most msat of holds placed upstream in all (0 = no limit). */
  budgetMsat: number;
  /** Tasks in flight upstream at once. */
  slots: number;
}

export function upstreamNodeId(url: string): string {
  return createHash('sha256').update(`idlemesh upstream ${url}`).digest('hex');
}

export class Federation {
  readonly nodeId: string;
  private readonly client: IdlemeshClient;
  private readonly session: AgentSession;
  private readonly modulesUp = new Map<string, string>();
  private readonly upstreamJobs = new Map<string, string>(); // local job → upstream job (while running)
  private stopped = false;

  constructor(private readonly core: Core, private readonly o: UpstreamOptions) {
    this.nodeId = upstreamNodeId(o.url);
    this.client = new IdlemeshClient(o.apiKey !== undefined ? { url: o.url, apiKey: o.apiKey, timeoutMs: 60_000 } : { url: o.url, timeoutMs: 60_000 });
    const capabilities: Capabilities = {
      runtimes: ['wasm'], cores: o.slots, memoryMb: 4096, arch: 'upstream', os: 'upstream', gpus: [], maxTasks: o.slots,
      benchmark: { fuelPerSec: 0 }, agentVersion: 'federation/1', name: `upstream ${new URL(o.url).host}`, ...(o.bid > 0 ? { ask: o.bid } : {}),
    };
    this.session = { nodeId: this.nodeId, capabilities, credit: o.slots, state: 'active', send: (m) => this.onMessage(m) };
  }

  async start(): Promise<void> {
    await this.core.store.upsertNode(this.nodeId, this.session.capabilities, this.core.now());
    this.core.sessions.set(this.nodeId, this.session);
    this.core.kick();
  }

  stop(): void {
    this.stopped = true;
    this.core.sessions.delete(this.nodeId);
  }

  private onMessage(m: ServerMessage): void {
    if (m.type === 'lease') {
      const byJob = new Map<string, LeasedTask[]>();
      for (const t of m.tasks) byJob.set(t.jobId, [...(byJob.get(t.jobId) ?? []), t]);
      for (const [jobId, tasks] of byJob) void this.run(jobId, tasks);
    } else if (m.type === 'revoke') {
      for (const id of new Set(m.taskIds.map((t) => t.split('/')[0] ?? ''))) {
        const up = this.upstreamJobs.get(id);
        if (up) void this.client.cancelJob(up).catch(() => undefined);
      }
    }
  }

  /** One local job's leased tasks as one upstream job; results (or failures) come back as outcomes. */
  private async run(jobId: string, tasks: LeasedTask[]): Promise<void> {
    const keepAlive = setInterval(() => void this.core.store.extendLeases(this.nodeId, this.core.now(), this.core.opts.leaseMs), Math.max(500, Math.floor(this.core.opts.leaseMs / 3)));
    let outcomes: Outcome[];
    try {
      outcomes = await this.runUpstream(jobId, tasks);
    } catch (err) {
      const e = err instanceof ImError ? err : new ImError('IM_AGENT_ERROR', `upstream failed: ${(err as Error).message}`);
      this.core.log.warn({ job: jobId, upstream: this.o.url, err: e.toWire() }, 'federated tasks failed upstream; they are retried');
      // Infrastructure, not the task's fault: retryable, here or upstream again.
      outcomes = tasks.map((t) => ({ jobId, index: t.index, attempt: t.attempt, ok: false, fuel: 0, error: errorFrom('IM_AGENT_ERROR', `upstream: ${e.message}`) }));
    } finally {
      clearInterval(keepAlive);
      this.upstreamJobs.delete(jobId);
    }
    if (this.stopped) return;
    const r = await this.core.store.completeTasks(this.nodeId, outcomes, this.core.now());
    for (const s of r.statuses) this.core.metrics.taskOutcomes.inc({ status: s });
    this.session.credit += tasks.length;
    this.core.notifyJobs(r.jobs);
    this.core.kick();
  }

  private async runUpstream(jobId: string, tasks: LeasedTask[]): Promise<Outcome[]> {
    const first = tasks[0]!;
    const module = await this.uploadModule(first.module);
    // What upstream will hold for it (its default fees; an upper bound is all the budget needs).
    const hold = maxJobCost({ tasks: tasks.length, fuelLimit: first.limits.fuel, bid: this.o.bid, maxExecutionsPerTask: 1 });
    if (this.o.budgetMsat > 0 && this.o.bid > 0) await this.spend(hold);
    const job = await this.client.submitJob({
      module, name: `federated ${jobId}`, inputs: tasks.map((t) => t.input), limits: first.limits, maxAttempts: 3,
      ...(this.o.bid > 0 ? { bid: this.o.bid } : {}),
    }, { idempotencyKey: `${jobId}/${tasks.map((t) => `${t.index}.${t.attempt}`).join(',')}`.slice(0, 200) });
    this.upstreamJobs.set(jobId, job.id);
    this.core.log.info({ job: jobId, upstream: job.id, tasks: tasks.length }, 'tasks sent upstream');
    const done = await this.client.waitForJob(job.id);
    const outcomes: Outcome[] = [];
    for await (const r of this.client.allResults(done.id)) {
      const t = tasks[r.index];
      if (!t) continue;
      if (r.state === 'succeeded') outcomes.push({ jobId, index: t.index, attempt: t.attempt, ok: true, output: Uint8Array.from(Buffer.from(r.output ?? '', 'base64')), fuel: r.fuel ?? 0 });
      else outcomes.push({ jobId, index: t.index, attempt: t.attempt, ok: false, fuel: r.fuel ?? 0, error: r.error ? { code: r.error.code, message: r.error.message, retryable: r.error.retryable } : errorFrom('IM_AGENT_ERROR', `upstream task ${r.state}`) });
    }
    return outcomes;
  }

  private async uploadModule(instrumentedHash: string): Promise<string> {
    const known = this.modulesUp.get(instrumentedHash);
    if (known) return known;
    const m = await this.core.getModule(instrumentedHash);
    const info = await this.client.uploadModule(m.bytes);
    this.modulesUp.set(instrumentedHash, info.hash);
    return info.hash;
  }

  /** The budget: holds placed upstream, counted in the store so restarts and peers agree. */
  private async spend(msat: bigint): Promise<void> {
    const [r] = await this.core.store.records('federation', { ids: [this.nodeId], limit: 1 });
    const spent = BigInt((r?.doc as { spentMsat?: string } | undefined)?.spentMsat ?? '0');
    if (spent + msat > BigInt(this.o.budgetMsat)) throw new ImError('IM_INSUFFICIENT_BALANCE', `the upstream budget (${this.o.budgetMsat} msat) is spent`);
    await this.core.store.commitRecords({
      expect: [{ kind: 'federation', id: this.nodeId, states: r ? [r.state] : ['absent'] }],
      records: [{ kind: 'federation', id: this.nodeId, state: 'active', doc: { url: this.o.url, spentMsat: (spent + msat).toString() } }],
    }, this.core.now());
  }
}

