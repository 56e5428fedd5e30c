/**
 * Split groups, the service: forms a group per model from the agents that
 * opted in (`--split-model`, `--split-memory`) and are connected now, tells
 * each member which layers to hold (`split-assign`), relays stage frames
 * between the group's members, and mends the group when a member leaves.
 * The planning rules are pure, in split-groups.ts.
 *
 * - Groups are computed on demand (a model list, a request, a member lost)
 *   from the sessions: a joining agent is a spare until the group is idle,
 *   when a fresh plan (maybe with it) is adopted. A group with requests in
 *   flight keeps its stages, so their KV caches stay valid.
 * - A stage lost mid-request: its layers go to a spare that can hold them
 *   (same group id, same stage index), then every frame waiting on the lost
 *   node is answered IM_SPLIT_STAGE_GONE, so the head replays into the
 *   replacement. No spare: the group is planned afresh (a new id) or dropped.
 * - Frames: only a member may send, only to a stage of its group; anything
 *   else is answered IM_SPLIT_NOT_MEMBER. Frames are at most
 *   MAX_STAGE_FRAME_BYTES (the protocol schema refuses larger messages).
 *
 * - Tunnels (engine llamacpp-rpc): a member opens a byte stream to another
 *   member of its group (`tunnel-open`); the coordinator relays its
 *   `tunnel-data` both ways and its `tunnel-close`, and refuses anyone else
 *   with IM_SPLIT_NOT_MEMBER. The bytes are the agents' end-to-end tunnel
 *   (ciphertext here); a stream ends when either side or a member leaves.
 *   Members of an llamacpp-rpc group are told the group's stages
 *   (`split-members`): their tunnel allow-list, and where the head finds each.
 *
 * Both engines are wired; a group holds agents of one engine and one model
 * file (the plan and the relay do not depend on the engine).
 */
import { randomBytes } from 'node:crypto';
import { ImError, errorFrom } from '@idlemesh/protocol';
import type { AgentMessage, ModelSizeClass, ServerMessage, SplitEngine, SplitOffer, StagePlan } from '@idlemesh/protocol';
import type { AgentSession, Core } from './core.js';
import { planSplitGroup, replaceStage, splitEffort, type SplitCandidate } from './split-groups.js';

/** A frame not answered within this is taken as a lost stage. */
const RELAY_TIMEOUT_MS = 60_000;
const WIRED_ENGINES: readonly SplitEngine[] = ['pipeline', 'llamacpp-rpc'];
/** Relayed tunnel streams one node may have open at once. */
const MAX_TUNNELS_PER_NODE = 64;

export interface SplitGroup {
  id: string;
  engine: SplitEngine;
  model: string;
  hash: string;
  blocks: number;
  sizeClass: ModelSizeClass;
  contextSize: number;
  stages: StagePlan[];
  spares: string[];
  /** Requests running on the group now (it is not re-planned while > 0). */
  busy: number;
}

interface Relay {
  from: string;
  target: string;
  group: string;
  stage: number;
  seq: number;
  timer: NodeJS.Timeout;
}

/** A request running on a group: its stages as they end up, for the charges. */
export interface SplitRun {
  group: SplitGroup;
  stages: StagePlan[];
  asks: Map<string, number>;
  /** The job's bid: no stage is charged above it (the escrow hold is sized by it). */
  bid: number;
}

/** One end of a relayed tunnel stream: the node and its stream id; `peer` is the other end. */
interface TunnelEnd {
  group: string;
  node: string;
  stream: string;
  peer: { node: string; stream: string };
}

type FrameMsg = Extract<AgentMessage, { type: 'stage-frame' }>;
type TunnelOpenMsg = Extract<AgentMessage, { type: 'tunnel-open' }>;
type TunnelDataMsg = Extract<AgentMessage, { type: 'tunnel-data' }>;
type TunnelCloseMsg = Extract<AgentMessage, { type: 'tunnel-close' }>;
type ReplyMsg = Extract<AgentMessage, { type: 'stage-reply' }>;

