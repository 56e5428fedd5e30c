/**
 * Capacity probes: the coordinator measures each node's capacity itself
 * instead of believing its self-reported calibration (issue 7, `capMeasured`).
 *
 * - **When.** The sweep leader draws one random time in each probe interval
 *   of an hour and stores them as that hour's plan (`probe-plan` record,
 *   created once: `expect absent`), so the times are decided exactly once
 *   across coordinators. Every coordinator fires the plan at its own
 *   connected agents (only it holds their sockets), at the same instants.
 * - **Whom, together.** A round leases to *every* active node of this
 *   coordinator in the same tick, so all nodes of an operator and all nodes
 *   behind one IP prefix (/24, /48) run their probes at the same time: one
 *   machine posing as several nodes splits its throughput between them and
 *   is measured as one. The round record lists the groups
 *   (operator ∪ prefix components) it covered.
 * - **What.** `PROBE_WASM`, a built-in metered module: a sequential 64-bit
 *   mix with no known shortcut, on a random seed, whose fuel depends on the
 *   step count only (`probeFuel`). Each node gets as many tasks as it has
 *   free slots (up to `maxTasks`), so a machine is saturated.
 * - **Measured, per group.** The group's fuel/s = (its tasks × known fuel) /
 *   (its last result − lease sent), on the coordinator's clock, shared over
 *   its nodes in proportion to each one's own rate (`splitGroupCapacity`):
 *   nodes on one machine never add up to more than the machine, however
 *   their tasks were scheduled (timing each node alone would let N posers
 *   that finish one after another gain about ln N). A node with a failure or
 *   a result of other fuel measures nothing. The hour keeps each node's
 *   largest measurement (`issuance_meter.cap`, in units of `FUEL_PER_CAP_UNIT`).
 *   Probe results are ordinary results: they count as node outcomes, and the
 *   probe job is spot-checked by the referee (`PROBE_CHECK_RATE`), so a node
 *   that answers without computing is convicted and slashed like any cheat.
 * - **Inference.** In the same tick, every node serving a model also gets
 *   one short timed completion of its first model (random prompt,
 *   `INFERENCE_PROBE_TOKENS` at temperature 0): its capacity is the effort
 *   rate it delivered (completion tokens × the size weight × FUEL_PER_TOKEN
 *   per second, the units inference is billed in), measured and split per
 *   group the same way, so a GPU box is credited for what it serves. The
 *   hour keeps the larger of a node's wasm and inference measurements.
 * - **Who pays.** Nobody is billed: the probe job has no buyer and no bid.
 *   The network carries the cost; the node's compensation is the capacity
 *   it is credited with.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { FUEL_PER_TOKEN, SIZE_CLASS_WEIGHT, base64ToBytes, bytesToBase64, newJobId, taskId } from '@idlemesh/protocol';
import type { LeasedTask, ModelOffer } from '@idlemesh/protocol';
import { ipPrefix } from './identity/prefix.js';
import type { AgentSession, Core } from './core.js';
import type { Outcome, OutcomeStatus } from './store/index.js';

/** The caller of probe jobs: never billed, never scheduled by the dispatcher (only leased here). */
export const PROBE_CALLER = 'system:probe';

/**
 * The probe module (WebAssembly 1.0, ABI idlemesh/1), built with wabt from:
 *
 * ```wat
 * (module
 *   (import "idlemesh" "input_len" (func $input_len (result i32)))
 *   (import "idlemesh" "input_read" (func $input_read (param i32)))
 *   (import "idlemesh" "output_write" (func $output_write (param i32 i32)))
 *   (memory (export "memory") 1)
 *   (func (export "run") (result i32)
 *     (local $x i64) (local $n i32)
 *     (if (i32.ne (call $input_len) (i32.const 12)) (then (return (i32.const 1))))
 *     (call $input_read (i32.const 0))
 *     (local.set $x (i64.load (i32.const 0)))      ;; seed, u64 LE
 *     (local.set $n (i32.load (i32.const 8)))      ;; steps, u32 LE
 *     (block $done
 *       (loop $next
 *         (br_if $done (i32.eqz (local.get $n)))
 *         (local.set $x (i64.mul (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 29))) (i64.const 0xbf58476d1ce4e5b9)))
 *         (local.set $x (i64.add (local.get $x) (i64.const 0x9e3779b97f4a7c15)))
 *         (local.set $n (i32.sub (local.get $n) (i32.const 1)))
 *         (br $next)))
 *     (i64.store (i32.const 16) (local.get $x))
 *     (call $output_write (i32.const 16) (i32.const 8))   ;; the state, u64 LE
 *     (i32.const 0)))
 * ```
 */
