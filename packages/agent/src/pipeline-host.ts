/**
 * Split inference on an agent, engine `pipeline` (`--split-model x.gguf
 * --split-memory 6GB`): this agent offers to hold some layers of a model too
 * large for one machine, in a group the coordinator forms.
 *
 * - Stage: the coordinator's `split-assign` names the layers [from, to) this
 *   agent holds; they are loaded once (Stage.load reads only those tensors)
 *   and kept until the next assignment. Frames the head sends through the
 *   coordinator (`stage-frame`) run on a KV cache kept per request id
 *   (Stage.fork shares the weights), freed on `end`, after IDLE_MS unused,
 *   or when more than MAX_CACHES are open (least recently used first).
 * - Head (stage 0): a split request is an ordinary `llm` lease whose input
 *   carries the group's plan. The head tokenizes (the GGUF holds the
 *   vocabulary), runs a PipelineSession whose first stage is its own and the
 *   others relayed over this agent's connection, streams OpenAI chunks as
 *   any model does, and reports tokens × the model's weight as fuel. A
 *   stage that is lost answers IM_SPLIT_STAGE_GONE; the session then sends
 *   the same stage index again, which the coordinator has given to a spare,
 *   and replays that stage's inputs into it (exactly the same tokens follow).
 *
 * @idlemesh/llm (the engine) is loaded only when this is used, so an agent
 * without --split-model never loads it.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { FUEL_PER_TOKEN, ImError, SIZE_CLASS_WEIGHT, base64ToBytes, sha256HexSync } from '@idlemesh/protocol';
import type { AgentMessage, LeasedTask, ModelSizeClass, ServerMessage, SplitEngine, SplitOffer } from '@idlemesh/protocol';
import type { GgufFile, PipelineSession, Stage, StageTransport, SpmTokenizer } from '@idlemesh/llm';
import { LeaseLane, type SplitHostDeps, type SplitInput } from './split-host.js';

type Llm = typeof import('@idlemesh/llm');
type Assignment = NonNullable<Extract<ServerMessage, { type: 'split-assign' }>['assignment']>;
type FrameMsg = Extract<ServerMessage, { type: 'stage-frame' }>;
type ReplyMsg = Extract<ServerMessage, { type: 'stage-reply' }>;

/** A stage keeps at most this many request caches… */
const MAX_CACHES = 8;
/** …and frees one unused this long. */
const IDLE_MS = 10 * 60_000;
/** A frame the head sent that is not answered within this fails (the coordinator answers sooner when it knows). */
const FRAME_TIMEOUT_MS = 90_000;
/** Replacements of lost stages one request may go through. */
const MAX_RECOVERIES = 4;

export interface SplitModelOptions {
  /** The GGUF file; the model id is its base name without .gguf (as --model). */
  model: string;
  /** Memory lent to the stage this agent holds, bytes. */
  memoryBytes: number;
  /** `pipeline` (this file, the default) or `llamacpp-rpc` (split/mesh.ts). */
  engine?: SplitEngine;
}

type Deps = SplitHostDeps;

export class PipelineHost {
  private deps: Deps | undefined;
  private assignment: Assignment | undefined;
  private loading: Promise<Stage> | undefined;
  private loadedRange = '';
  private readonly caches = new Map<string, { stage: Stage; used: number }>();
  private readonly waiting = new Map<number, { resolve(b: Uint8Array): void; reject(e: unknown): void; timer: NodeJS.Timeout }>();
  private seq = 1;
  private readonly lane = new LeaseLane((t, signal) => this.serve(t, signal));

  private constructor(
    private readonly llm: Llm,
    private readonly file: GgufFile,
    private readonly tokenizer: SpmTokenizer,
    readonly offer: SplitOffer,
  ) {}

