/**
 * A scripted agent for the verification tests: the raw protocol (like the
 * cheater of referee.test.ts) with a real node key, running every task in
 * the real sandbox the agent uses (so an honest answer carries the exact
 * metered fuel), then optionally lying about it before it signs. It connects
 * with an X-Forwarded-For address, which a coordinator started with
 * `--trust-proxy` takes as its IP: the tests place agents in distinct (or
 * the same) /24 prefixes on loopback.
 */
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { signResults } from '@idlemesh/protocol';
import type { Capabilities, LeasedTask, ModuleAbi, ServerMessage, TaskOutcome } from '@idlemesh/protocol';
import { RUNTIME_VERSION, Sandbox } from '@idlemesh/runtime';
import { loadOrCreateKey } from '@idlemesh/agent';
import { connectRawAgent } from './raw-agent.js';

/** msat per EU: high enough that one sha256 task (~15,000 fuel) is worth whole msat, so every execution shows in the settlement. */
export const ASK = 5_000_000;

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 8,
  benchmark: { fuelPerSec: 1 }, agentVersion: 'scripted-test', ask: ASK,
};

/** What the agent reports for a task, given what honestly running it gave. */
export type Behaviour = (task: LeasedTask, honest: TaskOutcome) => TaskOutcome;

export const honest: Behaviour = (_t, o) => o;

/** A made-up output (the same for every liar, so liars agree with each other), with honest-looking fuel. */
export const wrongOutput: Behaviour = (_t, o) => ({ ...o, ok: true, output: Buffer.from('forty-two').toString('base64') });

/** The right output, ten times the effort. */
export const inflatedFuel: Behaviour = (_t, o) => ({ ...o, fuel: o.fuel * 10 });

/**
 * Lies only about tasks of one module: the coordinator's own capacity probes
 * (another module, spot-checked) are answered honestly, so the test counts
 * only the lies it staged.
 */
export function only(moduleHash: string, lie: Behaviour): Behaviour {
  return (t, o) => (t.module === moduleHash ? lie(t, o) : o);
}

export interface ScriptedAgentOptions {
  url: string;
  keyFile: string;
  /** The address the coordinator sees (X-Forwarded-For): its /24 is the agent's prefix. */
  ip: string;
  behave?: Behaviour;
  /** Tasks granted at once. */
  credit?: number;
}

export class ScriptedAgent {
  readonly leases: LeasedTask[] = [];
  readonly acks: Array<{ taskId: string; attempt: number; status: string }> = [];
  readonly revoked: string[] = [];
  private readonly sandbox = new Sandbox({ workers: 1 });
  private readonly modules = new Map<string, Promise<void>>();
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  private constructor(private readonly opts: ScriptedAgentOptions, readonly nodeId: string, private readonly ws: WebSocket,
    private readonly key: Awaited<ReturnType<typeof loadOrCreateKey>>['key']) {}

  static async start(opts: ScriptedAgentOptions): Promise<ScriptedAgent> {
    const { key } = await loadOrCreateKey(opts.keyFile);
    const raw = await connectRawAgent(opts.url, key, CAPS, { 'X-Forwarded-For': opts.ip });
    const ws = raw.ws;
    const agent = new ScriptedAgent(opts, key.publicKeyHex, ws, key);
    const early = raw.detach();
    ws.on('message', (d) => agent.onMessage(JSON.parse(d.toString()) as ServerMessage));
    for (const m of early) agent.onMessage(m);
    ws.send(JSON.stringify({ type: 'heartbeat', state: 'active', running: 0 }));
    ws.send(JSON.stringify({ type: 'credit', n: opts.credit ?? 4 }));
    return agent;
  }

  /** Throws what went wrong in the agent (a failed run, a refused batch). */
  check(): void {
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    this.ws.close();
    await this.chain.catch(() => undefined);
    await this.sandbox.close();
  }

  private onMessage(m: ServerMessage): void {
    if (m.type === 'lease') {
      this.leases.push(...m.tasks);
      this.chain = this.chain.then(() => this.run(m.tasks)).catch((err: unknown) => void (this.failure ??= err as Error));
    } else if (m.type === 'ack') {
      this.acks.push(...m.results.map((r) => ({ taskId: r.taskId, attempt: r.attempt, status: r.status })));
    } else if (m.type === 'revoke') {
      this.revoked.push(...m.taskIds);
      this.ws.send(JSON.stringify({ type: 'credit', n: m.taskIds.length }));
    } else if (m.type === 'error') {
      this.failure ??= new Error(`coordinator refused: ${JSON.stringify(m.error)}`);
    }
  }

  private async module(hash: string): Promise<void> {
    let p = this.modules.get(hash);
    if (!p) {
      p = (async () => {
        const res = await fetch(`${this.opts.url}/v1/modules/${hash}/instrumented`);
        if (!res.ok) throw new Error(`module ${hash}: ${res.status}`);
        await this.sandbox.addModule(hash, new Uint8Array(await res.arrayBuffer()), res.headers.get('x-idlemesh-abi') as ModuleAbi);
      })();
      this.modules.set(hash, p);
    }
    await p;
  }

  private async run(tasks: readonly LeasedTask[]): Promise<void> {
    const outcomes: TaskOutcome[] = [];
    for (const t of tasks) {
      await this.module(t.module);
      const input = Buffer.from(t.input, 'base64');
      const startedAt = Date.now();
      const r = await this.sandbox.run({ moduleHash: t.module, input, limits: t.limits });
      const base = {
        taskId: t.taskId, attempt: t.attempt, startedAt, endedAt: Date.now(), inputHash: createHash('sha256').update(input).digest('hex'),
        runtime: 'wasm', runtimeVersion: RUNTIME_VERSION, fuel: r.fuel,
      };
      const truth: TaskOutcome = r.ok ? { ...base, ok: true, output: Buffer.from(r.output).toString('base64') } : { ...base, ok: false, error: { code: r.error.code, message: r.error.message } };
      outcomes.push((this.opts.behave ?? honest)(t, truth));
    }
    if (outcomes.length === 0) return;
    this.ws.send(JSON.stringify(await signResults(this.key, outcomes, Date.now())));
    this.ws.send(JSON.stringify({ type: 'credit', n: outcomes.length }));
  }
}
