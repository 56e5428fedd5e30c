/**
 * Verification by replication in the running system (modes `replicate` and
 * `adaptive`): the store keeps the executions (store/replicas-*.ts), the
 * pure core in verify/ decides, and this service wires the two.
 *
 * - Before a results batch is stored, `plan` marks the first results to
 *   hold: every one of a `replicate` job, and of an `adaptive` job unless its
 *   node is trusted (streak ≥ trustStreak) and the draw (1/streak) spares it.
 *   A held result is acked like any other: the agent cannot tell.
 * - When a task has no execution left outstanding, `decide` runs the quorum
 *   (verify/quorum.ts). Agreement of minQuorum results decides; a dissent
 *   goes to the referee, who re-executes and judges every signed receipt
 *   (verify/referee.ts): each contradicted one is proven fraud and slashed,
 *   however many signed it — a colluding majority included — and the task
 *   takes the referee's result. Too few results, and no referee (it could
 *   not run the task here) → more replicas up to
 *   maxTotalResults, then IM_UNVERIFIABLE.
 * - The buyer is charged, at the decision, for every valid execution (and
 *   every reproduced task fault), never for a contradicted one; earnings
 *   stay unpaid until then. Trust streaks move at the same commit.
 * - Decisions are idempotent in the store (only a verifying task is
 *   decided; replicas are added up to a total), so two coordinators, or a
 *   restart, never decide twice; the sweep decides what a crash left.
 * - `optimistic` (accepted at once, checked by the referee's draw, earnings
 *   pending for the job's window): on any conviction of a node, `reverse`
 *   voids its earnings from optimistic jobs still pending — back to those
 *   jobs' buyers — and has the referee re-run its other optimistic results
 *   still in their window (each contradiction is proven and corrected).
 */
import { randomInt } from 'node:crypto';
import { ImError, errorFrom, sha256HexSync, taskId } from '@idlemesh/protocol';
import type { ReceiptDocument, Verification } from '@idlemesh/protocol';
import { Counter } from 'prom-client';
import { DEFAULT_MODE_PARAMS, adjudicate, decide, initialExecutions, resolveModeParams } from './verify/index.js';
import type { ModeParams, Result, Rng } from './verify/index.js';
import { claimOf } from './referee.js';
import { isRetryableTaskError } from './store/index.js';
import type { ExecutionRow, Outcome, TaskDecision, TaskKey } from './store/index.js';
import type { Core } from './core.js';
import { ACCOUNTS, accountInput, link } from './settlement/index.js';
import type { LedgerBatch } from './ledger/persist.js';
import type { Transfer } from './ledger/index.js';

/** Executions a task may have in all (lost ones included) before it is given up as unverifiable. */
const MAX_EXECUTION_ROWS_FACTOR = 2;
const SWEEP_BATCH = 200;
/** The longest optimistic challenge window a job may ask for (the schema's maximum). */
const MAX_WINDOW_MS = 30 * 24 * 3_600_000;
const RATE_SCALE = 2 ** 32;

/** Unpredictable to agents: which results are replicated must not be guessable. */
const cryptoRng: Rng = () => randomInt(RATE_SCALE) / RATE_SCALE;

type Replicated = Extract<Verification, { mode: 'replicate' | 'adaptive' }>;

/** The pure core's parameters for a job's replicated verification. */
export function modeParams(v: Replicated, referee: boolean): ModeParams {
  try {
    return resolveModeParams({
      minQuorum: v.minQuorum, targetResults: v.targetResults, maxTotalResults: v.maxTotalResults,
      trustStreak: v.mode === 'adaptive' ? v.trustStreak : DEFAULT_MODE_PARAMS.trustStreak, referee,
    });
  } catch (err) {
    throw err instanceof ImError ? new ImError('IM_VALIDATION', `verification: ${err.message}`) : err;
  }
}

export function isReplicated(v: Verification | undefined | null): v is Replicated {
  return v?.mode === 'replicate' || v?.mode === 'adaptive';
}

/** Executions per task the buyer's escrow must cover. */
export function maxExecutions(v: Verification | undefined): number {
  return isReplicated(v) ? v.maxTotalResults : 1;
}

export class Verifier {
  /** Tasks being decided in this process; a second call while one runs asks for another look after it. */
  private readonly busy = new Map<string, boolean>();
  private readonly running = new Set<Promise<void>>();
  /** Disputes run one at a time: the referee's sandbox has one worker, and a node's slashes must see each other's remainder. */
  private disputes: Promise<unknown> = Promise.resolve();
  private readonly decisions: Counter;
  private closed = false;