export class SplitGroups {
  private readonly groups = new Map<string, SplitGroup>();
  /** What each node was last told to hold ('' = nothing). */
  private readonly assigned = new Map<string, string>();
  private readonly relays = new Map<number, Relay>();
  private readonly runs = new Set<SplitRun>();
  private nextRelay = 1;
  /** Relayed tunnel streams by `${node}/${stream}` (both ends are keys). */
  private readonly tunnels = new Map<string, TunnelEnd>();
  /** The stages each member of an llamacpp-rpc group was last told. */
  private readonly membersSent = new Map<string, string>();

  constructor(private readonly core: Core) {}

  /** The effort multiplier of a stage's share (--split-multiplier). */
  get multiplier(): number {
    return this.core.opts.splitMultiplier ?? 1.25;
  }

  /** The groups serving now, after bringing them up to date with the connected agents. */
  list(): SplitGroup[] {
    this.refresh();
    return [...this.groups.values()];
  }

  group(model: string): SplitGroup | undefined {
    return this.list().find((g) => g.model === model);
  }

  /** A request starts on the group: its stages are kept until end(). */
  begin(group: SplitGroup, bid: number): SplitRun {
    group.busy++;
    const run: SplitRun = { group, stages: group.stages.map((s) => ({ ...s })), asks: new Map(), bid };
    for (const s of run.stages) run.asks.set(s.nodeId, this.askOf(s.nodeId));
    this.runs.add(run);
    return run;
  }

  end(run: SplitRun): void {
    if (!this.runs.delete(run)) return;
    run.group.busy = Math.max(0, run.group.busy - 1);
  }

  /** The most any agent that may take part in the group asks: the bid a request's hold is sized by. */
  maxAsk(group: SplitGroup): number {
    return Math.max(0, ...[...group.stages.map((s) => s.nodeId), ...group.spares].map((n) => this.askOf(n)));
  }

  /** Charges of a successful split request: the head's fuel × multiplier, shared by layers at each stage's ask (capped at the bid). */
  charges(run: SplitRun, fuel: number): Array<{ nodeId: string; ask: number; fuel: number }> {
    return splitEffort(fuel, run.stages, this.multiplier).map((s) => ({ nodeId: s.nodeId, fuel: s.fuel, ask: Math.min(run.bid, run.asks.get(s.nodeId) ?? 0) }));
  }

  // ---- relaying frames ------------------------------------------------------

  /** A member's frame for a stage of its group. */
  onFrame(from: AgentSession, msg: FrameMsg): void {
    const fail = (code: 'IM_SPLIT_NOT_MEMBER' | 'IM_SPLIT_STAGE_GONE', message: string): void =>
      from.send({ type: 'stage-reply', group: msg.group, stage: msg.stage, seq: msg.seq, ok: false, error: errorFrom(code, message) });
    const g = [...this.groups.values()].find((x) => x.id === msg.group);
    if (!g || !g.stages.some((s) => s.nodeId === from.nodeId)) return fail('IM_SPLIT_NOT_MEMBER', `this node is not a member of split group ${msg.group}`);
    const stage = g.stages[msg.stage];
    if (!stage) return fail('IM_SPLIT_NOT_MEMBER', `split group ${msg.group} has no stage ${msg.stage}`);
    const target = this.core.sessions.get(stage.nodeId);
    if (!target) return fail('IM_SPLIT_STAGE_GONE', `stage ${msg.stage} of group ${msg.group} is not connected`);
    const relay = this.nextRelay++;
    const timer = setTimeout(() => this.answerLost(relay, `stage ${msg.stage} did not answer within ${RELAY_TIMEOUT_MS / 1000} s`), RELAY_TIMEOUT_MS);
    timer.unref();
    this.relays.set(relay, { from: from.nodeId, target: target.nodeId, group: g.id, stage: msg.stage, seq: msg.seq, timer });
    const out: ServerMessage = { type: 'stage-frame', group: g.id, stage: msg.stage, relay, request: msg.request, op: msg.op };
    if (msg.data !== undefined) out.data = msg.data;
    target.send(out);
  }

