/**
 * The referee: re-executes a random fraction of accepted results of
 * spot-checked jobs on the coordinator's own sandbox, and compares outcome,
 * output hash and fuel with what the node's receipt claims. The agent cannot
 * tell which results are checked (the draw happens after acceptance, here).
 *
 * A contradicted receipt is proof of fraud (verify/referee.ts, pure): the
 * evidence is kept (replayable by anyone: the receipt, the module, the
 * input), the result is replaced by the referee's, the node's bonds are
 * slashed (the buyer refunded first), and the audit log records it. A trap or
 * fuel exhaustion the referee reproduces is the task's fault, not the node's.
 *
 * Checks are queued in memory: a crash loses the checks not yet run (never a
 * result or money), like a spot check that was not drawn.
 *
 * The verifier (verifier.ts) also calls on it to settle disputes between
 * replicas: `rerun` re-executes, `prove` convicts one contradicted receipt.
 */
import { randomInt } from 'node:crypto';
import { FUEL_PER_EU, ImError, sha256HexSync } from '@idlemesh/protocol';
import type { ReceiptDocument, Verification } from '@idlemesh/protocol';
import { CODE_LANGUAGE_OF, CodeSandbox, RUNTIME_VERSION, Sandbox, runCodeTask } from '@idlemesh/runtime';
import { adjudicate } from './verify/index.js';
import type { RefereeRun, Result } from './verify/index.js';
import type { Logger } from './core.js';
import type { Metrics } from './metrics.js';
import type { Money } from './money.js';
import type { AuditSink } from './identity/sink.js';
import type { Outcome, OutcomeStatus, Store } from './store/index.js';
import { JobFactsCache } from './job-facts.js';

/** Share of a cheater's remaining bond taken per proven fraud (issue: default 50 %). */
export const FRAUD_SLASH_BPS = 5_000;
const MAX_QUEUE = 10_000;
const RATE_SCALE = 1_000_000;

interface Check {
  jobId: string;
  index: number;
  attempt: number;
  nodeId: string;
}

export interface Evidence {
  id: string;
  nodeId: string;
  task: string;
  contradiction: 'output' | 'effort' | 'outcome';
  fuelExcess: number;
  claimed: RefereeRun;
  measured: RefereeRun;
  receipt: ReceiptDocument;
  slashedMsat: string;
  refundedTo?: string;
  at: number;
}