  constructor(private readonly core: Core, private readonly rng: Rng = cryptoRng) {
    this.decisions = new Counter({
      name: 'idlemesh_verify_decisions_total', help: 'Replicated tasks decided, by verdict (quorum, referee, unverifiable) and mode',
      labelNames: ['verdict', 'mode'], registers: [core.metrics.registry],
    });
  }

  /** See the header (`optimistic`). Idempotent: a second conviction finds nothing more to void. */
  async reverse(nodeId: string): Promise<void> {
    const now = this.core.now();
    const operator = ACCOUNTS.operator(nodeId);
    const windows = new Map<string, number>();
    const optimistic = async (jobId: string): Promise<{ windowMs: number; buyer?: string } | undefined> => {
      const job = await this.core.store.getJob(jobId);
      if (job?.verification?.mode !== 'optimistic') return undefined;
      windows.set(jobId, job.verification.windowMs);
      return { windowMs: job.verification.windowMs, ...(job.buyer !== undefined ? { buyer: job.buyer } : {}) };
    };
    let voided = 0n;
    for (const p of await this.core.store.ledgerOpenPendings({ codes: ['payment'], limit: 10_000 })) {
      if (p.creditAccount !== operator || p.ref === undefined) continue;
      const job = await optimistic(p.ref);
      if (job?.buyer === undefined) continue;
      await this.core.store.ledgerApply(reversalBatch(p, p.ref, job.buyer, nodeId), now, { atomic: true });
      voided += p.amount;
    }
    const rerun = [];
    for (const r of await this.core.store.nodeResults(nodeId, now - MAX_WINDOW_MS, 10_000)) {
      const w = windows.get(r.jobId) ?? (await optimistic(r.jobId))?.windowMs;
      if (w !== undefined && r.finishedAt >= now - w) rerun.push(r);
    }
    this.core.referee.recheck(nodeId, rerun);
    if (voided > 0n || rerun.length > 0) {
      this.core.log.warn({ node: nodeId, voidedMsat: voided.toString(), rerun: rerun.length }, 'optimistic earnings reversed after a conviction; results in the window re-run');
      await this.core.referee.audit?.record({ type: 'verify.reversed', actor: 'referee', subject: nodeId, data: { voidedMsat: voided.toString(), rerun: rerun.length } });
    }
  }

  /** Whether a job's results are verified by replication. */
  async replicated(jobId: string): Promise<boolean> {
    return isReplicated((await this.setting(jobId))?.v);
  }

  /** Marks the first results of a batch to hold for verification (see the header). */
  async plan(nodeId: string, outcomes: Outcome[]): Promise<void> {
    let streak: number | undefined;
    for (const o of outcomes) {
      if (!o.ok && isRetryableTaskError(o.error?.code ?? 'IM_AGENT_ERROR')) continue;
      const s = await this.setting(o.jobId);
      if (!s || !isReplicated(s.v)) continue;
      const params = modeParams(s.v, false);
      if (s.v.mode === 'adaptive') streak ??= (await this.core.store.nodeTrust([nodeId])).get(nodeId) ?? 0;
      const n = initialExecutions(s.v.mode, { streak: streak ?? 0 }, params, this.rng);
      if (n > 1) o.replicas = n - 1;
    }
  }

  /** After results were stored: a look at each task whose verification may be due. */
  consider(tasks: readonly TaskKey[]): void {
    for (const t of tasks) this.track(this.decide(t));
  }

  /** Sweep (one coordinator): tasks a crash or a lost replica left undecided. */
  async sweep(): Promise<void> {
    for (const t of await this.core.store.undecidedTasks(SWEEP_BATCH)) await this.decide(t);
  }

  /** Resolves when every decision in flight has run (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  private track(p: Promise<void>): void {
    const q = p.catch((err: unknown) => this.core.log.error({ err }, 'verification failed; the sweep tries again')).finally(() => this.running.delete(q));
    this.running.add(q);
  }

  private async setting(jobId: string): Promise<{ v: Verification | null; runtime: string } | undefined> {
    const job = await this.core.jobFacts.get(jobId);
    return job && { v: job.verification ?? null, runtime: job.runtime };
  }

  /** One task: decided once every execution sent is back (so a colluding pair that answers first cannot outvote the third). */
  async decide(t: TaskKey): Promise<void> {
    const key = taskId(t.jobId, t.index);
    if (this.busy.has(key)) {
      this.busy.set(key, true);
      return;
    }
    this.busy.set(key, false);
    try {
      do {
        this.busy.set(key, false);
        if (this.closed) return;
        await this.decideOnce(t);
      } while (this.busy.get(key) === true);
    } finally {
      this.busy.delete(key);
    }
  }