export const PROBE_WASM = base64ToBytes(
  'AGFzbQEAAAABDgNgAAF/YAF/AGACf38AAkQDCGlkbGVtZXNoCWlucHV0X2xlbgAACGlkbGVtZXNoCmlucHV0X3JlYWQAAQhpZGxlbWVzaAxvdXRwdXRfd3JpdGUAAgMCAQAFAwEAAQcQAgZtZW1vcnkCAANydW4AAwpuAWwCAX4BfxAAQQxHBEBBAQ8LQQAQAUEAKQMAIQBBCCgCACEBAkADQCABRQ0BIAAgAEIdiIVCucuT59Htkay/f34hACAAQpX4qfqXt96bnn98IQAgAUEBayEBDAALC0EQIAA3AwBBEEEIEAJBAAs=',
);

/** Fuel of one probe task of `steps` steps (fuel v1; pinned by test/probes.test.ts against the sandbox). */
export function probeFuel(steps: number): number {
  return 47 + 21 * steps;
}

/** The input of one probe task: a random seed and the step count. */
export function probeInput(steps: number, seed: Uint8Array = randomBytes(8)): Uint8Array {
  const b = new Uint8Array(12);
  b.set(seed.subarray(0, 8), 0);
  new DataView(b.buffer).setUint32(8, steps, true);
  return b;
}

/**
 * Steps per probe task: about 0.25 s of one core of a 2024 server (≈ 1 G
 * fuel), long against the latency of a result (batching, the network), short
 * against an hour.
 */
export const PROBE_STEPS = 50_000_000;
/** Share of probe results the referee re-executes. */
export const PROBE_CHECK_RATE = 0.1;
/** How long a node is connected before it is probed (at most one probe interval). */
const MIN_CONNECTED_MS = 60_000;
/** Capacity unit: a million fuel per second measured. */
export const FUEL_PER_CAP_UNIT = 1_000_000;
/** Completion tokens an inference probe asks for. */
export const INFERENCE_PROBE_TOKENS = 32;
const PROBE_WORDS = ['idle', 'mesh', 'machine', 'compute', 'model', 'token', 'layer', 'queue', 'verify', 'receipt', 'ledger', 'epoch', 'agent', 'node', 'bond', 'sandbox'];

/** A random prompt of a dozen words: nothing a node can have cached. */
export function inferenceProbePrompt(): string {
  return Array.from({ length: 12 }, () => PROBE_WORDS[randomInt(PROBE_WORDS.length)]).join(' ');
}

/**
 * The effort (fuel) an inference probe's answer proves: its completion
 * tokens, at most what was asked for, × the size weight × FUEL_PER_TOKEN;
 * 0 when the answer is not a completion. Pure; exported for tests.
 */
export function inferenceProbeFuel(output: Uint8Array | undefined, sizeClass: ModelOffer['sizeClass']): number {
  try {
    const r = JSON.parse(Buffer.from(output ?? new Uint8Array()).toString('utf8')) as { usage?: { completion_tokens?: unknown }; choices?: unknown };
    const n = r.usage?.completion_tokens;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || !Array.isArray(r.choices)) return 0;
    return Math.min(n, INFERENCE_PROBE_TOKENS) * SIZE_CLASS_WEIGHT[sizeClass] * FUEL_PER_TOKEN;
  } catch {
    return 0;
  }
}