export class Referee {
  audit: AuditSink | undefined;
  /** Told once per new conviction (the verifier reverses optimistic earnings). */
  onConvicted: ((nodeId: string) => Promise<void>) | undefined;
  private sandbox: Sandbox | undefined;
  /** Python and JS interpreters, started on the first code task to judge (a cold Pyodide takes seconds). */
  private code: CodeSandbox | undefined;
  private readonly queue: Check[] = [];
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly money: Money,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly fallback: Verification,
    /** Jobs' fixed facts, shared with the verifier and the issuance: most results skip the store. */
    private readonly jobs: JobFactsCache = new JobFactsCache(store),
  ) {}

  /** After a results batch is committed: draws the results to re-execute. */
  async consider(nodeId: string, outcomes: readonly Outcome[], statuses: readonly OutcomeStatus[]): Promise<void> {
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i] as Outcome;
      if (statuses[i] !== 'accepted' || (!o.ok && o.error?.retryable === true)) continue;
      const v = await this.setting(o.jobId);
      if ((v?.mode !== 'spot-check' && v?.mode !== 'optimistic') || v.rate <= 0) continue;
      if (randomInt(RATE_SCALE) >= Math.round(v.rate * RATE_SCALE)) continue;
      if (this.queue.length >= MAX_QUEUE) {
        this.metrics.refereeChecks.inc({ result: 'dropped' });
        continue;
      }
      this.queue.push({ jobId: o.jobId, index: o.index, attempt: o.attempt, nodeId });
    }
    if (this.queue.length > 0) this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Re-executes these accepted results of a node (an optimistic conviction re-runs its others in the window). */
  recheck(nodeId: string, results: readonly { jobId: string; index: number; attempt: number }[]): void {
    for (const r of results) {
      if (this.queue.length >= MAX_QUEUE) {
        this.metrics.refereeChecks.inc({ result: 'dropped' });
        continue;
      }
      this.queue.push({ jobId: r.jobId, index: r.index, attempt: r.attempt, nodeId });
    }
    if (this.queue.length > 0) this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves when every queued check has run (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue.length = 0;
    await this.idle();
    await this.sandbox?.close();
    await this.code?.close();
  }

  /** Fraud proven against a node, newest first. */
  async evidence(nodeId?: string): Promise<Evidence[]> {
    const rows = await this.store.records('fraud', { limit: 1000 });
    return rows.map((r) => r.doc as Evidence).filter((e) => nodeId === undefined || e.nodeId === nodeId).sort((a, b) => b.at - a.at);
  }

  private async setting(jobId: string): Promise<Verification | null> {
    const job = await this.jobs.get(jobId);
    return job ? (job.verification ?? this.fallback) : null;
  }

  private async drain(): Promise<void> {
    for (let c = this.queue.shift(); c !== undefined && !this.closed; c = this.queue.shift()) {
      try {
        this.metrics.refereeChecks.inc({ result: await this.check(c) });
      } catch (err) {
        this.metrics.refereeChecks.inc({ result: 'error' });
        this.log.error({ err, job: c.jobId, index: c.index }, 'referee check failed');
      }
    }
  }

  /**
   * Re-executes a task on the coordinator's own sandbox: what the referee
   * measured (and the output), or undefined when it cannot say — no module
   * here, or a limit of this machine (time, memory) the node need not have
   * hit. Python and JS tasks run in the same metered interpreters the agents
   * use (runCodeTask), so their output bytes and fuel compare exactly.
   */
  async rerun(jobId: string, index: number): Promise<{ measured: RefereeRun; output?: Uint8Array } | undefined> {
    const job = await this.store.getJob(jobId);
    const input = await this.store.taskInput(jobId, index);
    if (!job || !input) return undefined;
    const language = CODE_LANGUAGE_OF.get(job.instrumentedModule);
    if (language !== undefined) {
      const code = (this.code ??= new CodeSandbox({ pythonPool: 1, jsPool: 1 }));
      const r = await runCodeTask(code, language, { input, limits: job.limits });
      // A code task's own faults are verdicts inside a successful result; a failed run is the sandbox's, not proof.
      return r.ok ? { measured: { outcome: 'ok', outputHash: sha256HexSync(r.output), fuel: r.fuel }, output: r.output } : undefined;
    }
    const module = await this.store.getModule(job.instrumentedModule);
    if (!module) return undefined;
    const sandbox = (this.sandbox ??= new Sandbox({ workers: 1 }));
    await sandbox.addModule(module.instrumentedHash, module.instrumented, module.abi);
    const run = await sandbox.run({ moduleHash: module.instrumentedHash, input, limits: job.limits });
    const measured = refereeRun(run);
    if (measured === undefined) return undefined;
    return run.ok ? { measured, output: run.output } : { measured };
  }

  /** Re-executes one accepted result and judges its receipt. */
  private async check(c: Check): Promise<'agree' | 'task-fault' | 'fraud' | 'inconclusive'> {
    const text = await this.store.getReceipt(c.jobId, c.index);
    const job = await this.store.getJob(c.jobId);
    if (text === undefined || !job) return 'inconclusive';
    const doc = JSON.parse(text) as ReceiptDocument;
    if (doc.receipt.node !== c.nodeId || doc.receipt.attempt !== c.attempt) return 'inconclusive'; // replaced since
    const run = await this.rerun(c.jobId, c.index);
    if (run === undefined) return 'inconclusive';
    const claimed = claimOf(c.nodeId, text);
    if (doc.receipt.runtimeVersion !== RUNTIME_VERSION) this.log.info({ job: c.jobId, index: c.index, theirs: doc.receipt.runtimeVersion, ours: RUNTIME_VERSION }, 'referee runs another runtime version than the node');
    const verdict = adjudicate(run.measured, [claimed]);
    const j = verdict.judgements[0];
    if (j?.kind !== 'fraud') return verdict.taskFault ? 'task-fault' : 'agree';
    // The buyer keeps the referee's result, and pays for the referee's fuel at most.
    if (run.output !== undefined) await this.store.correctResult(c.jobId, c.index, c.nodeId, c.attempt, run.output, run.measured.fuel, this.now());
    await this.prove(c.nodeId, doc, j.evidence, job.buyer === undefined ? undefined : { account: job.buyer, bid: job.bid });
    return 'fraud';
  }

  /**
   * Convicts a node of one contradicted receipt: slashes its bonds, keeps
   * the evidence, records it. `buyer`: refunded first from the slash, up to
   * what it paid for the wrong result (spot-check charges before checking;
   * the verifier never charges a contradicted replica, so it passes none).
   */
  async prove(nodeId: string, doc: ReceiptDocument, e: { receiptId: string; claimed: RefereeRun; measured: RefereeRun; contradiction: Evidence['contradiction']; fuelExcess: number }, buyer: { account: string; bid: number } | undefined): Promise<bigint> {
    const c = { nodeId };
    const at = this.now();
    const id = e.receiptId;
    // Every step is idempotent (one slash per evidence id), so a conviction cut short is completed by the next check of the same receipt.
    // What the buyer paid for the wrong result, at most: its claimed effort at the job's bid (msat per EU), rounded up.
    const paid = buyer === undefined ? 0n : (BigInt(Math.max(0, e.claimed.fuel)) * BigInt(buyer.bid) + BigInt(FUEL_PER_EU) - 1n) / BigInt(FUEL_PER_EU);
    const refund = buyer !== undefined && paid > 0n ? { account: buyer.account, msat: paid } : undefined;
    const slashed = await this.money.slashForFraud(c.nodeId, id, FRAUD_SLASH_BPS, refund);
    const evidence: Evidence = {
      id, nodeId: c.nodeId, task: doc.receipt.task, contradiction: e.contradiction, fuelExcess: e.fuelExcess,
      claimed: e.claimed, measured: e.measured, receipt: doc, slashedMsat: slashed.toString(), at, ...(refund ? { refundedTo: refund.account } : {}),
    };
    try {
      await this.store.commitRecords({ expect: [{ kind: 'fraud', id, states: ['absent'] }], records: [{ kind: 'fraud', id, state: 'proven', doc: evidence }] }, at);
    } catch (err) {
      if (err instanceof ImError && err.code === 'IM_CONFLICT') return slashed; // already convicted (another coordinator, or a repeat)
      throw err;
    }
    await this.audit?.record({
      type: 'verify.fraud', actor: 'referee', subject: c.nodeId,
      data: { evidence: id, task: doc.receipt.task, contradiction: e.contradiction, fuelExcess: e.fuelExcess, slashedMsat: slashed.toString() },
    });
    this.log.warn({ node: c.nodeId, task: doc.receipt.task, contradiction: e.contradiction, fuelExcess: e.fuelExcess, slashedMsat: slashed.toString() }, 'FRAUD: the referee contradicted a signed receipt');
    await this.onConvicted?.(c.nodeId).catch((err: unknown) => this.log.error({ err, node: c.nodeId }, 'reversal after a conviction failed'));
    return slashed;
  }
}