  private async decideOnce(t: TaskKey): Promise<void> {
    // Decided already (a verifying task reads as leased): nothing to run again, the referee least of all.
    const [row] = await this.core.store.getResults(t.jobId, { after: t.index - 1, limit: 1 });
    if (row?.index !== t.index || row.state !== 'leased') return;
    const s = await this.setting(t.jobId);
    const execs = await this.core.store.taskExecutions(t.jobId, t.index);
    if (!s || execs.length === 0) return;
    if (execs.some((e) => e.state === 'queued' || e.state === 'leased')) return;
    const v: Replicated = isReplicated(s.v) ? s.v : { mode: 'replicate', minQuorum: 2, targetResults: 2, maxTotalResults: 5 };
    // The referee settles disputes of deterministic wasm tasks; python and js modules are not kept here.
    const params = modeParams(v, s.runtime === 'wasm');
    const done = execs.filter((e) => e.state === 'done');
    const results = done.map(resultOf);
    const verdict = decide(results, params, 0);
    switch (verdict.kind) {
      case 'pending': {
        const live = execs.filter((e) => e.state !== 'cancelled').length;
        if (verdict.more > 0 && live < MAX_EXECUTION_ROWS_FACTOR * params.maxTotalResults) {
          const added = await this.core.store.addReplicas(t.jobId, t.index, live + verdict.more);
          if (added > 0) this.core.announceWork();
          return;
        }
        await this.apply({ ...t, ok: false, fuel: 0, error: errorFrom('IM_UNVERIFIABLE', `only ${done.length} result(s) came back for ${execs.length} executions`), paid: [], trust: [] }, 'unverifiable', v.mode);
        return;
      }
      case 'accepted': {
        const canon = done.find((e) => e.nodeId === verdict.canonical.nodeId);
        if (!canon) return;
        const valid = new Set(verdict.valid);
        await this.apply({
          ...t, ok: canon.ok === true, ...(canon.ok === true ? { output: canon.output ?? new Uint8Array() } : { error: canon.error ?? errorFrom('IM_TRAP') }),
          fuel: canon.fuel ?? 0, canonical: canon.replica,
          paid: done.filter((e) => valid.has(e.nodeId ?? '')).map((e) => e.replica),
          trust: [...verdict.valid.map((nodeId) => ({ nodeId, valid: true })), ...verdict.invalid.map((nodeId) => ({ nodeId, valid: false }))],
        }, 'quorum', v.mode);
        return;
      }
      case 'needs-referee': {
        const run = this.disputes.then(() => this.referee(t, done, v, params));
        this.disputes = run.catch(() => undefined);
        await run;
        return;
      }
      case 'unverifiable':
        await this.apply({ ...t, ok: false, fuel: 0, error: errorFrom('IM_UNVERIFIABLE', `no ${params.minQuorum} of ${done.length} results agreed`), paid: [], trust: [] }, 'unverifiable', v.mode);
        return;
    }
  }

