/**
 * A whole split group on one machine: N stages, each with its own node key,
 * reached by the head through real tunnels over loopback TCP. What tests and
 * benches run, and the shape the coordinator's group wiring follows across
 * machines (stage: startStage + listen or handle; head: localEndpoint per
 * stage + SplitHead over the endpoints).
 */
import { generateNodeKey, type NodeKeyPair } from '@idlemesh/protocol';
import { localEndpoint, tcpDialer, type LocalEndpoint } from './ports.js';
import { startStage, type SplitStage, type StageEvent } from './stage.js';

export interface LocalStage {
  stage: SplitStage;
  /** The head's loopback endpoint tunnelled to this stage. */
  endpoint: LocalEndpoint;
  identity: NodeKeyPair;
  /** RPC connections the stage's server accepted (from its own log). */
  readonly accepted: number;
  events: StageEvent[];
  close(): Promise<void>;
}

/** Starts one stage that only `head` may reach, and the head's endpoint to it. */
export async function startLocalStage(o: { rpcServer: string; head: NodeKeyPair; threads?: number }): Promise<LocalStage> {
  const identity = await generateNodeKey();
  const events: StageEvent[] = [];
  const stage = await startStage({
    rpcServer: o.rpcServer,
    identity,
    allow: (id) => id === o.head.publicKeyHex,
    listen: { host: '127.0.0.1' },
    ...(o.threads ? { threads: o.threads } : {}),
    onEvent: (e) => events.push(e),
  });
  const endpoint = await localEndpoint({ identity: o.head, peerId: identity.publicKeyHex, dial: tcpDialer('127.0.0.1', stage.tunnelPort as number) });
  return {
    stage,
    endpoint,
    identity,
    get accepted() {
      return stage.acceptedConnections;
    },
    events,
    async close() {
      await endpoint.close();
      await stage.close();
    },
  };
}