/** What a receipt document claims, in the verifier's terms; its id is the hash of the document (the evidence id). */
export function claimOf(nodeId: string, receiptText: string, where: { operator?: string; prefix?: string } = {}): Result {
  const doc = JSON.parse(receiptText) as ReceiptDocument;
  return {
    nodeId, operator: where.operator ?? nodeId, ipPrefix: where.prefix ?? '',
    outcome: doc.receipt.ok ? 'ok' : doc.receipt.error === 'IM_FUEL_EXHAUSTED' ? 'out-of-fuel' : 'trap',
    outputHash: doc.receipt.outputHash ?? '', fuel: doc.receipt.fuel, receiptId: sha256HexSync(new TextEncoder().encode(receiptText)).slice(0, 32),
  };
}

/** What the referee measured, in the verifier's terms; undefined when the run says nothing (a limit of this machine). */
function refereeRun(r: Awaited<ReturnType<Sandbox['run']>>): RefereeRun | undefined {
  if (r.ok) return { outcome: 'ok', outputHash: sha256HexSync(r.output), fuel: r.fuel };
  if (r.error.code === 'IM_TRAP') return { outcome: 'trap', outputHash: '', fuel: r.fuel };
  if (r.error.code === 'IM_FUEL_EXHAUSTED') return { outcome: 'out-of-fuel', outputHash: '', fuel: r.fuel };
  return undefined;
}