  /** A dispute: the referee re-executes, every contradicted signed receipt is proven fraud, and the task takes the referee's result. */
  private async referee(t: TaskKey, done: ExecutionRow[], v: Replicated, params: ModeParams): Promise<void> {
    const run = await this.core.referee.rerun(t.jobId, t.index);
    this.core.metrics.refereeChecks.inc({ result: run === undefined ? 'inconclusive' : 'dispute' });
    if (run === undefined) {
      // The referee cannot say here: vote as BOINC does (never a slash), or more replicas.
      const verdict = decide(done.map(resultOf), { ...params, referee: false, onDissent: 'replicate' }, 0);
      if (verdict.kind === 'accepted') {
        const canon = done.find((e) => e.nodeId === verdict.canonical.nodeId);
        if (!canon) return;
        const valid = new Set(verdict.valid);
        await this.apply({
          ...t, ok: canon.ok === true, ...(canon.ok === true ? { output: canon.output ?? new Uint8Array() } : { error: canon.error ?? errorFrom('IM_TRAP') }),
          fuel: canon.fuel ?? 0, canonical: canon.replica, paid: done.filter((e) => valid.has(e.nodeId ?? '')).map((e) => e.replica),
          trust: [...verdict.valid.map((nodeId) => ({ nodeId, valid: true })), ...verdict.invalid.map((nodeId) => ({ nodeId, valid: false }))],
        }, 'quorum', v.mode);
      } else if (verdict.kind === 'pending' && verdict.more > 0 && done.length < params.maxTotalResults) {
        if (await this.core.store.addReplicas(t.jobId, t.index, done.length + verdict.more) > 0) this.core.announceWork();
      } else {
        await this.apply({ ...t, ok: false, fuel: 0, error: errorFrom('IM_UNVERIFIABLE', 'the results disagree and the referee could not re-execute the task here'), paid: [], trust: [] }, 'unverifiable', v.mode);
      }
      return;
    }
    const judged = adjudicate(run.measured, done.map(resultOf));
    const job = await this.core.store.getJob(t.jobId);
    const paid: number[] = [];
    const trust: TaskDecision['trust'] = [];
    for (const [i, j] of judged.judgements.entries()) {
      const e = done[i] as ExecutionRow;
      if (j.kind === 'valid' || j.kind === 'task-fault') paid.push(e.replica);
      if (j.kind === 'valid') trust.push({ nodeId: j.nodeId, valid: true });
      if (j.kind === 'invalid' || j.kind === 'fraud') trust.push({ nodeId: j.nodeId, valid: false });
      if (j.kind === 'fraud' && e.receipt !== undefined) {
        // Never charged (not in `paid`), so nothing to refund: the whole slash goes to the reward pool.
        await this.core.referee.prove(j.nodeId, JSON.parse(e.receipt) as ReceiptDocument, j.evidence, undefined);
        this.core.metrics.refereeChecks.inc({ result: 'fraud' });
      }
    }
    if (job?.state === 'cancelled') return;
    const agreeing = done.find((e, i) => judged.judgements[i]?.kind === 'valid' || judged.judgements[i]?.kind === 'task-fault');
    const ok = run.measured.outcome === 'ok';
    await this.apply({
      ...t, ok, fuel: run.measured.fuel,
      ...(ok ? { output: agreeing?.output ?? run.output ?? new Uint8Array() } : { error: agreeing?.error ?? errorFrom(run.measured.outcome === 'out-of-fuel' ? 'IM_FUEL_EXHAUSTED' : 'IM_TRAP') }),
      ...(agreeing ? { canonical: agreeing.replica } : {}), paid, trust,
    }, 'referee', v.mode);
  }

  private async apply(d: TaskDecision, verdict: 'quorum' | 'referee' | 'unverifiable', mode: string): Promise<void> {
    const r = await this.core.store.decideTask(d, this.core.now());
    if (!r.decided) return;
    this.decisions.inc({ verdict, mode });
    if (verdict === 'unverifiable') this.core.log.warn({ job: d.jobId, index: d.index, reason: d.error?.message }, 'task unverifiable');
    await this.core.revoke(r.revoked, 'the task was decided without this replica');
    this.core.notifyJobs(r.jobs);
    this.core.kick();
  }
}

/**
 * Reverses one pending payment to a convicted operator: voided, and the same
 * amount returned from escrow to the job's buyer, in one linked batch
 * (idempotent: the ids derive from the pending transfer's).
 */
export function reversalBatch(pending: Pick<Transfer, 'id' | 'amount'>, jobId: string, buyer: string, nodeId: string): LedgerBatch {
  const accounts = [accountInput(ACCOUNTS.escrow), accountInput(buyer)].filter((a): a is NonNullable<typeof a> => a !== undefined);
  return {
    accounts,
    events: link([
      { id: `reverse:${pending.id}`, type: 'void', pendingId: pending.id, ref: jobId },
      { id: `refund:${pending.id}`, debitAccount: ACCOUNTS.escrow, creditAccount: buyer, amount: pending.amount, code: 'refund', ref: jobId, meta: { reason: 'optimistic conviction', node: nodeId } },
    ]),
  };
}

/** An execution's claim in the verifier's terms; signed claims carry their receipt's id (the evidence id). */
function resultOf(e: ExecutionRow): Result {
  const where = { ...(e.operator !== undefined ? { operator: e.operator } : {}), ...(e.prefix !== undefined ? { prefix: e.prefix } : {}) };
  if (e.receipt !== undefined) return claimOf(e.nodeId ?? '', e.receipt, where);
  return {
    nodeId: e.nodeId ?? '', operator: e.operator ?? e.nodeId ?? '', ipPrefix: e.prefix ?? '',
    outcome: e.ok === true ? 'ok' : e.error?.code === 'IM_FUEL_EXHAUSTED' ? 'out-of-fuel' : 'trap',
    outputHash: e.ok === true ? sha256HexSync(e.output ?? new Uint8Array()) : '', fuel: e.fuel ?? 0, receiptId: null,
  };
}
