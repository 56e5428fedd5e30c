/**
 * Verification simulator: virtual time, seeded, O(tasks). Every decision goes
 * through the verify core (plan, quorum, referee, trust, sampling), so what
 * this measures is what the coordinator does.
 *
 * Model: tasks arrive uniformly over `hours`, `tasksPerNodeHour` per node;
 * each is leased to a random live node and replicated as the mode says.
 * Honest nodes return the truth. A cheater returns a wrong output with
 * probability `wrong`, otherwise inflates its fuel with probability
 * `inflate`. Cheaters in a colluding group of size `collude` make the same
 * choice for the same task (a shared hash) and return the same wrong answer,
 * so two of them on one task agree. A slashed node leaves the network.
 * Referee runs and optimistic re-runs count as executions.
 */
import { hash01, createRng, randomInt } from '../verify/rng.js';
import type { Rng } from '../verify/rng.js';
import { decide, eligible, exclusion } from '../verify/quorum.js';
import { adjudicate } from '../verify/referee.js';
import { UNTRUSTED, isTrusted, recordInvalid, recordValid } from '../verify/trust.js';
import type { TrustState } from '../verify/trust.js';
import { challenge, initialExecutions, reversalSet, spotCheck } from '../verify/policy.js';
import type { PendingResult } from '../verify/policy.js';
import { resolveModeParams, sameClaim } from '../verify/types.js';
import type { Exclusion, ModeParams, Outcome, RefereeRun, Result, VerificationMode } from '../verify/types.js';

export interface SimOptions {
  readonly nodes: number;
  /** Fraction of nodes that cheat. */
  readonly cheaters: number;
  readonly hours: number;
  readonly mode: VerificationMode;
  readonly seed: number;
  readonly tasksPerNodeHour?: number;
  /** Probability a cheater returns a wrong output. */
  readonly wrong?: number;
  /** Probability a cheater inflates its fuel when its output is right. */
  readonly inflate?: number;
  /** Colluding group size (1: cheaters act alone). */
  readonly collude?: number;
  /** Fraction of node slots replaced by fresh identities each hour. */
  readonly churn?: number;
  /** Fraction of tasks that trap (the buyer's fault). */
  readonly taskFaults?: number;
  /**
   * Adaptive only (default true): a node's unreplicated results stay pending
   * for the challenge window; when its operator is caught, they are re-run
   * and the wrong ones reversed, as in optimistic mode.
   */
  readonly retroactive?: boolean;
  readonly params?: Partial<ModeParams>;
}

export interface SimReport {
  readonly mode: VerificationMode;
  readonly nodes: number;
  readonly hours: number;
  readonly seed: number;
  readonly tasks: number;
  readonly executions: number;
  /** executions ÷ tasks, referee runs included. */
  readonly overhead: number;
  readonly refereeRuns: number;
  /** Wrong results (output or effort) that became final. */
  readonly wrongAccepted: number;
  readonly wrongAcceptedRate: number;
  /** Wrong results reversed within their challenge window (optimistic, adaptive). */
  readonly wrongReversed: number;
  readonly unverifiable: number;
  readonly cheaters: number;
  readonly cheatersSlashed: number;
  readonly honestSlashed: number;
  /** Honest nodes whose streak was reset (only by vote, with onDissent=replicate). */
  readonly honestInvalidated: number;
  readonly meanHoursToDetection: number | null;
  readonly trustedAtEnd: number;
  /** Replicas of one task sharing an operator or prefix (must be 0). */
  readonly placementViolations: number;
}

interface Pending extends PendingResult {
  readonly wrong: boolean;
}

const HOUR_MS = 3_600_000;