  /** Reads the GGUF's header (and hashes the file) to make the offer; loads no weights yet. */
  static async open(opts: SplitModelOptions): Promise<PipelineHost> {
    const llm = await import('@idlemesh/llm');
    const file = await llm.openGgufFile(opts.model);
    const st = await stat(opts.model);
    try {
      const c = llm.llamaConfigOf(file.header);
      const contextSize = Math.min(c.contextLength, llm.DEFAULT_STAGE_CONTEXT);
      const tokenizer = llm.SpmTokenizer.fromGguf(file.header);
      const elements = (name: string): number => file.header.tensors.find((t) => t.name === name)?.dims.reduce((a, b) => a * b, 1) ?? 0;
      // Weights are held as f32 (4 bytes each), plus one request's KV cache (K and V, f32).
      let layerBytes = 0;
      for (let b = 0; b < c.blocks; b++) {
        const weights = file.header.tensors.filter((t) => t.name.startsWith(`blk.${b}.`)).reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
        layerBytes = Math.max(layerBytes, weights * 4 + 2 * contextSize * c.kvHeads * c.headDim * 4);
      }
      const edgeBytes = (elements('token_embd.weight') + elements('output.weight') + elements('output_norm.weight')) * 4 + contextSize * c.ropeDims * 4;
      const parameters = file.header.tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
      const offer: SplitOffer = {
        engine: 'pipeline', model: basename(opts.model).replace(/\.gguf$/i, ''), hash: await llm.fileSha256(opts.model, st.size, st.mtimeMs), blocks: c.blocks,
        layerBytes, edgeBytes, memoryBytes: opts.memoryBytes, contextSize, sizeClass: llm.sizeClassOf(parameters) as ModelSizeClass,
      };
      return new PipelineHost(llm, file, tokenizer, offer);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  attach(deps: Deps): void {
    this.deps = deps;
  }

  // ---- stage ------------------------------------------------------------------

  /** The coordinator's split-assign: load the new range once (the same range keeps its weights and caches). */
  assign(a: Assignment | null): void {
    this.assignment = a ?? undefined;
    if (!a) {
      this.loading = undefined;
      this.loadedRange = '';
      this.caches.clear();
      return;
    }
    const range = `${a.hash}:${a.from}-${a.to}`;
    if (range === this.loadedRange && this.loading) return;
    if (a.hash !== this.offer.hash) {
      this.deps?.log.warn('split assignment for another model file; ignored', { group: a.group });
      this.assignment = undefined;
      return;
    }
    const need = (a.to - a.from) * this.offer.layerBytes + this.offer.edgeBytes;
    if (need > this.offer.memoryBytes) {
      // The coordinator's planner never does this; an agent still does not take more than its owner lent.
      this.deps?.log.warn(`split assignment of layers ${a.from}-${a.to - 1} needs ${need} bytes, more than the ${this.offer.memoryBytes} lent; refused`, { group: a.group });
      this.assignment = undefined;
      this.loading = undefined;
      this.loadedRange = '';
      return;
    }
    this.caches.clear();
    this.loadedRange = range;
    const started = Date.now();
    this.loading = this.llm.Stage.load(this.file, { from: a.from, to: a.to, contextSize: this.offer.contextSize });
    this.loading.then(
      () => this.deps?.log.info(`split stage ${a.stage} loaded: layers ${a.from}-${a.to - 1} of ${a.model} in ${Date.now() - started} ms`, { group: a.group }),
      (err: unknown) => this.deps?.log.warn(`split stage could not load: ${(err as Error).message}`, { group: a.group }),
    );
  }

  /** A frame from the head, relayed by the coordinator: answered with stage-reply. */
  async onFrame(m: FrameMsg): Promise<void> {
    const reply = (r: Omit<Extract<AgentMessage, { type: 'stage-reply' }>, 'type' | 'relay'>): void => {
      this.deps?.send({ type: 'stage-reply', relay: m.relay, ...r });
    };
    try {
      const a = this.assignment;
      if (!a || a.group !== m.group || a.stage !== m.stage || !this.loading) throw new ImError('IM_SPLIT_NOT_MEMBER', `this agent does not hold stage ${m.stage} of group ${m.group}`);
      const stage = await this.loading;
      const now = Date.now();
      for (const [id, c] of this.caches) if (now - c.used > IDLE_MS) this.caches.delete(id);
      if (m.op === 'end') {
        this.caches.delete(m.request);
        reply({ ok: true });
        return;
      }
      let cache = this.caches.get(m.request);
      if (!cache) {
        if (this.caches.size >= MAX_CACHES) {
          const oldest = [...this.caches.entries()].sort((x, y) => x[1].used - y[1].used)[0];
          if (oldest) this.caches.delete(oldest[0]);
        }
        cache = { stage: stage.fork(), used: now };
        this.caches.set(m.request, cache);
      }
      cache.used = now;
      if (m.op === 'reset') {
        cache.stage.reset();
        reply({ ok: true });
        return;
      }
      const out = cache.stage.handle(base64ToBytes(m.data ?? ''));
      reply({ ok: true, data: Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('base64') });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      reply({ ok: false, error: { code: typeof code === 'string' ? code.slice(0, 64) : 'IM_AGENT_ERROR', message: String((err as Error).message ?? err).slice(0, 2000) } });
    }
  }

  // ---- head -------------------------------------------------------------------

  /** Whether a lease is a split request for this agent's model. */
  owns(t: LeasedTask): boolean {
    return t.runtime === 'llm' && t.module === this.offer.hash;
  }

  /** Takes a split request's lease; requests run one at a time (the head's CPU is the bottleneck anyway). */
  add(t: LeasedTask): void {
    this.lane.add(t);
  }

  heldRefs(): Array<{ taskId: string; attempt: number }> {
    return this.lane.heldRefs();
  }

  revoke(taskIds: readonly string[]): void {
    this.lane.revoke(taskIds);
  }


  /** A stage's answer to one of our frames. */
  onReply(m: ReplyMsg): void {
    const w = this.waiting.get(m.seq);
    if (!w) return;
    this.waiting.delete(m.seq);
    clearTimeout(w.timer);
    if (m.ok) w.resolve(base64ToBytes(m.data ?? ''));
    else w.reject(new ImError((m.error?.code ?? 'IM_AGENT_ERROR') as 'IM_AGENT_ERROR', m.error?.message ?? 'the stage failed'));
  }

  /** The coordinator connection dropped: frames in flight will not be answered. */
  onDisconnect(): void {
    for (const [seq, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new ImError('IM_SPLIT_STAGE_GONE', 'the connection to the coordinator closed'));
      this.waiting.delete(seq);
    }
  }

  async close(): Promise<void> {
    this.lane.abortAll('agent stopping');
    this.onDisconnect();
    this.caches.clear();
    await this.file.close();
  }

  /** Sends one frame to a stage of the group through the coordinator. */
  private call(group: string, stage: number, request: string, op: 'forward' | 'reset' | 'end', frame?: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const seq = this.seq++;
      const msg: AgentMessage = { type: 'stage-frame', group, stage, seq, request, op };
      if (frame) msg.data = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64');
      const timer = setTimeout(() => {
        this.waiting.delete(seq);
        reject(new ImError('IM_SPLIT_STAGE_GONE', `stage ${stage} did not answer within ${FRAME_TIMEOUT_MS / 1000} s`));
      }, FRAME_TIMEOUT_MS);
      this.waiting.set(seq, { resolve, reject, timer });
      if (!this.deps?.send(msg)) {
        this.waiting.delete(seq);
        clearTimeout(timer);
        reject(new ImError('IM_SPLIT_STAGE_GONE', 'not connected to the coordinator'));
      }
    });
  }

