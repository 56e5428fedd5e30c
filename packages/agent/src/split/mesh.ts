/**
 * Engine `llamacpp-rpc` in the mesh (`idlemesh agent --split-model x.gguf
 * --split-memory 6GB --split-engine llamacpp-rpc`): the library parts of this
 * folder wired to the coordinator's split groups.
 *
 * - Every member runs one ggml-rpc-server on loopback (startStage) while it
 *   holds a stage. Stages other than the head are reached only through the
 *   tunnel, whose raw bytes travel as `tunnel-open/-data/-close` messages on
 *   the agents' WebSocket connections, relayed by the coordinator between
 *   members of the group. The tunnel is end to end between the two agents'
 *   node keys: the coordinator sees ciphertext. Its allow-list is the group's
 *   stages as the coordinator last announced them (`split-members`).
 * - The head (stage 0) serves the group's requests: an `llm` lease whose
 *   input carries the plan. It runs SplitHead (llama-server --rpc) over its
 *   own RPC server (directly on loopback: it is its own) and a localEndpoint
 *   per other stage whose dial() opens a relayed stream. llama-server is
 *   started at the first request and again when the plan changes; layers go
 *   to the stages in proportion to their planned ranges (`-ts`).
 * - Recovery: a stage agent that disconnects loses its relayed streams, so
 *   llama-server aborts; SplitHead finds the dead stage, and replaceStage
 *   waits for the coordinator to announce the spare that took that stage
 *   index, tunnels to it, and the request is replayed by token ids (head.ts).
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Duplex } from 'node:stream';
import { FUEL_PER_TOKEN, ImError, MAX_TUNNEL_CHUNK_BYTES, SIZE_CLASS_WEIGHT, base64ToBytes, sha256HexSync } from '@idlemesh/protocol';
import type { AgentMessage, LeasedTask, ModelSizeClass, NodeKeyPair, ServerMessage, SplitOffer, StagePlan } from '@idlemesh/protocol';
import type { ChatCompletionRequest, Chunk, CompletionRequest, LlmBackend, ModelInfo, ScoreResult } from '@idlemesh/llm';
import { buildLlamaRpc, type LlamaRpcBinaries } from './build.js';
import { SplitHead, type HeadEvent } from './head.js';
import { localEndpoint, type LocalEndpoint } from './ports.js';
import { startStage, type SplitStage } from './stage.js';
import { LeaseLane, type SplitHostDeps, type SplitInput } from '../split-host.js';

type Assignment = NonNullable<Extract<ServerMessage, { type: 'split-assign' }>['assignment']>;
type MembersMsg = Extract<ServerMessage, { type: 'split-members' }>;
type TunnelOpenMsg = Extract<ServerMessage, { type: 'tunnel-open' }>;
type TunnelDataMsg = Extract<ServerMessage, { type: 'tunnel-data' }>;
type TunnelCloseMsg = Extract<ServerMessage, { type: 'tunnel-close' }>;

/** How long the head waits for the coordinator to name a lost stage's replacement. */
const REPLACE_WAIT_MS = 30_000;
/** How long a relayed stream waits for the stage's RPC server to be up. */
const STAGE_READY_MS = 60_000;

export interface RpcMeshOptions {
  /** The GGUF file; the model id is its base name without .gguf. */
  model: string;
  /** Memory lent to the stage this agent holds, bytes. */
  memoryBytes: number;
  /** Threads of the RPC server and of llama-server (default llama.cpp's). */
  threads?: number;
  /** The llama.cpp build (default: buildLlamaRpc(), cached once per machine). */
  binaries?: LlamaRpcBinaries;
}

type Deps = SplitHostDeps;

/**
 * A byte stream over relayed tunnel messages: what is written goes out as
 * `tunnel-data` (cut to MAX_TUNNEL_CHUNK_BYTES), what the coordinator relays
 * is pushed to the readable side. `tunnel-close` ends the stream both ways
 * (with an error, it is destroyed with that error).
 */
export class RelayedStream extends Duplex {
  private ended = false;