  /** A stage's answer: back to the member that sent the frame. */
  onReply(from: AgentSession, msg: ReplyMsg): void {
    const r = this.relays.get(msg.relay);
    if (!r || r.target !== from.nodeId) return; // late (timed out) or not this node's to answer
    this.relays.delete(msg.relay);
    clearTimeout(r.timer);
    const reply: ServerMessage = { type: 'stage-reply', group: r.group, stage: r.stage, seq: r.seq, ok: msg.ok, node: from.nodeId };
    if (msg.data !== undefined) reply.data = msg.data;
    if (!msg.ok) reply.error = { code: msg.error?.code ?? 'IM_AGENT_ERROR', message: msg.error?.message ?? 'the stage failed', retryable: false };
    this.core.sessions.get(r.from)?.send(reply);
  }

  // ---- relaying tunnels (engine llamacpp-rpc) ---------------------------------

  /** A member opens a stream to another member of its group; anyone else is refused. */
  onTunnelOpen(from: AgentSession, msg: TunnelOpenMsg): void {
    const refuse = (code: 'IM_SPLIT_NOT_MEMBER' | 'IM_SPLIT_STAGE_GONE' | 'IM_TUNNEL_CLOSED', message: string): void =>
      from.send({ type: 'tunnel-close', stream: msg.stream, error: errorFrom(code, message) });
    const g = this.byId(msg.group);
    const member = (n: string): boolean => !!g && g.engine === 'llamacpp-rpc' && g.stages.some((s) => s.nodeId === n);
    if (!member(from.nodeId) || !member(msg.to) || msg.to === from.nodeId) return refuse('IM_SPLIT_NOT_MEMBER', `tunnels go only between members of split group ${msg.group}`);
    const target = this.core.sessions.get(msg.to);
    if (!target) return refuse('IM_SPLIT_STAGE_GONE', `the member ${msg.to.slice(0, 12)} is not connected`);
    const key = `${from.nodeId}/${msg.stream}`;
    if (this.tunnels.has(key)) return refuse('IM_TUNNEL_CLOSED', `stream ${msg.stream} is already open`);
    const open = (n: string): number => [...this.tunnels.values()].filter((t) => t.node === n).length;
    if (open(from.nodeId) >= MAX_TUNNELS_PER_NODE || open(msg.to) >= MAX_TUNNELS_PER_NODE) return refuse('IM_TUNNEL_CLOSED', `at most ${MAX_TUNNELS_PER_NODE} relayed streams per node`);
    const stream = `r${this.nextRelay++}`;
    this.tunnels.set(key, { group: msg.group, node: from.nodeId, stream: msg.stream, peer: { node: msg.to, stream } });
    this.tunnels.set(`${msg.to}/${stream}`, { group: msg.group, node: msg.to, stream, peer: { node: from.nodeId, stream: msg.stream } });
    target.send({ type: 'tunnel-open', group: msg.group, from: from.nodeId, stream });
  }

  /** Bytes on an open stream, passed to the other end as they are (the schema bounds their size). */
  onTunnelData(from: AgentSession, msg: TunnelDataMsg): void {
    const t = this.tunnels.get(`${from.nodeId}/${msg.stream}`);
    if (!t) return; // closed meanwhile: the close is on its way to the sender
    const peer = this.core.sessions.get(t.peer.node);
    if (!peer) return this.closeTunnel(t, { code: 'IM_SPLIT_STAGE_GONE', message: 'the other end disconnected' });
    peer.send({ type: 'tunnel-data', stream: t.peer.stream, data: msg.data });
  }

  onTunnelClose(from: AgentSession, msg: TunnelCloseMsg): void {
    const t = this.tunnels.get(`${from.nodeId}/${msg.stream}`);
    if (t) this.closeTunnel(t, msg.error, true);
  }

  /** Ends a stream at both ends (`byOwner`: the owner of `t` closed it, so only the peer is told). */
  private closeTunnel(t: TunnelEnd, error?: { code: string; message: string }, byOwner = false): void {
    this.tunnels.delete(`${t.node}/${t.stream}`);
    this.tunnels.delete(`${t.peer.node}/${t.peer.stream}`);
    const tell = (node: string, stream: string): void => {
      const out: ServerMessage = { type: 'tunnel-close', stream };
      if (error) out.error = { code: error.code.slice(0, 64), message: error.message.slice(0, 2000), retryable: true };
      this.core.sessions.get(node)?.send(out);
    };
    tell(t.peer.node, t.peer.stream);
    if (!byOwner) tell(t.node, t.stream);
  }

