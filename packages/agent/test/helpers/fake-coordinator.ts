import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { AgentMessage, DEFAULT_LIMITS, PROTOCOL_VERSION, bytesToBase64, newJobId, taskId, utf8 } from '@idlemesh/protocol';
import type { LeasedTask, ModuleAbi, ServerMessage } from '@idlemesh/protocol';

type Msg = AgentMessage;

/**
 * Plays the coordinator's side of the wire in-process: serves modules over
 * HTTP and records every agent message; the test drives the conversation.
 */
export class FakeCoordinator {
  readonly fetches: string[] = [];
  readonly received: { conn: number; msg: Msg }[] = [];
  readonly challenges: string[] = [];
  private consumed = new Set<number>();
  private waiters: (() => void)[] = [];
  private sockets: WebSocket[] = [];
  private readonly server = createServer((req, res) => {
    const m = /^\/v1\/modules\/([0-9a-f]{64})\/instrumented$/.exec(req.url ?? '');
    const mod = m?.[1] === undefined ? undefined : this.modules.get(m[1]);
    if (m?.[1] !== undefined) this.fetches.push(m[1]);
    if (mod === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'IM_MODULE_NOT_FOUND', message: 'no', retryable: false } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/wasm', 'x-idlemesh-abi': mod.abi }).end(mod.bytes);
  });
  private readonly wss = new WebSocketServer({ server: this.server, path: '/v1/agent' });

  constructor(readonly modules: Map<string, { bytes: Uint8Array; abi: ModuleAbi }>) {
    this.wss.on('connection', (ws) => {
      const conn = this.sockets.length;
      this.sockets.push(ws);
      const challenge = `c${conn}-${Math.random().toString(16).slice(2)}`;
      this.challenges.push(challenge);
      ws.on('message', (data) => {
        // Every message must pass the protocol's own schema, as on the real coordinator.
        const msg = AgentMessage.parse(JSON.parse(String(data)));
        this.received.push({ conn, msg });
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      });
      ws.send(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, challenge, serverTime: Date.now(), coordinatorId: 'test' } satisfies ServerMessage));
    });
  }

  static async start(modules = new Map<string, { bytes: Uint8Array; abi: ModuleAbi }>()): Promise<FakeCoordinator> {
    const c = new FakeCoordinator(modules);
    await new Promise<void>((resolve) => c.server.listen(0, '127.0.0.1', resolve));
    return c;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get connections(): number {
    return this.sockets.length;
  }

  /** Sends to the newest connection. */
  send(msg: ServerMessage): void {
    const ws = this.sockets.at(-1);
    if (ws === undefined) throw new Error('no agent connected');
    ws.send(JSON.stringify(msg));
  }

  /** Drops the newest connection abruptly. */
  kill(): void {
    this.sockets.at(-1)?.terminate();
  }

  /** The next message of this type not taken before (optionally matching pred). */
  async take<T extends Msg['type']>(type: T, pred: (m: Extract<Msg, { type: T }>) => boolean = () => true, timeoutMs = 5000, conn?: number): Promise<Extract<Msg, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.received.length; i++) {
        const r = this.received[i];
        if (r === undefined || this.consumed.has(i) || r.msg.type !== type || (conn !== undefined && r.conn !== conn)) continue;
        const m = r.msg as Extract<Msg, { type: T }>;
        if (!pred(m)) continue;
        this.consumed.add(i);
        return m;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} message within ${timeoutMs} ms; got ${this.received.map((r) => r.msg.type).join(',')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Messages of this type received after index `from` (taken or not). */
  since<T extends Msg['type']>(type: T, from: number): Extract<Msg, { type: T }>[] {
    return this.received.slice(from).filter((r) => r.msg.type === type).map((r) => r.msg as Extract<Msg, { type: T }>);
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function makeTasks(module: string, inputs: string[], attempt = 1): LeasedTask[] {
  const jobId = newJobId(Date.now());
  return inputs.map((text, index) => ({
    taskId: taskId(jobId, index),
    jobId,
    index,
    attempt,
    runtime: 'wasm',
    module,
    input: bytesToBase64(utf8(text)),
    limits: { ...DEFAULT_LIMITS },
    leaseExpiresAt: Date.now() + 60_000,
  }));
}