  constructor(readonly id: string, private readonly sendMsg: (m: AgentMessage) => boolean, private readonly onGone: () => void) {
    super();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.ended) return cb(new ImError('IM_TUNNEL_CLOSED', 'the relayed stream is closed'));
    for (let at = 0; at < chunk.length; at += MAX_TUNNEL_CHUNK_BYTES) {
      const data = chunk.subarray(at, at + MAX_TUNNEL_CHUNK_BYTES).toString('base64');
      if (!this.sendMsg({ type: 'tunnel-data', stream: this.id, data })) return cb(new ImError('IM_TUNNEL_CLOSED', 'not connected to the coordinator'));
    }
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sendClose();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.sendClose(err ?? undefined);
    this.onGone();
    cb(err);
  }

  /** Bytes the coordinator relayed from the other end. */
  deliver(data: string): void {
    if (!this.ended) this.push(Buffer.from(data, 'base64'));
  }

  /** The other end (or the coordinator) closed the stream. */
  remoteClosed(error?: { code: string; message: string }): void {
    const first = !this.ended;
    this.ended = true;
    if (error) this.destroy(new ImError(error.code as 'IM_TUNNEL_CLOSED', error.message));
    else if (first) {
      this.push(null);
      this.end();
    }
  }

  private sendClose(err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    const msg: AgentMessage = { type: 'tunnel-close', stream: this.id };
    if (err) msg.error = { code: String((err as { code?: unknown }).code ?? 'IM_TUNNEL_CLOSED').slice(0, 64), message: err.message.slice(0, 2000) };
    this.sendMsg(msg);
  }
}

interface HeadState {
  group: string;
  /** The planned layer ranges, e.g. "0-2,2-4". */
  ranges: string;
  head: SplitHead;
  /** Node id behind each endpoint (index 0: this agent). */
  nodes: string[];
  endpoints: Array<LocalEndpoint | undefined>;
}

export class RpcMeshHost {
  private deps: Deps | undefined;
  private assignment: Assignment | undefined;
  private stage: Promise<SplitStage> | undefined;
  /** The stages of our group as the coordinator last announced them. */
  private members: { group: string; stages: StagePlan[] } | undefined;
  private readonly membersChanged = new Set<() => void>();
  private readonly streams = new Map<string, RelayedStream>();
  private nextStream = 1;
  private headState: HeadState | undefined;
  private readonly lane = new LeaseLane((t, signal) => this.serve(t, signal));

  private constructor(
    private readonly opts: RpcMeshOptions,
    private readonly identity: NodeKeyPair,
    private readonly bins: LlamaRpcBinaries,
    readonly offer: SplitOffer,
  ) {}