  /** Streams whose ends are no longer both members of their group are closed. */
  private pruneTunnels(): void {
    for (const t of [...this.tunnels.values()]) {
      if (!this.tunnels.has(`${t.node}/${t.stream}`)) continue;
      const g = this.byId(t.group);
      const member = (n: string): boolean => !!g && g.stages.some((s) => s.nodeId === n) && this.core.sessions.has(n);
      if (!member(t.node) || !member(t.peer.node)) this.closeTunnel(t, { code: 'IM_SPLIT_STAGE_GONE', message: 'the split group changed: a member left' });
    }
  }

  private byId(id: string): SplitGroup | undefined {
    return [...this.groups.values()].find((x) => x.id === id);
  }

  /**
   * A node disconnected: its stages go to spares first, then the frames
   * waiting on it are answered, so the head's retry finds the replacement.
   */
  nodeGone(nodeId: string): void {
    for (const [key, g] of this.groups) {
      const i = g.stages.findIndex((s) => s.nodeId === nodeId);
      g.spares = g.spares.filter((n) => n !== nodeId);
      if (i < 0) continue;
      const fix = i > 0 ? replaceStage(g.stages, nodeId, this.candidates(g).filter((c) => c.nodeId !== nodeId)) : undefined;
      if (fix) {
        g.stages = fix.stages;
        g.spares = g.spares.filter((n) => n !== fix.nodeId);
        for (const run of this.runs) {
          if (run.group !== g) continue;
          run.stages = run.stages.map((s, k) => (k === fix.stage ? { ...s, nodeId: fix.nodeId } : s));
          run.asks.set(fix.nodeId, this.askOf(fix.nodeId));
        }
        this.core.log.info({ group: g.id, model: g.model, stage: i, from: nodeId.slice(0, 12), to: fix.nodeId.slice(0, 12) }, 'split stage replaced by a spare');
      } else {
        this.groups.delete(key);
        this.core.log.warn({ group: g.id, model: g.model, stage: i, node: nodeId.slice(0, 12) }, i === 0 ? 'split head left; the group is planned afresh' : 'split stage left and no spare can hold its layers; the group is planned afresh');
      }
    }
    this.assigned.delete(nodeId);
    this.membersSent.delete(nodeId);
    this.refresh();
    for (const [id, r] of this.relays) {
      if (r.target === nodeId) this.answerLost(id, `the agent holding stage ${r.stage} disconnected`);
      else if (r.from === nodeId) {
        clearTimeout(r.timer);
        this.relays.delete(id);
      }
    }
  }

  // ---- planning -------------------------------------------------------------

  /** Brings every group up to date with the connected agents and tells members what they hold. */
  refresh(): void {
    const byKey = new Map<string, { offer: SplitOffer; sessions: AgentSession[] }>();
    for (const s of this.core.sessions.values()) {
      const o = s.capabilities.split;
      if (!o || s.state !== 'active' || !WIRED_ENGINES.includes(o.engine)) continue;
      const key = groupKey(o);
      const e = byKey.get(key);
      if (e) e.sessions.push(s);
      else byKey.set(key, { offer: o, sessions: [s] });
    }
    for (const [key, g] of this.groups) {
      const e = byKey.get(key);
      const live = new Set(e?.sessions.map((s) => s.nodeId) ?? []);
      if (g.stages.every((s) => live.has(s.nodeId))) {
        g.spares = [...live].filter((n) => !g.stages.some((s) => s.nodeId === n));
        if (g.busy > 0 || !e) continue;
        // Idle: adopt a fresh plan if it differs (an agent joined, or one with more memory).
        const fresh = planSplitGroup(g.blocks, e.sessions.map(candidateOf));
        if (fresh && !sameStages(fresh.stages, g.stages)) {
          g.stages = fresh.stages;
          g.spares = fresh.spares;
          this.core.log.info({ group: g.id, model: g.model, stages: describe(g.stages) }, 'split group re-planned');
        }
        continue;
      }
      if (g.busy === 0) this.groups.delete(key); // a member is gone (nodeGone mends busy groups)
    }
    for (const [key, e] of byKey) {
      if (this.groups.has(key)) continue;
      const plan = planSplitGroup(e.offer.blocks, e.sessions.map(candidateOf));
      if (!plan) continue;
      const g: SplitGroup = {
        id: `grp_${randomBytes(8).toString('hex')}`, engine: e.offer.engine, model: e.offer.model, hash: e.offer.hash, blocks: e.offer.blocks,
        sizeClass: e.offer.sizeClass, contextSize: e.offer.contextSize, stages: plan.stages, spares: plan.spares, busy: 0,
      };
      this.groups.set(key, g);
      this.core.log.info({ group: g.id, model: g.model, stages: describe(g.stages), spares: g.spares.length }, 'split group formed');
    }
    this.sendAssignments();
  }

