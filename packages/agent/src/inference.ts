/**
 * Serving models: `llm` tasks are inference requests the coordinator leases
 * to this agent because it advertised the model (its hash is the task's
 * module). Each runs on the backend holding that model, one at a time per
 * model (the rest wait here); streaming chunks go to the coordinator as they
 * come (`stream` messages), and the final response is an ordinary outcome —
 * signed in the next results batch with its receipt — whose fuel is the
 * tokens used × the model's size weight × FUEL_PER_TOKEN.
 */
import { FUEL_PER_TOKEN, SIZE_CLASS_WEIGHT, base64ToBytes, sha256HexSync } from '@idlemesh/protocol';
import type { LeasedTask, ModelOffer, TaskOutcome } from '@idlemesh/protocol';

export interface InferenceUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** What serves the models: node-llama-cpp, or an OpenAI-compatible server (see @idlemesh/llm). */
export interface ModelBackend {
  offers(): Promise<ModelOffer[]>;
  /**
   * Runs one OpenAI request for `model` (an offer's id). When the request
   * streams, calls onChunk with each OpenAI chunk object. Resolves with the
   * final (non-streaming) response object and its token usage.
   */
  run(kind: 'chat' | 'completion', request: Record<string, unknown>, onChunk: (chunk: unknown) => void, signal: AbortSignal): Promise<{ response: Record<string, unknown>; usage: InferenceUsage }>;
  /** Teacher-forced log-probabilities of another node's answer: `{model, prompt, continuation}`. Backends that cannot score leave it out. */
  score?(request: Record<string, unknown>, signal: AbortSignal): Promise<{ tokenLogprobs: number[]; topLogprobs?: number[] }>;
  close?(): Promise<void>;
}

interface Deps {
  backends: ModelBackend[];
  /** Sends one stream chunk; false when disconnected (the chunk is lost, the final result is not). */
  sendChunk(t: LeasedTask, seq: number, data: string): boolean;
  onOutcome(o: TaskOutcome): void;
  log: { info(msg: string, extra?: object): void; warn(msg: string, extra?: object): void };
  now(): number;
}

export class InferenceHost {
  private offers: Array<{ offer: ModelOffer; backend: ModelBackend }> = [];
  private readonly running = new Map<string, AbortController>();
  /** One request at a time per model: a queue per model hash. */
  private readonly lanes = new Map<string, Promise<void>>();

  constructor(private readonly deps: Deps) {}

  async load(): Promise<ModelOffer[]> {
    this.offers = [];
    for (const b of this.deps.backends) for (const offer of await b.offers()) this.offers.push({ offer, backend: b });
    return this.offers.map((o) => o.offer);
  }

  get held(): number {
    return this.running.size;
  }

  heldRefs(): Array<{ taskId: string; attempt: number }> {
    return [...this.running.keys()].map((k) => {
      const [taskId, attempt] = k.split('#');
      return { taskId: taskId as string, attempt: Number(attempt) };
    });
  }

  /** Takes an `llm` lease. */
  add(t: LeasedTask): void {
    const key = `${t.taskId}#${t.attempt}`;
    if (this.running.has(key)) return;
    const ac = new AbortController();
    this.running.set(key, ac);
    const prev = this.lanes.get(t.module) ?? Promise.resolve();
    const next = prev.then(() => this.serve(t, ac.signal)).finally(() => this.running.delete(key));
    this.lanes.set(t.module, next.catch(() => undefined));
  }

  /** The coordinator revoked these (the client went away): stop them, report nothing. */
  revoke(taskIds: readonly string[]): number {
    let n = 0;
    for (const [key, ac] of this.running) {
      if (taskIds.includes(key.split('#')[0] as string)) {
        ac.abort(new Error('revoked'));
        this.running.delete(key);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    for (const ac of this.running.values()) ac.abort(new Error('agent stopping'));
    for (const b of this.deps.backends) await b.close?.();
  }

  private async serve(t: LeasedTask, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const startedAt = this.deps.now();
    const input = base64ToBytes(t.input);
    const base = { taskId: t.taskId, attempt: t.attempt, inputHash: sha256HexSync(input), runtime: 'llm', runtimeVersion: 'idlemesh-llm/1' };
    const served = this.offers.find((o) => o.offer.hash === t.module);
    if (!served) {
      this.deps.onOutcome({ ...base, ok: false, fuel: 0, startedAt, endedAt: this.deps.now(), error: { code: 'IM_MODULE_NOT_FOUND', message: `this agent does not serve model ${t.module}` } });
      return;
    }
    let seq = 0;
    try {
      const { kind, request } = JSON.parse(new TextDecoder().decode(input)) as { kind: 'chat' | 'completion' | 'score'; request: Record<string, unknown> };
      if (kind === 'score') {
        // The coordinator's honesty check: how likely this model finds another node's answer, token by token.
        if (!served.backend.score) throw Object.assign(new Error('this backend cannot score answers'), { code: 'IM_VALIDATION' });
        const scored = await served.backend.score({ ...request, model: served.offer.id }, signal);
        if (signal.aborted) return;
        const fuel = scored.tokenLogprobs.length * SIZE_CLASS_WEIGHT[served.offer.sizeClass] * FUEL_PER_TOKEN;
        this.deps.onOutcome({ ...base, ok: true, output: Buffer.from(JSON.stringify(scored)).toString('base64'), fuel, startedAt, endedAt: this.deps.now() });
        return;
      }
      const { response, usage } = await served.backend.run(kind, { ...request, model: served.offer.id }, (chunk) => {
        if (!signal.aborted) this.deps.sendChunk(t, seq++, JSON.stringify(chunk));
      }, signal);
      if (signal.aborted) return;
      const tokens = Math.max(0, usage.prompt_tokens) + Math.max(0, usage.completion_tokens);
      const fuel = tokens * SIZE_CLASS_WEIGHT[served.offer.sizeClass] * FUEL_PER_TOKEN;
      this.deps.onOutcome({ ...base, ok: true, output: Buffer.from(JSON.stringify(response)).toString('base64'), fuel, startedAt, endedAt: this.deps.now() });
    } catch (err) {
      if (signal.aborted) return;
      const message = (err as Error).message ?? String(err);
      this.deps.log.warn(`inference failed: ${message}`, { task: t.taskId });
      // Nothing streamed yet: the coordinator may try another agent (retryable); otherwise it is this request's failure.
      // A request the backend refuses (IM_VALIDATION) is the caller's, wherever it runs; anything else before the first chunk may be retried elsewhere.
      const code = (err as { code?: unknown }).code === 'IM_VALIDATION' ? 'IM_VALIDATION' : seq === 0 ? 'IM_AGENT_ERROR' : 'IM_BAD_REQUEST';
      this.deps.onOutcome({ ...base, ok: false, fuel: 0, startedAt, endedAt: this.deps.now(), error: { code, message: message.slice(0, 2000) } });
    }
  }
}