  /**
   * Reads the GGUF's header and hashes the file to make the offer, and finds
   * (or builds, once per machine) llama.cpp. Memory per layer: its tensors
   * as stored (llama.cpp keeps the file's types) plus one request's f16 KV
   * cache over the context.
   */
  static async open(opts: RpcMeshOptions, identity: NodeKeyPair): Promise<RpcMeshHost> {
    const llm = await import('@idlemesh/llm');
    const file = await llm.openGgufFile(opts.model);
    const st = await stat(opts.model);
    let offer: SplitOffer;
    try {
      const c = llm.llamaConfigOf(file.header);
      const contextSize = Math.min(c.contextLength, llm.DEFAULT_STAGE_CONTEXT);
      const size = (pred: (name: string) => boolean): number => file.header.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + (t.bytes ?? t.dims.reduce((x, y) => x * y, 4)), 0);
      let layerBytes = 0;
      for (let b = 0; b < c.blocks; b++) layerBytes = Math.max(layerBytes, size((n) => n.startsWith(`blk.${b}.`)) + 2 * contextSize * c.kvHeads * c.headDim * 2);
      const edgeBytes = size((n) => n === 'token_embd.weight' || n === 'output.weight' || n === 'output_norm.weight');
      const parameters = file.header.tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);
      offer = {
        engine: 'llamacpp-rpc', model: basename(opts.model).replace(/\.gguf$/i, ''), hash: await llm.fileSha256(opts.model, st.size, st.mtimeMs), blocks: c.blocks,
        layerBytes, edgeBytes, memoryBytes: opts.memoryBytes, contextSize, sizeClass: llm.sizeClassOf(parameters) as ModelSizeClass,
      };
    } finally {
      await file.close();
    }
    const bins = opts.binaries ?? await buildLlamaRpc();
    return new RpcMeshHost(opts, identity, bins, offer);
  }

  attach(deps: Deps): void {
    this.deps = deps;
  }

  // ---- membership and the stage ---------------------------------------------

  /** The coordinator's split-assign: run the RPC server while this agent holds a stage. */
  assign(a: Assignment | null): void {
    if (a && a.hash !== this.offer.hash) {
      this.deps?.log.warn('split assignment for another model file; ignored', { group: a.group });
      a = null;
    }
    if (a && (a.to - a.from) * this.offer.layerBytes + this.offer.edgeBytes > this.offer.memoryBytes) {
      this.deps?.log.warn(`split assignment of layers ${a.from}-${a.to - 1} needs more than the ${this.offer.memoryBytes} bytes lent; refused`, { group: a.group });
      a = null;
    }
    const before = this.assignment;
    this.assignment = a ?? undefined;
    if (before?.group !== a?.group) this.dropStreams(`split group changed`);
    if (!a) {
      void this.stopHead();
      void this.stopStage();
      return;
    }
    if (a.stage !== 0) void this.stopHead();
    void this.ensureStage();
    this.deps?.log.info(`split stage ${a.stage} of ${a.model}: layers ${a.from}-${a.to - 1} (llamacpp-rpc)`, { group: a.group });
  }

  /** The group's stages: who may tunnel to our RPC server, and where the head finds each stage. */
  onMembers(m: MembersMsg): void {
    this.members = { group: m.group, stages: m.stages };
    for (const f of [...this.membersChanged]) f();
  }

  private isMember(nodeId: string): boolean {
    const m = this.members;
    return !!m && m.group === this.assignment?.group && nodeId !== this.identity.publicKeyHex && m.stages.some((s) => s.nodeId === nodeId);
  }

  private ensureStage(): Promise<SplitStage> {
    if (this.stage) return this.stage;
    const peers = new Set<string>();
    const started = startStage({
      rpcServer: this.bins.rpcServer, identity: this.identity, allow: (id) => this.isMember(id),
      ...(this.opts.threads ? { threads: this.opts.threads } : {}),
      onEvent: (e) => {
        if (e.type === 'rejected') this.deps?.log.warn(`split tunnel refused: ${e.error.message}`);
        else if (e.type === 'accepted' && !peers.has(e.peerId)) {
          // llama.cpp opens several connections per start: the first from each peer is logged.
          peers.add(e.peerId);
          this.deps?.log.info(`split tunnel from ${e.peerId.slice(0, 12)} to the RPC server`);
        }
      },
    });
    this.stage = started;
    started.then(
      (s) => {
        this.deps?.log.info(`split RPC server up on 127.0.0.1:${s.rpcPort} (pid ${s.pid}), reachable only through the tunnel`);
        // A crashed RPC server is started again while this agent still holds a stage.
        void s.exited.then(() => {
          if (this.stage !== started) return;
          this.stage = undefined;
          if (this.assignment) void this.ensureStage();
        });
      },
      (err: Error) => {
        if (this.stage === started) this.stage = undefined;
        this.deps?.log.warn(`split RPC server could not start: ${err.message}`);
      },
    );
    return started;
  }

  private async stopStage(): Promise<void> {
    const s = this.stage;
    this.stage = undefined;
    if (s) await s.then((x) => x.close(), () => undefined);
  }

  // ---- relayed streams ------------------------------------------------------

  private newStream(id: string): RelayedStream {
    const s = new RelayedStream(id, (m) => this.deps?.send(m) ?? false, () => {
      if (this.streams.get(id) === s) this.streams.delete(id);
    });
    s.on('error', () => undefined); // reported to whoever reads it (the tunnel)
    this.streams.set(id, s);
    return s;
  }

  /** A member opened a stream to our stage: the tunnel handshake (and its allow-list) decides. */
  onTunnelOpen(m: TunnelOpenMsg): void {
    const a = this.assignment;
    if (!a || a.group !== m.group || !this.stage || this.streams.has(m.stream)) {
      this.deps?.send({ type: 'tunnel-close', stream: m.stream, error: { code: 'IM_SPLIT_NOT_MEMBER', message: `this agent holds no stage of group ${m.group}` } });
      return;
    }
    const raw = this.newStream(m.stream);
    const ready = this.stage;
    const timer = setTimeout(() => raw.destroy(new ImError('IM_SPLIT_STAGE_FAILED', 'the RPC server did not start in time')), STAGE_READY_MS);
    ready.then((s) => {
      clearTimeout(timer);
      if (!raw.destroyed) s.handle(raw);
    }, (err: Error) => {
      clearTimeout(timer);
      raw.destroy(err);
    });
  }

  onTunnelData(m: TunnelDataMsg): void {
    this.streams.get(m.stream)?.deliver(m.data);
  }

  onTunnelClose(m: TunnelCloseMsg): void {
    this.streams.get(m.stream)?.remoteClosed(m.error);
  }

  /** Opens a relayed stream to a member (the head's dial()). */
  private dial(group: string, to: string): Duplex {
    const id = `o${this.nextStream++}`;
    const s = this.newStream(id);
    if (!this.deps?.send({ type: 'tunnel-open', group, to, stream: id })) s.destroy(new ImError('IM_TUNNEL_CLOSED', 'not connected to the coordinator'));
    return s;
  }

  private dropStreams(why: string): void {
    for (const s of [...this.streams.values()]) s.destroy(new ImError('IM_TUNNEL_CLOSED', why));
    this.streams.clear();
  }

  // ---- head -------------------------------------------------------------------

  owns(t: LeasedTask): boolean {
    return t.runtime === 'llm' && t.module === this.offer.hash;
  }

  /** Takes a split request's lease; requests run one at a time (llama-server runs -np 1). */
  add(t: LeasedTask): void {
    this.lane.add(t);
  }

  heldRefs(): Array<{ taskId: string; attempt: number }> {
    return this.lane.heldRefs();
  }

  revoke(taskIds: readonly string[]): void {
    this.lane.revoke(taskIds);
  }


  /** The coordinator connection dropped: every relayed stream is gone with it. */
  onDisconnect(): void {
    this.dropStreams('the connection to the coordinator closed');
  }

  async close(): Promise<void> {
    this.lane.abortAll('agent stopping');
    await this.stopHead();
    this.dropStreams('agent stopping');
    await this.stopStage();
  }

  private async stopHead(): Promise<void> {
    const h = this.headState;
    this.headState = undefined;
    if (!h) return;
    await h.head.close();
    for (const e of h.endpoints) await e?.close();
  }

  /** The current node holding stage `index`, once it differs from `not` (the lost one), or after the wait anyway. */
  private async stageNode(group: string, index: number, not: string): Promise<string> {
    const current = (): string | undefined => (this.members?.group === group ? this.members.stages[index]?.nodeId : undefined);
    const deadline = Date.now() + REPLACE_WAIT_MS;
    while (current() === not || current() === undefined) {
      if (Date.now() >= deadline) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, deadline - Date.now()));
        function done(): void { clearTimeout(t); resolve(); }
        this.membersChanged.add(done);
        setTimeout(() => this.membersChanged.delete(done), REPLACE_WAIT_MS).unref();
      });
    }
    const n = current();
    if (!n) throw new ImError('IM_SPLIT_STAGE_FAILED', `split group ${group} has no stage ${index} now`);
    return n;
  }

  /** llama-server over the plan's stages, started afresh when the plan changed. */
  private async headFor(plan: SplitInput['split']): Promise<SplitHead> {
    // The same group with the same stages (replacements included: the coordinator's next plan names the spare).
    const h = this.headState;
    const ranges = plan.stages.map((s) => `${s.from}-${s.to}`).join(',');
    if (h && h.group === plan.group && h.ranges === ranges && h.nodes.length === plan.stages.length && h.nodes.every((n, i) => n === plan.stages[i]!.nodeId)) return h.head;
    await this.stopHead();
    const own = await this.ensureStage();
    const state: HeadState = { group: plan.group, ranges, head: undefined as unknown as SplitHead, nodes: plan.stages.map((s) => s.nodeId), endpoints: [undefined] };
    const endpointTo = (nodeId: string): Promise<LocalEndpoint> =>
      localEndpoint({ identity: this.identity, peerId: nodeId, dial: () => this.dial(plan.group, nodeId) });
    try {
      for (let i = 1; i < plan.stages.length; i++) state.endpoints.push(await endpointTo(plan.stages[i]!.nodeId));
      const log = this.deps?.log;
      state.head = await SplitHead.start({
        llamaServer: this.bins.llamaServer, model: this.opts.model,
        stages: [`127.0.0.1:${own.rpcPort}`, ...state.endpoints.slice(1).map((e) => e!.endpoint)],
        tensorSplit: plan.stages.map((s) => s.to - s.from), contextSize: this.offer.contextSize,
        ...(this.opts.threads ? { threads: this.opts.threads } : {}),
        replaceStage: async ({ index }) => {
          if (index === 0) return `127.0.0.1:${(await this.ensureStage()).rpcPort}`;
          const node = await this.stageNode(plan.group, index, state.nodes[index]!);
          await state.endpoints[index]?.close();
          const e = await endpointTo(node);
          state.endpoints[index] = e;
          state.nodes[index] = node;
          log?.info(`split stage ${index} now on ${node.slice(0, 12)}; replaying`, { group: plan.group });
          return e.endpoint;
        },
        onEvent: (e: HeadEvent) => {
          if (e.type === 'failed') log?.warn(`split head failed after ${e.generated} tokens: ${e.error.message.split('\n')[0]}`);
          else if (e.type === 'stage-dead') log?.warn(`split stage ${e.index} is gone`);
          else if (e.type === 'replayed') log?.info(`split head restarted; replayed ${e.promptTokens} prompt + ${e.generated} generated tokens`);
        },
      });
    } catch (err) {
      for (const e of state.endpoints) await e?.close();
      throw err;
    }
    this.headState = state;
    return state.head;
  }

  private async serve(t: LeasedTask, signal: AbortSignal): Promise<void> {
    const deps = this.deps;
    if (!deps || signal.aborted) return;
    const startedAt = Date.now();
    const input = base64ToBytes(t.input);
    const base = { taskId: t.taskId, attempt: t.attempt, inputHash: sha256HexSync(input), runtime: 'llm', runtimeVersion: 'idlemesh-llamacpp-rpc/1' };
    let seq = 0;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(input)) as SplitInput;
      const plan = parsed.split;
      const a = this.assignment;
      if (!plan || !a || a.group !== plan.group || a.stage !== 0) {
        throw new ImError('IM_SPLIT_NOT_MEMBER', 'this agent is not the head of the request\'s split group (the group changed); retry');
      }
      const head = await this.headFor(plan);
      const info: ModelInfo = { id: this.offer.model, hash: this.offer.hash, sizeClass: this.offer.sizeClass, contextSize: this.offer.contextSize, device: 'cpu', backend: 'llama.cpp' };
      const llm = await import('@idlemesh/llm');
      const backend = llm.agentBackend(new RpcHeadBackend(head, info, llm));
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
      deps.log.warn(`split inference failed: ${message.split('\n')[0]}`, { task: t.taskId });
      const code = (err as { code?: unknown }).code === 'IM_VALIDATION' ? 'IM_VALIDATION' : seq === 0 ? 'IM_AGENT_ERROR' : 'IM_BAD_REQUEST';
      deps.onOutcome({ ...base, ok: false, fuel: 0, startedAt, endedAt: Date.now(), error: { code, message: message.slice(0, 2000) } });
    }
  }
}

