/**
 * Split groups, the pure part: which opted-in agents hold which layers of a
 * model, how a lost stage is replaced, and how a request's effort is shared
 * among the stages. No I/O: split-service.ts drives these with the agents
 * connected now. Engine-agnostic: a plan is layer ranges over nodes.
 *
 * Planning (planSplitGroup):
 * - Each candidate's capacity is the whole layers its lent memory holds after
 *   room for the model's ends (embedding and head): every stage keeps that
 *   room, so any member can become the first or last stage of a rebuild.
 * - Members are taken largest capacity first (then lower measured latency,
 *   then node id) until they hold the model together: the fewest stages, so
 *   the fewest hops per token. The rest are spares for recovery.
 * - Layers are shared by capacity with the largest-remainder method; a share
 *   never exceeds its capacity (blocks ≤ Σ capacity makes every quota ≤ its
 *   capacity, and a fractional quota rounds up to at most its capacity).
 * - Stages are contiguous, in member order. No plan when the model does not
 *   fit: a group never forms with a stage over its memory.
 */
import type { StagePlan } from '@idlemesh/protocol';

export interface SplitCandidate {
  nodeId: string;
  /** What the owner lends to split stages (--split-memory). */
  memoryBytes: number;
  /** One layer on a stage: weights as loaded plus its KV cache. */
  layerBytes: number;
  /** The model's ends (embedding, final norm, head). */
  edgeBytes: number;
  /** Measured round trip to the coordinator, when known: the tiebreak between equal capacities. */
  latencyMs?: number;
}

export interface SplitPlan {
  stages: StagePlan[];
  /** Candidates outside the group, best first: replacements for a lost stage. */
  spares: string[];
}

/** Whole layers a candidate can hold. */
export function layerCapacity(c: SplitCandidate): number {
  if (c.layerBytes <= 0) return 0;
  return Math.max(0, Math.floor((c.memoryBytes - c.edgeBytes) / c.layerBytes));
}

/** Best candidates first: capacity, then latency (unknown last), then node id. */
export function rankCandidates(candidates: readonly SplitCandidate[]): SplitCandidate[] {
  return [...candidates].sort((a, b) =>
    layerCapacity(b) - layerCapacity(a)
    || (a.latencyMs ?? Infinity) - (b.latencyMs ?? Infinity)
    || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}

/**
 * `total` split into integer parts proportional to `weights` by the largest
 * remainder method (ties to the earlier index); the parts sum to `total`.
 */
export function largestRemainder(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0 || sum <= 0) return weights.map(() => 0);
  const quotas = weights.map((w) => (total * w) / sum);
  const parts = quotas.map(Math.floor);
  let left = total - parts.reduce((a, b) => a + b, 0);
  const order = quotas.map((q, i) => ({ i, r: q - Math.floor(q) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    parts[i] = parts[i]! + 1;
    left--;
  }
  return parts;
}

/** The group for a model of `blocks` layers, or undefined when the candidates cannot hold it together. */
export function planSplitGroup(blocks: number, candidates: readonly SplitCandidate[]): SplitPlan | undefined {
  if (!Number.isInteger(blocks) || blocks < 1) return undefined;
  const ranked = rankCandidates(candidates).filter((c) => layerCapacity(c) > 0);
  const members: SplitCandidate[] = [];
  let held = 0;
  for (const c of ranked) {
    if (held >= blocks) break;
    members.push(c);
    held += layerCapacity(c);
  }
  if (held < blocks) return undefined;
  const layers = largestRemainder(blocks, members.map(layerCapacity));
  const stages: StagePlan[] = [];
  let from = 0;
  members.forEach((m, i) => {
    const n = layers[i]!;
    if (n === 0) return; // rounded to nothing: it stays a spare
    stages.push({ nodeId: m.nodeId, from, to: from + n });
    from += n;
  });
  const inGroup = new Set(stages.map((s) => s.nodeId));
  return { stages, spares: ranked.filter((c) => !inGroup.has(c.nodeId)).map((c) => c.nodeId) };
}

/**
 * The plan with `gone`'s layers given to the best spare that can hold them
 * (the other stages keep theirs, so a request in flight goes on); undefined
 * when no spare can.
 */
export function replaceStage(stages: readonly StagePlan[], gone: string, spares: readonly SplitCandidate[]): { stages: StagePlan[]; stage: number; nodeId: string } | undefined {
  const stage = stages.findIndex((s) => s.nodeId === gone);
  if (stage < 0) return undefined;
  const need = stages[stage]!.to - stages[stage]!.from;
  const members = new Set(stages.map((s) => s.nodeId));
  const pick = rankCandidates(spares).find((c) => !members.has(c.nodeId) && layerCapacity(c) >= need);
  if (!pick) return undefined;
  return { stages: stages.map((s, i) => (i === stage ? { ...s, nodeId: pick.nodeId } : s)), stage, nodeId: pick.nodeId };
}

/** Whether a plan covers layers [0, blocks) contiguously with non-empty stages. */
export function validPlan(stages: readonly StagePlan[], blocks: number): boolean {
  let next = 0;
  for (const s of stages) {
    if (s.from !== next || s.to <= s.from) return false;
    next = s.to;
  }
  return stages.length > 0 && next === blocks;
}

/**
 * A split request's effort shared by layers served: the fuel the head
 * reports (tokens × the model's weight, as for an unsplit request) times the
 * multiplier, split among the stages in proportion to their layers (largest
 * remainder, so the shares sum to round(fuel × multiplier) exactly).
 */
export function splitEffort(fuel: number, stages: readonly StagePlan[], multiplier: number): Array<{ nodeId: string; fuel: number; layers: number }> {
  const total = Math.round(fuel * multiplier);
  const layers = stages.map((s) => s.to - s.from);
  const parts = largestRemainder(total, layers);
  return stages.map((s, i) => ({ nodeId: s.nodeId, fuel: parts[i]!, layers: layers[i]! }));
}
