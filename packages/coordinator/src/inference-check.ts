/**
 * Inference honesty: LLM answers are not bit-reproducible across machines, so
 * they are not re-run and compared; a sample of greedy (temperature 0)
 * answers is scored, teacher-forced, by another node serving the same model
 * file. An honest greedy answer is the model's most likely token at (nearly)
 * every step; another model's tokens, or made-up ones, are not. A node whose
 * answer fails loses reputation — a node fault in its reliability count, and
 * the last place in routing for an hour — and is never slashed: this is
 * statistical evidence, not proof (docs/verification.md).
 *
 * `judgeAnswer` is pure; `InferenceChecker` runs the check as an unbilled
 * `llm` job of kind `score` leased straight to the checking node.
 */
import { Counter } from 'prom-client';
import { ImError, bytesToBase64, newJobId, taskId } from '@idlemesh/protocol';
import type { LeasedTask, ModelOffer } from '@idlemesh/protocol';
import type { AgentSession, Core } from './core.js';

export const CHECK_CALLER = 'system:inference-check';
/** A token is off when its log-probability is this far below the most likely token's (nats). */
export const DEFAULT_TOLERANCE_NATS = 0.5;
/** An answer fails when more than this fraction of its tokens are off (near-ties and numeric drift stay below). */
export const DEFAULT_MAX_OFF_FRACTION = 0.2;
const CHECK_TIMEOUT_MS = 120_000;
const DEMOTION_MS = 3600_000;

export interface Scored {
  tokenLogprobs: readonly number[];
  topLogprobs?: readonly number[];
}

export interface Verdict {
  honest: boolean;
  tokens: number;
  /** Tokens whose log-probability is more than the tolerance below the most likely one. */
  off: number;
  /** Mean of (top − token) log-probability, nats. */
  meanRegret: number;
}

/** Undefined when the score cannot decide (no tokens, or a backend that does not give the most likely token's log-probability). */
export function judgeAnswer(s: Scored, opts: { toleranceNats?: number; maxOffFraction?: number } = {}): Verdict | undefined {
  const tol = opts.toleranceNats ?? DEFAULT_TOLERANCE_NATS;
  const maxOff = opts.maxOffFraction ?? DEFAULT_MAX_OFF_FRACTION;
  const top = s.topLogprobs;
  const n = s.tokenLogprobs.length;
  if (n === 0 || !top || top.length !== n) return undefined;
  let off = 0;
  let regret = 0;
  for (let i = 0; i < n; i++) {
    const r = Math.max(0, (top[i] as number) - (s.tokenLogprobs[i] as number));
    regret += r;
    if (r > tol) off++;
  }
  return { honest: off <= Math.floor(maxOff * n), tokens: n, off, meanRegret: regret / n };
}

/** What was answered, as the router saw it. */
export interface ServedAnswer {
  nodeId: string;
  offer: Pick<ModelOffer, 'id' | 'hash'>;
  kind: 'chat' | 'completion';
  body: Record<string, unknown>;
  /** The OpenAI response (JSON text). */
  output: string;
  jobId: string;
}

