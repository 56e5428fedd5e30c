/**
 * A loopback HTTP server that plays a coordinator with canned responses, for
 * testing code that uses the SDK (and the SDK and CLI themselves).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JobView, TaskResultView } from '@idlemesh/protocol';

export interface Recorded { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }
export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

/** A loopback HTTP server serving canned responses; records every request. */
export async function fakeServer(handler: Handler): Promise<{ url: string; requests: Recorded[]; close(): Promise<void> }> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(rec);
      Promise.resolve(handler(rec, res)).catch((err: unknown) => {
        res.statusCode = 599;
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export const JOB_ID = 'job_0123456789abcdefghij';
export const HASH = 'a'.repeat(64);

export function job(over: Partial<JobView> = {}): JobView {
  return {
    id: JOB_ID,
    name: 'demo',
    state: 'running',
    module: HASH,
    runtime: 'wasm',
    limits: { fuel: 1_000_000, memoryMb: 64, timeoutMs: 10_000, outputBytes: 1 << 20 },
    bid: 0,
    maxAttempts: 3,
    retryBackoffMs: 0,
    priority: 1,
    requirements: {},
    counts: { total: 5, queued: 5, leased: 0, succeeded: 0, failed: 0, cancelled: 0 },
    fuelUsed: 0,
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_000,
    ...over,
  };
}

export function result(index: number): TaskResultView {
  return { index, state: 'succeeded', output: Buffer.from(`out${index}`).toString('base64'), fuel: 10 + index, attempts: 1 };
}