/** A group's inference measurement: all its effort over the time to its last answer, shared by each node's own rate. Pure. */
export function splitInferenceCapacity(nodes: ReadonlyArray<{ nodeId: string; fuel: number; elapsedMs: number }>): Map<string, number> {
  const out = new Map<string, number>();
  const live = nodes.filter((n) => n.fuel > 0);
  for (const n of nodes) out.set(n.nodeId, 0);
  if (live.length === 0) return out;
  const total = live.reduce((s, n) => s + n.fuel, 0);
  const groupFuelPerSec = (total * 1000) / Math.max(...live.map((n) => Math.max(1, n.elapsedMs)));
  const rates = live.map((n) => n.fuel / Math.max(1, n.elapsedMs));
  const sum = rates.reduce((s, r) => s + r, 0);
  live.forEach((n, i) => out.set(n.nodeId, Math.floor((groupFuelPerSec * rates[i]!) / sum / FUEL_PER_CAP_UNIT)));
  return out;
}

interface InferenceSent {
  group: string;
  nodeId: string;
  attempt: number;
  sizeClass: ModelOffer['sizeClass'];
}

interface InferenceGroup {
  sentAt: number;
  nodes: Map<string, { fuel: number; lastAt: number; done: boolean }>;
  open: number;
}

interface Sent {
  group: string;
  nodeId: string;
  attempt: number;
}

interface NodeProbe {
  tasks: number;
  done: number;
  lastAt: number;
  bad: boolean;
}

/** One probe group of one round: measured as a whole once every node answered (or the round timed out). */
interface GroupProbe {
  hour: number;
  sentAt: number;
  nodes: Map<string, NodeProbe>;
  open: number;
}

/**
 * A group's measurement, split over its nodes. The group's throughput is all
 * the fuel it completed over the time until its last result, so nodes that
 * share one machine cannot add up to more than the machine, however their
 * tasks were scheduled; it is shared in proportion to each node's own rate
 * (tasks over its own finish time). Pure; exported for tests.
 */
export function splitGroupCapacity(fuelPerTask: number, nodes: ReadonlyArray<{ nodeId: string; tasks: number; elapsedMs: number }>): Map<string, number> {
  const out = new Map<string, number>();
  if (nodes.length === 0) return out;
  const elapsed = nodes.map((n) => Math.max(1, n.elapsedMs));
  const total = nodes.reduce((s, n) => s + n.tasks * fuelPerTask, 0);
  const groupFuelPerSec = (total * 1000) / Math.max(...elapsed);
  const rates = nodes.map((n, i) => n.tasks / elapsed[i]!);
  const sum = rates.reduce((s, r) => s + r, 0);
  nodes.forEach((n, i) => out.set(n.nodeId, Math.floor((groupFuelPerSec * rates[i]!) / sum / FUEL_PER_CAP_UNIT)));
  return out;
}

/**
 * Groups that must be probed at the same time: connected components of
 * "same operator" ∪ "same IP prefix". Pure; exported for tests.
 */
export function probeGroups(nodes: ReadonlyArray<{ nodeId: string; operator: string; prefix: string }>): string[][] {
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(x, r);
    return r;
  };
  const union = (a: string, b: string): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb);
  };
  for (const n of nodes) {
    for (const k of [n.nodeId, `op:${n.operator}`, `ip:${n.prefix}`]) if (!parent.has(k)) parent.set(k, k);
    union(n.nodeId, `op:${n.operator}`);
    union(n.nodeId, `ip:${n.prefix}`);
  }
  const groups = new Map<string, string[]>();
  for (const n of nodes) {
    const r = find(n.nodeId);
    groups.set(r, [...(groups.get(r) ?? []), n.nodeId]);
  }
  return [...groups.values()].map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
}