export class InferenceChecker {
  private readonly checks: Counter<'result'>;
  /** Nodes that failed a check, and when: routed last for an hour. */
  private readonly demoted = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly core: Core, readonly rate: number, private readonly random: () => number = Math.random) {
    this.checks = new Counter({ name: 'idlemesh_inference_checks_total', help: 'Teacher-forced checks of LLM answers by a second node, by result', labelNames: ['result'], registers: [core.metrics.registry] });
  }

  /** Whether routing should put this node last (it failed a check in the last hour). */
  isDemoted(nodeId: string, now: number): boolean {
    const at = this.demoted.get(nodeId);
    return at !== undefined && now - at < DEMOTION_MS;
  }

  /** After an answer was served: draws whether to check it, and checks it in the background. */
  consider(a: ServedAnswer): void {
    if (this.rate <= 0 || a.body.temperature !== 0 || this.random() >= this.rate) return;
    const p = this.check(a).catch((err: unknown) => this.core.log.warn({ err, job: a.jobId }, 'inference check failed to run'));
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Waits for the checks in flight (tests, shutdown). */
  async settle(): Promise<void> {
    await Promise.all([...this.running]);
  }

  private async check(a: ServedAnswer): Promise<void> {
    const answer = answerText(a);
    const checker = this.checkerFor(a);
    if (answer === undefined || answer === '' || !checker) {
      this.checks.inc({ result: 'inconclusive' });
      return;
    }
    const prompt = a.kind === 'chat' ? a.body.messages : a.body.prompt;
    const scored = await this.score(checker, a.offer, { model: a.offer.id, prompt, continuation: answer });
    const verdict = scored && judgeAnswer(scored);
    if (!verdict) {
      this.checks.inc({ result: 'inconclusive' });
      return;
    }
    this.checks.inc({ result: verdict.honest ? 'honest' : 'dishonest' });
    const log = { node: a.nodeId.slice(0, 12), checker: checker.nodeId.slice(0, 12), job: a.jobId, model: a.offer.id, tokens: verdict.tokens, off: verdict.off, meanRegret: Math.round(verdict.meanRegret * 1000) / 1000 };
    if (verdict.honest) {
      this.core.log.info(log, 'inference check: the answer is the model\'s');
      return;
    }
    const now = this.core.now();
    this.demoted.set(a.nodeId, now);
    // Reputation, never money: one node fault in the reliability the issuance weighs.
    this.core.issuance.faults(a.nodeId, 1, now);
    this.core.log.warn(log, 'inference check: the answer is not what the model says; the node loses reputation');
    await this.core.audit.record({ type: 'inference.dishonest', actor: 'system', subject: a.nodeId, data: { job: a.jobId, checker: checker.nodeId, model: a.offer.id, tokens: verdict.tokens, off: verdict.off } });
  }

  /** Another active node serving the same model file, not itself caught lying in the last hour. */
  private checkerFor(a: ServedAnswer): AgentSession | undefined {
    const now = this.core.now();
    const candidates = [...this.core.sessions.values()].filter((s) => s.state === 'active' && s.nodeId !== a.nodeId && !this.isDemoted(s.nodeId, now)
      && (s.capabilities.models ?? []).some((m) => m.hash === a.offer.hash));
    return candidates[Math.floor(this.random() * candidates.length)];
  }

  /** One unbilled `score` task on the checker; undefined when it could not answer. */
  private async score(session: AgentSession, offer: Pick<ModelOffer, 'hash'>, request: Record<string, unknown>): Promise<Scored | undefined> {
    const core = this.core;
    const now = core.now();
    const id = newJobId(now);
    const input = new TextEncoder().encode(JSON.stringify({ kind: 'score', request }));
    await core.store.createJob({
      id, caller: CHECK_CALLER, requestHash: '', name: 'inference check', module: offer.hash, instrumentedModule: offer.hash, runtime: 'llm',
      limits: { fuel: Number.MAX_SAFE_INTEGER, memoryMb: 1, timeoutMs: CHECK_TIMEOUT_MS, outputBytes: 4 * 1024 * 1024 },
      bid: 0, maxAttempts: 1, retryBackoffMs: 0, priority: 1, requirements: {}, createdAt: now, verification: { mode: 'trusted' },
    }, [input]);
    const ended = this.ended(id);
    const [t] = await core.store.claimTasks([{ jobId: id, nodeId: session.nodeId, count: 1, ask: 0 }], now, core.opts.leaseMs);
    if (!t) throw new ImError('IM_INTERNAL', 'the check task could not be leased');
    const lease: LeasedTask = {
      taskId: taskId(t.jobId, t.index), jobId: t.jobId, index: t.index, attempt: t.attempt, runtime: 'llm', module: t.instrumentedModule,
      input: bytesToBase64(t.input), limits: t.limits, leaseExpiresAt: t.leaseExpiresAt,
    };
    session.send({ type: 'lease', tasks: [lease] });
    if (!(await ended)) {
      await core.cancelJob(id).catch(() => undefined);
      return undefined;
    }
    const [r] = await core.store.getResults(id, { after: -1, limit: 1 });
    if (r?.state !== 'succeeded' || !r.output) return undefined;
    return JSON.parse(Buffer.from(r.output).toString('utf8')) as Scored;
  }

  /** Resolves true when the job has ended, false after the timeout. */
  private ended(jobId: string): Promise<boolean> {
    return new Promise((resolve) => {
      const stop = this.core.progress.watch(jobId, (_job, final) => {
        if (!final) return;
        clearTimeout(timer);
        stop();
        resolve(true);
      }, { finalOnly: true });
      const timer = setTimeout(() => {
        stop();
        resolve(false);
      }, CHECK_TIMEOUT_MS);
    });
  }
}

/** The answer's text: the first choice's message (chat) or text (completion); undefined for tool calls. */
function answerText(a: ServedAnswer): string | undefined {
  try {
    const r = JSON.parse(a.output) as { choices?: Array<{ message?: { content?: unknown; tool_calls?: unknown }; text?: unknown }> };
    const c = r.choices?.[0];
    if (!c) return undefined;
    if (a.kind === 'completion') return typeof c.text === 'string' ? c.text : undefined;
    if (c.message?.tool_calls) return undefined;
    return typeof c.message?.content === 'string' ? c.message.content : undefined;
  } catch {
    return undefined;
  }
}
