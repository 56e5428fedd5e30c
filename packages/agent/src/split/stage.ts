/**
 * A split stage: llama.cpp's RPC server on loopback, reachable only through
 * the tunnel.
 *
 * The RPC server has no authentication and runs any graph it is sent, so it
 * is always started with `-H 127.0.0.1` (not configurable) and the only way
 * in is an authenticated tunnel stream from a group member. It serves one
 * client at a time (the head's llama-server); the head pushes the weights
 * of the layers this stage holds when it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ImError, type NodeKeyPair } from '@idlemesh/protocol';
import { ownChild } from './children.js';
import { exposeLocalPort, type TunnelEvent } from './ports.js';

/** What llama.cpp's RPC HELLO answers. */
export interface RpcVersion {
  major: number;
  minor: number;
  patch: number;
}

// RPC wire (ggml-rpc.cpp): request = cmd u8 ‖ size u64le ‖ body; response = size u64le ‖ body.
const RPC_CMD_HELLO = 14;
const RPC_CONN_CAPS_SIZE = 24;

/**
 * Asks an RPC server (directly, or through a tunnel endpoint) for its
 * version. Rejects when the connection is refused or closed, or there is no
 * answer in time. The server serves one client at a time, so a busy server
 * does not answer: probe when its head is not connected.
 */
export function probeRpc(host: string, port: number, timeoutMs = 3000): Promise<RpcVersion> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, host);
    const chunks: Buffer[] = [];
    const done = (err: Error | undefined, v?: RpcVersion): void => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(v as RpcVersion);
    };
    const timer = setTimeout(() => done(new ImError('IM_SPLIT_STAGE_FAILED', `RPC server at ${host}:${port} did not answer HELLO within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => {
      const req = Buffer.alloc(1 + 8 + RPC_CONN_CAPS_SIZE);
      req[0] = RPC_CMD_HELLO;
      req.writeBigUInt64LE(BigInt(RPC_CONN_CAPS_SIZE), 1);
      sock.write(req);
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (all.length >= 8 + 3) done(undefined, { major: all[8] as number, minor: all[9] as number, patch: all[10] as number });
    });
    sock.on('error', (err) => done(new ImError('IM_SPLIT_STAGE_FAILED', `RPC server at ${host}:${port}: ${err.message}`, { cause: err })));
    sock.on('close', () => done(new ImError('IM_SPLIT_STAGE_FAILED', `RPC server at ${host}:${port} closed the connection`)));
  });
}

/** A free loopback port (bound then released: a race the caller retries on). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Keeps the last lines a child printed, for error messages. */
export function tailOf(child: ChildProcess, lines = 30): () => string {
  const tail: string[] = [];
  const keep = (d: Buffer): void => {
    for (const l of d.toString('utf8').split('\n')) if (l.trim()) tail.push(l);
    while (tail.length > lines) tail.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail.join('\n');
}

export type StageEvent = TunnelEvent | { type: 'rpc-exit'; code: number | null; signal: NodeJS.Signals | null };

export interface StageOptions {
  /** Path of ggml-rpc-server (buildLlamaRpc().rpcServer). */
  rpcServer: string;
  identity: NodeKeyPair;
  /** The group's members (in practice the head): who may open tunnels here. */
  allow: (peerId: string) => boolean;
  /** CPU threads for the RPC server; default llama.cpp's (half the cores). */
  threads?: number;
  /**
   * A directory for the RPC server's tensor cache (`-c`): large tensors are
   * then sent by hash after the first load, so a restarted head does not
   * push gigabytes again. Off when undefined.
   */
  tensorCacheDir?: string;
  /** Also accept tunnels over TCP on this host:port (default: no listener; use handle()). */
  listen?: { host?: string; port?: number };
  startTimeoutMs?: number;
  onEvent?: (e: StageEvent) => void;
}

export interface SplitStage {
  readonly nodeId: string;
  /** The tunnel's TCP port, when `listen` was given. */
  readonly tunnelPort: number | undefined;
  /** The RPC server's loopback port (never reachable from outside this machine). */
  readonly rpcPort: number;
  readonly pid: number;
  /** Client connections the RPC server reports accepting (its own "Accepted client connection" lines). */
  readonly acceptedConnections: number;
  /** Resolves when the RPC server exits (killed, crashed, or closed). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Serves one raw stream from a peer (a relayed WebSocket, a TCP socket). */
  handle(raw: Duplex): void;
  close(): Promise<void>;
}

/** Starts the RPC server on loopback and exposes it through the tunnel. */
export async function startStage(opts: StageOptions): Promise<SplitStage> {
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (let attempt = 0; ; attempt++) {
    const rpcPort = await freeLoopbackPort();
    const args = ['-H', '127.0.0.1', '-p', String(rpcPort)];
    if (opts.threads) args.push('-t', String(opts.threads));
    const env = { ...process.env };
    if (opts.tensorCacheDir) {
      await mkdir(opts.tensorCacheDir, { recursive: true });
      args.push('-c');
      env.LLAMA_CACHE = opts.tensorCacheDir;
    }
    const child = spawn(opts.rpcServer, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    ownChild(child);
    const tail = tailOf(child);
    // Counted from the server's own log, so a test can tell whether anything reached it.
    let accepted = 0;
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      accepted += lines.filter((l) => l.includes('Accepted client connection')).length;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: -1, signal: null }));
    });
    let gone = false;
    void exited.then((r) => {
      gone = true;
      opts.onEvent?.({ type: 'rpc-exit', ...r });
    });
    // Ready when it answers HELLO (which also checks the protocol speaks).
    let ready = false;
    while (!gone && Date.now() < deadline) {
      try {
        await probeRpc('127.0.0.1', rpcPort, 2000);
        ready = true;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!ready) {
      child.kill('SIGKILL');
      await exited;
      if (gone && attempt < 2 && /bind|address already in use/i.test(tail())) continue; // lost the port race
      throw new ImError('IM_SPLIT_STAGE_FAILED', `ggml-rpc-server did not start on 127.0.0.1:${rpcPort}:\n${tail()}`);
    }
    // The server logs the probe's connection after answering it: counted before the stage is handed out, so
    // `acceptedConnections` only grows with connections made from now on.
    for (const until = Date.now() + 2000; accepted < 1 && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
    const exposed = exposeLocalPort({ identity: opts.identity, allow: opts.allow, targetPort: rpcPort, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
    const tunnelPort = opts.listen ? (await exposed.listenTcp(opts.listen.port ?? 0, opts.listen.host ?? '127.0.0.1')).port : undefined;
    return {
      nodeId: opts.identity.publicKeyHex,
      tunnelPort,
      rpcPort,
      pid: child.pid as number,
      get acceptedConnections() {
        return accepted;
      },
      exited,
      handle: (raw) => exposed.handle(raw),
      async close() {
        await exposed.close();
        if (!gone) child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      },
    };
  }
}

/** Where the stage keeps its tensor cache by default, under the idlemesh cache root. */
export function defaultTensorCacheDir(root: string): string {
  return join(root, 'llama-rpc-tensors');
}