export class ProbeService {
  private moduleHash: string | undefined;
  private readonly plans = new Map<number, number[]>();
  private readonly planned = new Set<number>();
  private readonly fired = new Set<string>();
  private readonly sent = new Map<string, Sent>();
  private readonly groups = new Map<string, GroupProbe>();
  private readonly inferenceSent = new Map<string, InferenceSent>();
  private readonly inferenceGroups = new Map<string, InferenceGroup>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** When each connected node was first seen by a sweep: a node is probed once it has stayed a while. */
  private readonly firstSeen = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly core: Core,
    private readonly hourMs: number,
    readonly intervalMs: number,
    private readonly operatorOf: (nodeId: string) => Promise<string>,
    private readonly measured: (nodeId: string, capUnits: number, hour: number) => void,
    private readonly steps = PROBE_STEPS,
  ) {}

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Sweep leader: the plans of this hour and the next, drawn once. */
  async plan(now: number): Promise<void> {
    const hour = Math.floor(now / this.hourMs);
    for (const h of [hour, hour + 1]) {
      if (this.planned.has(h)) continue;
      const [r] = await this.core.store.records('probe-plan', { ids: [String(h)], limit: 1 });
      if (r) {
        this.planned.add(h);
        continue;
      }
      const times: number[] = [];
      for (let t = h * this.hourMs; t < (h + 1) * this.hourMs; t += this.intervalMs) {
        const span = Math.min(this.intervalMs, (h + 1) * this.hourMs - t);
        times.push(t + randomInt(Math.max(1, span)));
      }
      await this.core.store.commitRecords({ expect: [{ kind: 'probe-plan', id: String(h), states: ['absent'] }], records: [{ kind: 'probe-plan', id: String(h), state: 'planned', doc: { hour: h, times } }] }, now)
        .catch((err: unknown) => { if ((err as { code?: string }).code !== 'IM_CONFLICT') throw err; });
      this.planned.add(h);
    }
    for (const h of this.planned) if (h < hour) this.planned.delete(h);
  }

  /** Every coordinator, every sweep: arm timers for the planned rounds of this hour and the next. */
  async arm(now: number): Promise<void> {
    if (this.closed) return;
    for (const id of this.core.sessions.keys()) if (!this.firstSeen.has(id)) this.firstSeen.set(id, now);
    for (const id of this.firstSeen.keys()) if (!this.core.sessions.has(id)) this.firstSeen.delete(id);
    const hour = Math.floor(now / this.hourMs);
    for (const h of [hour, hour + 1]) {
      if (this.plans.has(h)) continue;
      const [r] = await this.core.store.records('probe-plan', { ids: [String(h)], limit: 1 });
      if (!r) continue;
      const times = (r.doc as { times: number[] }).times;
      this.plans.set(h, times);
      times.forEach((t, i) => {
        const id = `${h}:${i}`;
        // A round long past (this coordinator was down) is not fired late: it would not be simultaneous.
        if (t < now - this.intervalMs / 2 || this.fired.has(id)) return;
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          void this.fire(id, h).catch((err: unknown) => this.core.log.warn({ err, round: id }, 'probe round failed'));
        }, Math.max(0, t - now));
        timer.unref();
        this.timers.add(timer);
      });
    }
    for (const h of this.plans.keys()) if (h < hour - 1) this.plans.delete(h);
    // Groups some of whose results never came (a node left, or keeps silent to spoil its neighbours'
    // measurement): measured with the nodes that answered, after two intervals.
    for (const [key, g] of this.groups) if (now - g.sentAt > 2 * this.intervalMs + this.core.opts.leaseMs) this.finish(key, g);
    for (const [id, s] of this.sent) if (!this.groups.has(s.group)) this.sent.delete(id);
    for (const [key, g] of this.inferenceGroups) if (now - g.sentAt > 2 * this.intervalMs + this.core.opts.leaseMs) this.finishInference(key, g);
    for (const [id, s] of this.inferenceSent) if (!this.inferenceGroups.has(s.group)) this.inferenceSent.delete(id);
  }

  /** One round here: every active node of this coordinator, leased in one tick. */
  async fire(round: string, hour: number): Promise<void> {
    if (this.closed || this.fired.has(round)) return;
    this.fired.add(round);
    if (this.fired.size > 1000) this.fired.delete(this.fired.values().next().value as string);
    const core = this.core;
    // Virtual sessions (an upstream coordinator) have no address and are not machines: not probed.
    // A node that just connected is left alone for a while (a minute, or one interval if shorter): a probe is
    // not the first thing it sees, and a short-lived connection costs the network nothing.
    const settled = core.now() - Math.min(MIN_CONNECTED_MS, this.intervalMs);
    const ready = (s: AgentSession): boolean => s.remote !== undefined && s.state === 'active' && (this.firstSeen.get(s.nodeId) ?? Infinity) <= settled;
    const serving = [...core.sessions.values()].filter((s) => ready(s) && (s.capabilities.models?.length ?? 0) > 0);
    if (serving.length > 0) await this.sendInference(round, serving).catch((err: unknown) => core.log.warn({ err, round }, 'inference probes failed'));
    const sessions = [...core.sessions.values()].filter((s) => ready(s) && s.credit > 0 && s.capabilities.runtimes.includes('wasm'));
    if (sessions.length === 0) return;
    // The slots are taken now, before any await, so the dispatcher does not lease them meanwhile.
    const plan = sessions.map((s) => ({ s, k: Math.max(1, Math.min(s.credit, s.capabilities.maxTasks)) }));
    for (const { s, k } of plan) s.credit -= k;
    try {
      await this.send(round, hour, plan);
    } catch (err) {
      for (const { s, k } of plan) s.credit += k;
      throw err;
    }
  }

  private async send(round: string, hour: number, plan: ReadonlyArray<{ s: AgentSession; k: number }>): Promise<void> {
    const core = this.core;
    const sessions = plan.map((p) => p.s);
    const hash = await this.module();
    const now = core.now();
    const fuel = probeFuel(this.steps);
    const jobId = newJobId(now);
    const inputs = plan.flatMap(({ k }) => Array.from({ length: k }, () => probeInput(this.steps)));
    await core.store.createJob({
      id: jobId, caller: PROBE_CALLER, requestHash: '', name: `capacity probe ${round}`, module: hash, instrumentedModule: this.instrumented!, runtime: 'wasm',
      limits: { fuel, memoryMb: 16, timeoutMs: 120_000, outputBytes: 64 }, bid: 0, maxAttempts: 1, retryBackoffMs: 0, priority: 1, requirements: {}, createdAt: now,
      verification: { mode: 'spot-check', rate: PROBE_CHECK_RATE },
    }, inputs);
    const claimed = await core.store.claimTasks(plan.map(({ s, k }) => ({ jobId, nodeId: s.nodeId, count: k, ask: 0 })), now, core.opts.leaseMs);
    const byNode = new Map<string, LeasedTask[]>();
    for (const t of claimed) {
      byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), {
        taskId: taskId(t.jobId, t.index), jobId: t.jobId, index: t.index, attempt: t.attempt, runtime: 'wasm', module: t.instrumentedModule,
        input: bytesToBase64(t.input), limits: t.limits, leaseExpiresAt: t.leaseExpiresAt,
      }]);
    }
    const groups = probeGroups(await Promise.all(sessions.map(async (s) => ({ nodeId: s.nodeId, operator: await this.operatorOf(s.nodeId), prefix: sessionPrefix(s) }))));
    const groupOf = new Map(groups.flatMap((g, i) => g.map((n) => [n, `${round}|${i}`] as const)));
    // Every lease of the round leaves in this one synchronous loop: the nodes of a group start together.
    const sentAt = core.now();
    for (const [nodeId, tasks] of byNode) {
      const s = core.sessions.get(nodeId);
      const key = groupOf.get(nodeId);
      if (!s || key === undefined) continue; // gone: the lease expires and counts against it
      const reserved = plan.find((p) => p.s === s)?.k ?? 0;
      s.credit += reserved - tasks.length; // a reconnect replaced the session: its credit was not reserved
      core.issuance.leased(nodeId, tasks.length);
      let g = this.groups.get(key);
      if (!g) this.groups.set(key, (g = { hour, sentAt, nodes: new Map(), open: 0 }));
      g.nodes.set(nodeId, { tasks: tasks.length, done: 0, lastAt: sentAt, bad: false });
      g.open++;
      for (const t of tasks) this.sent.set(t.taskId, { group: key, nodeId, attempt: t.attempt });
      s.send({ type: 'lease', tasks });
    }
    core.notifyJobs([jobId]);
    await core.store.commitRecords({ records: [{ kind: 'probe-round', id: `${round}:${core.opts.coordinatorId}`, state: 'sent', doc: { round, hour, jobId, steps: this.steps, fuelPerTask: fuel, sentAt, groups, tasks: Object.fromEntries([...byNode].map(([n, t]) => [n, t.length])) } }] }, now)
      .catch((err: unknown) => core.log.warn({ err }, 'probe round record failed'));
    core.log.info({ round, nodes: byNode.size, groups: groups.length, tasks: claimed.length }, 'capacity probe sent');
  }

  /** One short timed completion per model-serving node, all in one tick, grouped like the wasm round. */
  private async sendInference(round: string, sessions: readonly AgentSession[]): Promise<void> {
    const core = this.core;
    const now = core.now();
    const leases: Array<{ s: AgentSession; lease: LeasedTask; offer: ModelOffer }> = [];
    for (const s of sessions) {
      const offer = s.capabilities.models![0]!;
      const jobId = newJobId(now);
      const input = new TextEncoder().encode(JSON.stringify({ kind: 'completion', request: { model: offer.id, prompt: inferenceProbePrompt(), max_tokens: INFERENCE_PROBE_TOKENS, temperature: 0 } }));
      await core.store.createJob({
        id: jobId, caller: PROBE_CALLER, requestHash: '', name: `inference probe ${round}`, module: offer.hash, instrumentedModule: offer.hash, runtime: 'llm',
        limits: { fuel: Number.MAX_SAFE_INTEGER, memoryMb: 1, timeoutMs: 120_000, outputBytes: 1024 * 1024 }, bid: 0, maxAttempts: 1, retryBackoffMs: 0, priority: 1,
        requirements: {}, createdAt: now, verification: { mode: 'trusted' },
      }, [input]);
      const [t] = await core.store.claimTasks([{ jobId, nodeId: s.nodeId, count: 1, ask: 0 }], now, core.opts.leaseMs);
      if (!t) continue;
      leases.push({ s, offer, lease: {
        taskId: taskId(t.jobId, t.index), jobId: t.jobId, index: t.index, attempt: t.attempt, runtime: 'llm', module: t.instrumentedModule,
        input: bytesToBase64(t.input), limits: t.limits, leaseExpiresAt: t.leaseExpiresAt,
      } });
    }
    const groups = probeGroups(await Promise.all(leases.map(async ({ s }) => ({ nodeId: s.nodeId, operator: await this.operatorOf(s.nodeId), prefix: sessionPrefix(s) }))));
    const groupOf = new Map(groups.flatMap((g, i) => g.map((n) => [n, `${round}|inference|${i}`] as const)));
    // As for wasm: every lease leaves in one synchronous loop, so the nodes of a group answer at the same time.
    const sentAt = core.now();
    for (const { s, lease, offer } of leases) {
      const key = groupOf.get(s.nodeId);
      if (key === undefined || core.sessions.get(s.nodeId) !== s) continue;
      let g = this.inferenceGroups.get(key);
      if (!g) this.inferenceGroups.set(key, (g = { sentAt, nodes: new Map(), open: 0 }));
      g.nodes.set(s.nodeId, { fuel: 0, lastAt: sentAt, done: false });
      g.open++;
      this.inferenceSent.set(lease.taskId, { group: key, nodeId: s.nodeId, attempt: lease.attempt, sizeClass: offer.sizeClass });
      s.send({ type: 'lease', tasks: [lease] });
    }
    core.log.info({ round, nodes: leases.length, groups: groups.length }, 'inference probe sent');
  }

  private finishInference(key: string, g: InferenceGroup): void {
    this.inferenceGroups.delete(key);
    const units = splitInferenceCapacity([...g.nodes].map(([nodeId, r]) => ({ nodeId, fuel: r.done ? r.fuel : 0, elapsedMs: r.lastAt - g.sentAt })));
    const hour = Math.floor(this.core.now() / this.hourMs);
    const doc = {
      kind: 'inference', hour, sentAt: g.sentAt,
      nodes: Object.fromEntries([...g.nodes].map(([nodeId, r]) => [nodeId, { fuel: r.fuel, done: r.done, elapsedMs: r.lastAt - g.sentAt, units: units.get(nodeId) ?? 0 }])),
    };
    void this.core.store.commitRecords({ records: [{ kind: 'probe-result', id: `${key}:${this.core.opts.coordinatorId}`, state: `h:${hour}`, doc }] }, this.core.now())
      .then(() => { for (const [nodeId, u] of units) if (u > 0) this.measured(nodeId, u, hour); })
      .catch((err: unknown) => this.core.log.warn({ err }, 'inference probe record failed; the round measures nothing'));
  }

  /** Results a node sent (after the store took them): probe tasks complete its measurement. */
  onResults(nodeId: string, outcomes: readonly Outcome[], statuses: readonly OutcomeStatus[]): void {
    const at = this.core.now();
    outcomes.forEach((o, i) => {
      const id = taskId(o.jobId, o.index);
      const inf = this.inferenceSent.get(id);
      if (inf && inf.nodeId === nodeId && inf.attempt === o.attempt) {
        this.inferenceSent.delete(id);
        const g = this.inferenceGroups.get(inf.group);
        const r = g?.nodes.get(nodeId);
        if (!g || !r) return;
        r.done = true;
        r.lastAt = at;
        r.fuel = statuses[i] === 'accepted' && o.ok ? inferenceProbeFuel(o.output, inf.sizeClass) : 0;
        if (--g.open === 0) this.finishInference(inf.group, g);
        return;
      }
      const s = this.sent.get(id);
      if (!s || s.nodeId !== nodeId || s.attempt !== o.attempt) return;
      this.sent.delete(id);
      const g = this.groups.get(s.group);
      const r = g?.nodes.get(nodeId);
      if (!g || !r) return;
      r.done++;
      r.lastAt = Math.max(r.lastAt, at);
      if (statuses[i] !== 'accepted' || !o.ok || o.fuel !== probeFuel(this.steps)) r.bad = true;
      if (r.done === r.tasks && --g.open === 0) this.finish(s.group, g);
    });
  }

  /** A group's round is over: the nodes that answered every task correctly share the group's measured throughput. */
  private finish(key: string, g: GroupProbe): void {
    this.groups.delete(key);
    const good = [...g.nodes].filter(([, r]) => !r.bad && r.done === r.tasks).map(([nodeId, r]) => ({ nodeId, tasks: r.tasks, elapsedMs: r.lastAt - g.sentAt }));
    const units = splitGroupCapacity(probeFuel(this.steps), good);
    // Credited to the hour the measurement completes in: an hour is frozen only after its meter is in the store,
    // so a round sent late in an hour still counts (in the next one).
    const hour = Math.floor(this.core.now() / this.hourMs);
    // Published with the round: what each node did and was credited, so the split can be checked.
    const doc = {
      hour, sentAt: g.sentAt, fuelPerTask: probeFuel(this.steps),
      nodes: Object.fromEntries([...g.nodes].map(([nodeId, r]) => [nodeId, { tasks: r.tasks, done: r.done, bad: r.bad, elapsedMs: r.lastAt - g.sentAt, units: units.get(nodeId) ?? 0 }])),
    };
    this.core.log.debug({ group: key, nodes: good.length, units: [...units.values()] }, 'capacity measured');
    // The state names the hour, so the hour's results are one query when it freezes (issuance-service.ts).
    // Recorded first, metered after: a frozen hour never has a measurement without its record.
    void this.core.store.commitRecords({ records: [{ kind: 'probe-result', id: `${key}:${this.core.opts.coordinatorId}`, state: `h:${hour}`, doc }] }, this.core.now())
      .then(() => { for (const [nodeId, u] of units) this.measured(nodeId, u, hour); })
      .catch((err: unknown) => this.core.log.warn({ err }, 'probe result record failed; the round measures nothing'));
  }

  private instrumented: string | undefined;

  /** The probe module, registered (instrumented and stored) once. */
  private async module(): Promise<string> {
    if (this.moduleHash === undefined) {
      const { info } = await this.core.uploadModule(PROBE_WASM);
      this.moduleHash = info.hash;
      this.instrumented = info.instrumentedHash;
    }
    return this.moduleHash;
  }
}

function sessionPrefix(s: AgentSession): string {
  return s.remote === undefined ? `node:${s.nodeId}` : ipPrefix(s.remote);
}