  private async serve(t: LeasedTask, signal: AbortSignal): Promise<void> {
    const deps = this.deps;
    if (!deps || signal.aborted) return;
    const startedAt = Date.now();
    const input = base64ToBytes(t.input);
    const base = { taskId: t.taskId, attempt: t.attempt, inputHash: sha256HexSync(input), runtime: 'llm', runtimeVersion: 'idlemesh-pipeline/1' };
    const request = `${t.taskId}#${t.attempt}`;
    let seq = 0;
    let session: PipelineSession | undefined;
    let plan: SplitInput['split'] | undefined;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(input)) as SplitInput;
      plan = parsed.split;
      const a = this.assignment;
      if (!plan || plan.stages[0]?.nodeId === undefined || !a || a.group !== plan.group || a.stage !== 0 || !this.loading) {
        throw new ImError('IM_SPLIT_NOT_MEMBER', 'this agent is not the head of the request\'s split group (the group changed); retry');
      }
      const own = (await this.loading).fork();
      const group = plan.group;
      const remote = (i: number): StageTransport => ({
        forward: (frame) => this.call(group, i, request, 'forward', frame),
        reset: async () => { await this.call(group, i, request, 'reset'); },
      });
      const stages: StageTransport[] = plan.stages.map((_, i) => (i === 0 ? new this.llm.LocalStageTransport(own) : remote(i)));
      session = new this.llm.PipelineSession({
        stages,
        // The coordinator has given the lost stage's layers to a spare under the same index: address it again.
        replace: async (i) => remote(i),
        maxRecoveries: MAX_RECOVERIES,
        onEvent: (e) => deps.log.info(e.type === 'stage-failed' ? `split stage ${e.stage} failed: ${(e.error as Error).message}` : `split stage ${e.stage} replaced; replayed ${e.replayedRows} rows`, { task: t.taskId }),
      });
      const info = { id: this.offer.model, hash: this.offer.hash, sizeClass: this.offer.sizeClass, contextSize: this.offer.contextSize, device: 'cpu' as const, backend: 'llama.cpp' as const };
      const backend = this.llm.agentBackend(new this.llm.PipelineBackend({ info, tokenizer: this.tokenizer, session }));
      const { response, usage } = await backend.run(parsed.kind, { ...parsed.request, model: this.offer.model }, (chunk) => {
        if (!signal.aborted) deps.sendChunk(t, seq++, JSON.stringify(chunk));
      }, signal);
      if (signal.aborted) return;
      const tokens = Math.max(0, usage.prompt_tokens) + Math.max(0, usage.completion_tokens);
      const fuel = tokens * SIZE_CLASS_WEIGHT[this.offer.sizeClass] * FUEL_PER_TOKEN;
      deps.onOutcome({ ...base, ok: true, output: Buffer.from(JSON.stringify(response)).toString('base64'), fuel, startedAt, endedAt: Date.now() });
    } catch (err) {
      if (signal.aborted) return;
      const message = String((err as Error).message ?? err);
      deps.log.warn(`split inference failed: ${message}`, { task: t.taskId });
      const code = (err as { code?: unknown }).code === 'IM_VALIDATION' ? 'IM_VALIDATION' : seq === 0 ? 'IM_AGENT_ERROR' : 'IM_BAD_REQUEST';
      deps.onOutcome({ ...base, ok: false, fuel: 0, startedAt, endedAt: Date.now(), error: { code, message: message.slice(0, 2000) } });
    } finally {
      // Free the request's caches on the other stages (best effort: an idle cache is freed anyway).
      if (plan) for (let i = 1; i < plan.stages.length; i++) this.call(plan.group, i, request, 'end').catch(() => undefined);
    }
  }
}