type Llm = typeof import('@idlemesh/llm');

/**
 * SplitHead as an LlmBackend, so the agent's OpenAI chunking (agentBackend)
 * serves it like any model. Chat: the GGUF's template through llama-server's
 * /apply-template, then a completion. Sampling: greedy at temperature 0,
 * else seeded (`seed`, default 0); generation ends at EOS or max_tokens
 * (stop strings are not applied).
 */
class RpcHeadBackend implements LlmBackend {
  constructor(private readonly head: SplitHead, private readonly info: ModelInfo, private readonly llm: Llm) {}

  async models(): Promise<ModelInfo[]> {
    return [this.info];
  }

  chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    const messages = req.messages.map((m) => ({ role: m.role, content: this.llm.contentText(m.content) }));
    return this.generate(() => this.head.applyTemplate(messages), req, this.llm.chatMaxTokens(req), signal);
  }

  complete(req: CompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    const prompt = this.llm.completionPrompt(req);
    return this.generate(async () => prompt, req, req.max_tokens ?? 16, signal);
  }

  async score(): Promise<ScoreResult> {
    throw new ImError('IM_BAD_REQUEST', 'a llamacpp-rpc split group does not score continuations');
  }

  async close(): Promise<void> {}

  private async *generate(prompt: () => Promise<string>, req: ChatCompletionRequest | CompletionRequest, max: number | null | undefined, signal: AbortSignal | undefined): AsyncGenerator<Chunk> {
    const text = await prompt();
    if (text.length === 0) throw new ImError('IM_VALIDATION', 'the prompt is empty');
    let finish: 'stop' | 'length' = 'length';
    let promptTokens = 0;
    let generated = 0;
    for await (const e of this.head.complete({ prompt: text, maxTokens: Math.max(0, max ?? this.info.contextSize), temperature: req.temperature ?? 1, seed: req.seed ?? 0, ...(signal ? { signal } : {}) })) {
      if (e.type === 'token') {
        generated++;
        yield { type: 'text', text: e.token.text, tokens: [e.token.id] };
      } else {
        finish = e.finish;
        promptTokens = e.promptTokens;
      }
    }
    yield { type: 'finish', reason: finish };
    yield { type: 'usage', usage: { promptTokens, completionTokens: generated } };
  }
}

