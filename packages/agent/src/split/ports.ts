/**
 * Ports through the tunnel.
 *
 * - exposeLocalPort (stage side): every authenticated tunnel stream is piped
 *   to 127.0.0.1:<port>, the RPC server. The loopback connection is opened
 *   only after the handshake, so a peer without the right key never gets a
 *   byte to the RPC server.
 * - localEndpoint (head side): listens on 127.0.0.1:<random>; each
 *   connection there opens a tunnel to the stage. llama-server's `--rpc`
 *   names these endpoints and never knows there is a tunnel.
 *
 * Transport is a seam: `handle(raw)` takes any duplex byte stream and
 * `dial()` returns one, so the coordinator relay (a WebSocket) plugs in
 * where TCP is used here. One tunnel per connection (llama.cpp opens one
 * connection per RPC server), no multiplexing.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NodeKeyPair } from '@idlemesh/protocol';
import { tunnelAccept, tunnelConnect, type SecureStream } from './tunnel.js';

export type TunnelEvent =
  | { type: 'accepted'; peerId: string }
  | { type: 'rejected'; error: Error }
  | { type: 'opened'; peerId: string }
  | { type: 'dial-failed'; error: Error };

/**
 * Pipes two streams both ways. Ends are passed on (half-close), so each side
 * flushes before closing; an error on either side destroys both.
 */
export function bridge(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  const kill = (err?: Error): void => {
    a.destroy(err);
    b.destroy(err);
  };
  a.on('error', () => kill());
  b.on('error', () => kill());
  // A side that closed without ending its readable half (reset, killed peer) takes the other down.
  a.on('close', () => {
    if (!a.readableEnded) b.destroy();
  });
  b.on('close', () => {
    if (!b.readableEnded) a.destroy();
  });
}

function trackSockets(server: { on(ev: 'connection', fn: (s: Socket) => void): unknown }): Set<Duplex> {
  const live = new Set<Duplex>();
  server.on('connection', (s) => {
    live.add(s);
    s.on('close', () => live.delete(s));
  });
  return live;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server, live: Set<Duplex>): Promise<void> {
  for (const s of live) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface ExposedPortOptions {
  identity: NodeKeyPair;
  /** The group's members: who may open tunnels to this port. */
  allow: (peerId: string) => boolean;
  /** The loopback port behind the tunnel (the RPC server). */
  targetPort: number;
  handshakeTimeoutMs?: number;
  onEvent?: (e: TunnelEvent) => void;
}

export interface ExposedPort {
  /** Serves one incoming raw stream (a TCP socket, a relayed WebSocket). */
  handle(raw: Duplex): void;
  /** Also accepts TCP connections on host:port (default 127.0.0.1, a random port). */
  listenTcp(port?: number, host?: string): Promise<{ host: string; port: number }>;
  /** Closes the listener and every stream. */
  close(): Promise<void>;
}

export function exposeLocalPort(opts: ExposedPortOptions): ExposedPort {
  const live = new Set<Duplex>();
  let server: Server | undefined;
  const handle = (raw: Duplex): void => {
    live.add(raw);
    raw.on('close', () => live.delete(raw));
    raw.on('error', () => undefined); // reported through the handshake or the bridge
    tunnelAccept(raw, { identity: opts.identity, allow: opts.allow, ...(opts.handshakeTimeoutMs ? { timeoutMs: opts.handshakeTimeoutMs } : {}) }).then(
      (secure) => {
        opts.onEvent?.({ type: 'accepted', peerId: secure.peerId });
        const target = connect(opts.targetPort, '127.0.0.1');
        target.setNoDelay(true);
        live.add(target);
        target.on('close', () => live.delete(target));
        bridge(secure, target);
      },
      (error: Error) => opts.onEvent?.({ type: 'rejected', error }),
    );
  };
  return {
    handle,
    async listenTcp(port = 0, host = '127.0.0.1') {
      server = createServer((s) => {
        s.setNoDelay(true);
        handle(s);
      });
      const a = await listen(server, port, host);
      return { host: a.address, port: a.port };
    },
    async close() {
      for (const s of live) s.destroy();
      if (server) await closeServer(server, new Set());
    },
  };
}

export interface LocalEndpointOptions {
  identity: NodeKeyPair;
  /** The stage's node id. */
  peerId: string;
  /** Opens a raw stream to the stage (tcpDialer for direct TCP). */
  dial: () => Duplex | Promise<Duplex>;
  handshakeTimeoutMs?: number;
  onEvent?: (e: TunnelEvent) => void;
}

export interface LocalEndpoint {
  /** `127.0.0.1:<port>`, what llama-server's --rpc takes. */
  readonly endpoint: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Opens a tunnel to the stage for each connection made to a fresh loopback port. */
export async function localEndpoint(opts: LocalEndpointOptions): Promise<LocalEndpoint> {
  const server = createServer({ pauseOnConnect: true }, (local) => {
    local.setNoDelay(true);
    local.on('error', () => undefined);
    void (async (): Promise<SecureStream> => {
      const raw = await opts.dial();
      return tunnelConnect(raw, { identity: opts.identity, expectedPeer: opts.peerId, ...(opts.handshakeTimeoutMs ? { timeoutMs: opts.handshakeTimeoutMs } : {}) });
    })().then(
      (secure) => {
        opts.onEvent?.({ type: 'opened', peerId: secure.peerId });
        if (local.destroyed) {
          secure.destroy();
          return;
        }
        bridge(local, secure);
        local.resume();
      },
      (error: Error) => {
        opts.onEvent?.({ type: 'dial-failed', error });
        local.destroy();
      },
    );
  });
  const live = trackSockets(server);
  const a = await listen(server, 0, '127.0.0.1');
  return { endpoint: `127.0.0.1:${a.port}`, port: a.port, close: () => closeServer(server, live) };
}

/** Dials host:port over TCP (no Nagle delay: RPC is request/response). */
export function tcpDialer(host: string, port: number): () => Duplex {
  return () => {
    const s = connect(port, host);
    s.setNoDelay(true);
    return s;
  };
}