  private sendAssignments(): void {
    const want = new Map<string, { key: string; msg: ServerMessage }>();
    for (const g of this.groups.values()) {
      g.stages.forEach((s, stage) => {
        const key = `${g.id}/${stage}/${s.from}-${s.to}`;
        want.set(s.nodeId, { key, msg: { type: 'split-assign', assignment: { group: g.id, engine: g.engine, model: g.model, hash: g.hash, blocks: g.blocks, stage, from: s.from, to: s.to } } });
      });
    }
    for (const [nodeId, w] of want) {
      if (this.assigned.get(nodeId) === w.key) continue;
      const session = this.core.sessions.get(nodeId);
      if (!session) continue;
      session.send(w.msg);
      this.assigned.set(nodeId, w.key);
    }
    for (const [nodeId, key] of this.assigned) {
      if (want.has(nodeId) || key === '') continue;
      this.core.sessions.get(nodeId)?.send({ type: 'split-assign', assignment: null });
      this.assigned.set(nodeId, '');
    }
    // llamacpp-rpc members learn the group's stages (after their assignment, so a new member knows its group).
    for (const g of this.groups.values()) {
      if (g.engine !== 'llamacpp-rpc') continue;
      const key = `${g.id}/${g.stages.map((x) => `${x.nodeId}:${x.from}-${x.to}`).join(",")}`;
      for (const s of g.stages) {
        if (this.membersSent.get(s.nodeId) === key) continue;
        const session = this.core.sessions.get(s.nodeId);
        if (!session) continue;
        session.send({ type: 'split-members', group: g.id, stages: g.stages.map((x) => ({ ...x })) });
        this.membersSent.set(s.nodeId, key);
      }
    }
    this.pruneTunnels();
  }

  private candidates(g: SplitGroup): SplitCandidate[] {
    const out: SplitCandidate[] = [];
    for (const s of this.core.sessions.values()) {
      const o = s.capabilities.split;
      if (o && s.state === 'active' && groupKey(o) === groupKey(g)) out.push(candidateOf(s));
    }
    return out;
  }

  private askOf(nodeId: string): number {
    return this.core.sessions.get(nodeId)?.capabilities.ask ?? 0;
  }

  private answerLost(relay: number, why: string): void {
    const r = this.relays.get(relay);
    if (!r) return;
    this.relays.delete(relay);
    clearTimeout(r.timer);
    this.core.sessions.get(r.from)?.send({ type: 'stage-reply', group: r.group, stage: r.stage, seq: r.seq, ok: false, error: errorFrom('IM_SPLIT_STAGE_GONE', why) });
  }
}

function groupKey(o: { engine: string; model: string; hash: string }): string {
  return `${o.engine}:${o.model}:${o.hash}`;
}

function candidateOf(s: AgentSession): SplitCandidate {
  const o = s.capabilities.split;
  if (!o) throw new ImError('IM_INTERNAL', 'not a split candidate');
  return { nodeId: s.nodeId, memoryBytes: o.memoryBytes, layerBytes: o.layerBytes, edgeBytes: o.edgeBytes };
}

function sameStages(a: readonly StagePlan[], b: readonly StagePlan[]): boolean {
  return a.length === b.length && a.every((s, i) => s.nodeId === b[i]!.nodeId && s.from === b[i]!.from && s.to === b[i]!.to);
}

function describe(stages: readonly StagePlan[]): string {
  return stages.map((s) => `${s.nodeId.slice(0, 8)}:${s.from}-${s.to - 1}`).join(' ');
}