export function simulate(opts: SimOptions): SimReport {
  const params = resolveModeParams(opts.params);
  const N = opts.nodes;
  const rate = opts.tasksPerNodeHour ?? 60;
  const wrongP = opts.wrong ?? 0.5;
  const inflateP = opts.inflate ?? 0.1;
  const G = Math.max(1, Math.floor(opts.collude ?? 1));
  const churn = opts.churn ?? 0;
  const faultP = opts.taskFaults ?? 0.01;
  const mode = opts.mode;
  const rng: Rng = createRng(opts.seed);
  if (!(N >= 2) || !(opts.hours > 0) || !(rate > 0)) throw new RangeError('nodes ≥ 2, hours > 0 and tasksPerNodeHour > 0 are required');

  // Node slots. Two nodes per operator; prefixes hashed so that an operator's
  // nodes and unrelated nodes sometimes share one.
  const prefixCount = Math.max(2, Math.ceil(N / 3));
  const ids: string[] = [];
  const desc: { operator: string; ipPrefix: string }[] = [];
  const cheater = new Uint8Array(N);
  const group = new Int32Array(N).fill(-1);
  const alive = new Uint8Array(N).fill(1);
  const joinedAt = new Float64Array(N);
  const trust: TrustState[] = [];
  const groupWrong: string[] = [];
  const soloWrong: string[] = [];
  for (let i = 0; i < N; i++) {
    ids.push(`n${i}`);
    desc.push({ operator: `o${i >> 1}`, ipPrefix: `p${Math.floor(hash01(i, 7) * prefixCount)}` });
    trust.push(UNTRUSTED);
    soloWrong.push(`w${i}`);
  }
  let cheaters = 0;
  let groupFill = G; // members in the group being filled
  let groups = -1;
  const makeCheater = (i: number): void => {
    cheater[i] = 1;
    cheaters++;
    if (G > 1) {
      if (groupFill >= G) { groups++; groupFill = 0; groupWrong.push(`g${groups}`); }
      group[i] = groups;
      groupFill++;
    }
  };
  const order = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) { const j = randomInt(rng, i + 1); const t = order[i]!; order[i] = order[j]!; order[j] = t; }
  const nCheat = Math.round(N * opts.cheaters);
  for (let r = 0; r < nCheat; r++) makeCheater(order[r]!);

  const opPending: Pending[][] = Array.from({ length: (N + 1) >> 1 }, () => []);
  const windowH = params.challengeWindowMs / HOUR_MS;
  // Single results held reversible for a challenge window (design: earnings
  // stay pending until verification is final).
  const windowed = mode === 'optimistic' || (mode === 'adaptive' && (opts.retroactive ?? true));

  let executions = 0, refereeRuns = 0, wrongAccepted = 0, wrongReversed = 0, unverifiable = 0;
  let cheatersSlashed = 0, honestSlashed = 0, honestInvalidated = 0, detectionSum = 0, placementViolations = 0;

  const pick = (ex: Exclusion | null): number => {
    for (let tries = 0; tries < 256; tries++) {
      const i = randomInt(rng, N);
      if (alive[i] === 1 && (ex === null || eligible(desc[i]!, ex))) return i;
    }
    return -1;
  };
  const slash = (i: number, hour: number): void => {
    if (alive[i] !== 1) return;
    alive[i] = 0;
    if (cheater[i] === 1) { cheatersSlashed++; detectionSum += hour - joinedAt[i]!; } else honestSlashed++;
  };
  /** After fraud by node i: its operator's other results still in the window are re-run; wrong ones reversed. */
  const reverseWindow = (i: number, hour: number, k: number): void => {
    const log = opPending[i >> 1]!;
    for (const q of reversalSet(log, desc[i]!.operator, k, hour * HOUR_MS, params)) {
      executions++; refereeRuns++;
      if (q.wrong) { wrongReversed++; wrongAccepted--; }
    }
    log.length = 0;
  };
  const invalidate = (i: number): void => {
    if (cheater[i] === 0) honestInvalidated++;
    trust[i] = recordInvalid(trust[i]!);
  };

  const total = Math.round(N * rate * opts.hours);
  const perHour = N * rate;
  let nextHour = 1;
  let generation = 0;
  const results: Result[] = [];
  const who: number[] = [];

  for (let k = 0; k < total; k++) {
    const hour = k / perHour;
    if (churn > 0 && hour >= nextHour) {
      const replace = Math.round(churn * N);
      generation++;
      for (let r = 0; r < replace; r++) {
        const i = randomInt(rng, N);
        ids[i] = `n${i}.${generation}`;
        soloWrong[i] = `w${i}.${generation}`;
        alive[i] = 1; trust[i] = UNTRUSTED; joinedAt[i] = nextHour; group[i] = -1;
        cheater[i] = 0;
        if (rng() < opts.cheaters) makeCheater(i);
      }
      nextHour++;
    }
    const outcome: Outcome = rng() < faultP ? 'trap' : 'ok';
    const truth: RefereeRun = { outcome, outputHash: outcome === 'ok' ? 'h' : 'trap', fuel: 1_000_000 + randomInt(rng, 1_000_000_000) };
    const run = (i: number): Result => {
      let claim: RefereeRun = truth;
      if (cheater[i] === 1) {
        const g = group[i]!;
        const u = g >= 0 ? hash01(k, g) : rng();
        if (u < wrongP) claim = { outcome: 'ok', outputHash: g >= 0 ? groupWrong[g]! : soloWrong[i]!, fuel: truth.fuel };
        else if ((g >= 0 ? hash01(k, g ^ 0x5bd1e995) : rng()) < inflateP) claim = { ...truth, fuel: truth.fuel + (truth.fuel >> 1) };
      }
      executions++;
      // The sim stands in the node id for its receipt id: every result is signed.
      return { nodeId: ids[i]!, operator: desc[i]!.operator, ipPrefix: desc[i]!.ipPrefix, outcome: claim.outcome, outputHash: claim.outputHash, fuel: claim.fuel, receiptId: ids[i]! };
    };

    const p = pick(null);
    if (p < 0) { unverifiable++; continue; }
    const count = initialExecutions(mode, trust[p]!, params, rng);
    results.length = 0; who.length = 0;
    results.push(run(p)); who.push(p);

    if (count === 1) {
      const r = results[0]!;
      const wrong = !sameClaim(r, truth);
      if (mode === 'spot-check' && spotCheck(params, rng)) {
        executions++; refereeRuns++;
        const j = adjudicate(truth, results).judgements[0];
        if (j?.kind === 'fraud') slash(p, hour);
        else if (j?.kind === 'valid') trust[p] = recordValid(trust[p]!);
        continue;
      }
      if (wrong) wrongAccepted++;
      if (!windowed) continue;
      // Accepted into pending earnings now; final when the window closes.
      const log = opPending[p >> 1]!;
      while (log.length > 0 && hour - log[0]!.acceptedAt / HOUR_MS >= windowH) log.shift();
      if (mode === 'optimistic' && challenge(params, rng)) {
        executions++; refereeRuns++;
        const j = adjudicate(truth, results).judgements[0];
        if (j?.kind === 'fraud') {
          slash(p, hour);
          wrongReversed++; wrongAccepted--; // this result's pending earnings reversed
          reverseWindow(p, hour, k);
          continue;
        }
      }
      log.push({ taskId: k, operator: r.operator, acceptedAt: hour * HOUR_MS, wrong });
      continue;
    }

    // Replicated: quorum, then the referee on dissent.
    for (let j = 1; j < count; j++) {
      const q = pick(exclusion(results));
      if (q < 0) break;
      results.push(run(q)); who.push(q);
    }
    for (;;) {
      const v = decide(results, params);
      if (v.kind === 'pending') {
        let added = 0;
        for (let j = 0; j < v.more; j++) {
          const q = pick(exclusion(results));
          if (q < 0) break;
          results.push(run(q)); who.push(q); added++;
        }
        if (added === 0) { unverifiable++; break; }
        continue;
      }
      if (v.kind === 'accepted') {
        if (!sameClaim(v.canonical, truth)) wrongAccepted++;
        if (v.canonical.outcome === 'ok') {
          for (let j = 0; j < results.length; j++) {
            const id = results[j]!.nodeId, i = who[j]!;
            if (v.valid.includes(id)) trust[i] = recordValid(trust[i]!);
            else if (v.invalid.includes(id)) invalidate(i);
          }
        }
        break;
      }
      if (v.kind === 'needs-referee') {
        executions++; refereeRuns++;
        const verdict = adjudicate(truth, results);
        verdict.judgements.forEach((j, n) => {
          const i = who[n]!;
          if (j.kind === 'valid') trust[i] = recordValid(trust[i]!);
          else if (j.kind === 'fraud') { trust[i] = recordInvalid(trust[i]!); slash(i, hour); if (windowed) reverseWindow(i, hour, k); }
          else if (j.kind === 'invalid') invalidate(i);
        });
        break;
      }
      unverifiable++;
      break;
    }
    placementViolations += countViolations(results);
  }

  let trustedAtEnd = 0;
  for (let i = 0; i < N; i++) if (alive[i] === 1 && isTrusted(trust[i]!, params)) trustedAtEnd++;
  return {
    mode, nodes: N, hours: opts.hours, seed: opts.seed,
    tasks: total, executions, overhead: total === 0 ? 0 : executions / total, refereeRuns,
    wrongAccepted, wrongAcceptedRate: total === 0 ? 0 : wrongAccepted / total, wrongReversed, unverifiable,
    cheaters, cheatersSlashed, honestSlashed, honestInvalidated,
    meanHoursToDetection: cheatersSlashed === 0 ? null : detectionSum / cheatersSlashed,
    trustedAtEnd, placementViolations,
  };
}

function countViolations(results: readonly Result[]): number {
  let v = 0;
  for (let a = 0; a < results.length; a++) {
    for (let b = a + 1; b < results.length; b++) {
      if (results[a]!.operator === results[b]!.operator || results[a]!.ipPrefix === results[b]!.ipPrefix) v++;
    }
  }
  return v;
}
