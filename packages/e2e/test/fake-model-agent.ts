/**
 * A node serving a model through the real agent protocol, with a scripted
 * "model" instead of llama.cpp: it answers every request with a fixed,
 * deterministic completion. Used to test the coordinator's OpenAI-compatible
 * API — routing, streaming relay, failover, billing — apart from any model.
 */
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { FUEL_PER_TOKEN, PROTOCOL_VERSION, generateNodeKey, sha256HexSync, signMessage, signResults } from '@idlemesh/protocol';
import type { Capabilities, LeasedTask, ModelOffer, NodeKeyPair, ServerMessage, TaskOutcome } from '@idlemesh/protocol';

export interface FakeModelOptions {
  url: string;
  model?: string;
  ask?: number;
  /** Words of the scripted answer. */
  words?: string[];
  /** Drop the connection on the first lease, before any chunk (tests failover). */
  dieOnLease?: boolean;
  /** Claim to serve this model file (its hash), as a node lying about its model would. */
  hash?: string;
}

export class FakeModelAgent {
  readonly leases: LeasedTask[] = [];
  /** Task ids the coordinator took back (a lease sent ahead whose job could not be stored, say). */
  readonly revoked: string[] = [];
  private ws: WebSocket | undefined;
  private key: NodeKeyPair | undefined;

  constructor(private readonly opts: FakeModelOptions) {}

  get nodeId(): string {
    return this.key?.publicKeyHex ?? '';
  }

  static offer(model: string): ModelOffer {
    return { id: model, hash: createHash('sha256').update(model).digest('hex'), sizeClass: 'xs', contextSize: 2048, device: 'cpu', backend: 'openai' };
  }

  async start(): Promise<this> {
    this.key = await generateNodeKey();
    const caps: Capabilities = {
      runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 'fake-model',
      models: [{ ...FakeModelAgent.offer(this.opts.model ?? 'tiny'), ...(this.opts.hash !== undefined ? { hash: this.opts.hash } : {}) }], ...(this.opts.ask !== undefined ? { ask: this.opts.ask } : {}),
    };
    const ws = (this.ws = new WebSocket(`${this.opts.url.replace(/^http/, 'ws')}/v1/agent`));
    const welcomed = new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString()) as ServerMessage;
        if (m.type === 'hello') {
          void signMessage(this.key!, 'auth', { v: PROTOCOL_VERSION, challenge: m.challenge, capabilities: caps }, Date.now()).then((a) => ws.send(JSON.stringify(a)));
        } else if (m.type === 'welcome') {
          ws.send(JSON.stringify({ type: 'heartbeat', state: 'active', running: 0 }));
          resolve();
        } else if (m.type === 'lease') {
          for (const t of m.tasks) void this.serve(t);
        } else if (m.type === 'revoke') {
          this.revoked.push(...m.taskIds);
        }
      });
    });
    await welcomed;
    return this;
  }

  close(): void {
    this.ws?.close();
  }

  private async serve(t: LeasedTask): Promise<void> {
    this.leases.push(t);
    if (this.opts.dieOnLease) {
      this.ws?.terminate();
      return;
    }
    const input = Buffer.from(t.input, 'base64');
    const { kind, request } = JSON.parse(input.toString('utf8')) as { kind: 'chat' | 'completion'; request: { model: string; stream?: boolean; stream_options?: { include_usage?: boolean } } };
    const words = this.opts.words ?? ['Hello', ' from', ' the', ' mesh', '.'];
    const id = `chatcmpl-${t.jobId}`;
    const created = 1_800_000_000;
    const promptTokens = 7;
    const usage = { prompt_tokens: promptTokens, completion_tokens: words.length, total_tokens: promptTokens + words.length };
    const chat = kind === 'chat';
    if (request.stream === true) {
      let seq = 0;
      const send = (obj: unknown): void => this.ws?.send(JSON.stringify({ type: 'stream', taskId: t.taskId, attempt: t.attempt, seq: seq++, data: JSON.stringify(obj) }));
      const object = chat ? 'chat.completion.chunk' : 'text_completion';
      if (chat) send({ id, object, created, model: request.model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
      for (const w of words) send({ id, object, created, model: request.model, choices: [chat ? { index: 0, delta: { content: w }, finish_reason: null } : { index: 0, text: w, finish_reason: null }] });
      send({ id, object, created, model: request.model, choices: [chat ? { index: 0, delta: {}, finish_reason: 'stop' } : { index: 0, text: '', finish_reason: 'stop' }] });
      if (request.stream_options?.include_usage) send({ id, object, created, model: request.model, choices: [], usage });
    }
    const text = words.join('');
    const response = chat
      ? { id, object: 'chat.completion', created, model: request.model, choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage }
      : { id, object: 'text_completion', created, model: request.model, choices: [{ index: 0, text, finish_reason: 'stop' }], usage };
    const outcome: TaskOutcome = {
      taskId: t.taskId, attempt: t.attempt, ok: true, output: Buffer.from(JSON.stringify(response)).toString('base64'),
      fuel: usage.total_tokens * FUEL_PER_TOKEN, startedAt: Date.now(), endedAt: Date.now(),
      inputHash: sha256HexSync(input), runtime: 'llm', runtimeVersion: 'fake-model/1',
    };
    this.ws?.send(JSON.stringify(await signResults(this.key!, [outcome], Date.now())));
  }
}
