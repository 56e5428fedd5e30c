/**
 * The scheduler: pure matching of waiting tasks to agents with free credit.
 * No I/O, no clock reads, no randomness: the same state gives the same plan,
 * so the server, the tests and the simulator run exactly this code.
 *
 * Fairness: weighted max-min over jobs. Each unit of an agent's credit goes
 * to the eligible job with the lowest (tasks running + planned) ÷ priority;
 * ties go to the older job. A job asks nothing more than its queued count.
 *
 * Market: an agent takes a job's tasks only if its ask ≤ the job's bid
 * (msat per EU). Cheaper agents are served first, then the more reliable,
 * so the lowest asks clear the queue.
 */

export interface SchedAgent {
  id: string;
  /** Tasks the agent will still accept (credit). */
  free: number;
  runtimes: readonly string[];
  memoryMb: number;
  cores: number;
  /** msat per EU the agent asks; absent = 0 (free). */
  ask?: number;
  /** 0..1; absent = 0.5. Breaks ties between equal asks. */
  reliability?: number;
}

export interface SchedJob {
  id: string;
  runtime: string;
  queued: number;
  /** Tasks of this job currently leased, on any agent. */
  leased: number;
  priority: number;
  createdAt: number;
  memoryMb: number;
  /** Max msat per EU the buyer pays; absent = 0 (only free agents). */
  bid?: number;
  requirements: { minMemoryMb?: number | undefined; minCores?: number | undefined };
}

export interface Assignment {
  agentId: string;
  jobId: string;
  count: number;
}

export interface ScheduleOptions {
  /** Most tasks one agent gets in one plan (one lease message). */
  maxPerAgent: number;
  /** Organisation policy (policy/): whether this agent may run this job's tasks now. Absent = no restriction. */
  allowed?: (agentId: string, jobId: string) => boolean;
  /**
   * Shared limits: tasks planned for an (agent, job) pair whose `key` is
   * defined take from `left` under that key (e.g. the rest of an approved
   * batch of tasks that may cross to public nodes).
   */
  quota?: { key: (agentId: string, jobId: string) => string | undefined; left: Map<string, number> };
}

export function eligible(agent: SchedAgent, job: SchedJob): boolean {
  return (
    agent.runtimes.includes(job.runtime) &&
    agent.memoryMb >= job.memoryMb &&
    agent.memoryMb >= (job.requirements.minMemoryMb ?? 0) &&
    agent.cores >= (job.requirements.minCores ?? 0) &&
    (agent.ask ?? 0) <= (job.bid ?? 0)
  );
}

export function schedule(agents: readonly SchedAgent[], jobs: readonly SchedJob[], opts: ScheduleOptions): Assignment[] {
  const remaining = new Map(jobs.map((j) => [j.id, j.queued]));
  const load = new Map(jobs.map((j) => [j.id, j.leased]));
  const out: Assignment[] = [];
  // Lowest ask first, then the most reliable; among equals the most room first (big batches keep round trips few).
  const order = [...agents].filter((a) => a.free > 0).sort((a, b) =>
    (a.ask ?? 0) - (b.ask ?? 0) || (b.reliability ?? 0.5) - (a.reliability ?? 0.5) || b.free - a.free || (a.id < b.id ? -1 : 1));
  for (const agent of order) {
    const candidates = jobs.filter((j) => eligible(agent, j) && (opts.allowed === undefined || opts.allowed(agent.id, j.id)));
    const quotaLeft = (j: SchedJob): number => {
      const k = opts.quota?.key(agent.id, j.id);
      return k === undefined ? Infinity : (opts.quota?.left.get(k) ?? 0);
    };
    if (candidates.length === 0) continue;
    const planned = new Map<string, number>();
    let budget = Math.min(agent.free, opts.maxPerAgent);
    while (budget > 0) {
      let best: SchedJob | undefined;
      let bestLoad = Infinity;
      for (const j of candidates) {
        if ((remaining.get(j.id) ?? 0) <= 0 || quotaLeft(j) <= 0) continue;
        const l = (load.get(j.id) ?? 0) / j.priority;
        if (l < bestLoad || (l === bestLoad && best !== undefined && (j.createdAt < best.createdAt || (j.createdAt === best.createdAt && j.id < best.id)))) {
          best = j;
          bestLoad = l;
        }
      }
      if (!best) break;
      // Give the chosen job as many units as keep it at or below the next job's level.
      const step = Math.max(1, Math.min(budget, remaining.get(best.id) ?? 0, quotaLeft(best), stepUntilNext(best, candidates, load, remaining, bestLoad)));
      const qk = opts.quota?.key(agent.id, best.id);
      if (qk !== undefined) opts.quota?.left.set(qk, (opts.quota.left.get(qk) ?? 0) - step);
      planned.set(best.id, (planned.get(best.id) ?? 0) + step);
      load.set(best.id, (load.get(best.id) ?? 0) + step);
      remaining.set(best.id, (remaining.get(best.id) ?? 0) - step);
      budget -= step;
    }
    for (const [jobId, count] of planned) out.push({ agentId: agent.id, jobId, count });
  }
  return out;
}

/** How many units `job` can take before its load passes the next-lowest eligible job's. */
function stepUntilNext(
  job: SchedJob,
  candidates: readonly SchedJob[],
  load: Map<string, number>,
  remaining: Map<string, number>,
  jobLoad: number,
): number {
  let next = Infinity;
  for (const j of candidates) {
    if (j.id === job.id || (remaining.get(j.id) ?? 0) <= 0) continue;
    const l = (load.get(j.id) ?? 0) / j.priority;
    if (l >= jobLoad && l < next) next = l;
  }
  if (next === Infinity) return Number.MAX_SAFE_INTEGER;
  return Math.floor((next - jobLoad) * job.priority) + 1;
}
