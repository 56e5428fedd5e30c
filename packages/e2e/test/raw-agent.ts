/**
 * A node speaking the agent protocol by hand over a real WebSocket: for tests
 * that must send what a real agent never would (wrong outputs, inflated fuel,
 * racing messages). Connects, answers the challenge with a signed auth, and
 * waits for the welcome; `take` waits for the next message of a type.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, signMessage } from '@idlemesh/protocol';
import type { Capabilities, NodeKeyPair, ServerMessage } from '@idlemesh/protocol';
import { waitUntil } from './helpers.js';

export interface RawAgent {
  ws: WebSocket;
  /** Messages received and not yet taken. */
  inbox: ServerMessage[];
  take<T extends ServerMessage['type']>(type: T, timeoutMs?: number): Promise<Extract<ServerMessage, { type: T }>>;
  send(msg: unknown): void;
  /** Stops collecting messages (the caller listens itself from now on) and returns those not taken. */
  detach(): ServerMessage[];
}

export async function connectRawAgent(url: string, key: NodeKeyPair, capabilities: Capabilities, headers: Record<string, string> = {}): Promise<RawAgent> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/agent`, { headers });
  const inbox: ServerMessage[] = [];
  const collect = (d: WebSocket.RawData): void => void inbox.push(JSON.parse(d.toString()) as ServerMessage);
  ws.on('message', collect);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const agent: RawAgent = {
    ws,
    inbox,
    async take(type, timeoutMs = 10_000) {
      let found: ServerMessage | undefined;
      await waitUntil(() => (found = inbox.find((m) => m.type === type)) !== undefined, timeoutMs, () => `no ${type}: ${JSON.stringify(inbox)}`);
      inbox.splice(inbox.indexOf(found!), 1);
      return found as Extract<ServerMessage, { type: typeof type }>;
    },
    send: (msg) => ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)),
    detach: () => {
      ws.off('message', collect);
      return inbox.splice(0);
    },
  };
  const hello = await agent.take('hello');
  agent.send(await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge: hello.challenge, capabilities }, Date.now()));
  await agent.take('welcome');
  return agent;
}
