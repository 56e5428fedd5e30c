/**
 * Plain request/response exchanges (everything but event streams) on
 * node:http with kept-alive connections when the client runs in Node: a
 * fraction of fetch's (undici's) CPU per request, which matters to a program
 * that submits many small jobs. Browsers, and callers that pass their own
 * fetch, go through fetch.
 */
import type * as NodeHttp from 'node:http';
import type * as NodeHttps from 'node:https';

export interface TextResponse {
  status: number;
  text: string;
}

export interface TextRequest {
  method: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  signal: AbortSignal;
}

export type SendText = (url: string, req: TextRequest) => Promise<TextResponse>;

// process.getBuiltinModule is synchronous and invisible to bundlers (Node ≥ 20.16); absent in browsers.
const builtin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;

let shared: SendText | undefined;

/** The node:http transport, or undefined outside Node. One pool of kept-alive connections per process. */
export function nodeTransport(): SendText | undefined {
  if (shared !== undefined || builtin === undefined) return shared;
  const http = builtin('node:http') as typeof NodeHttp | undefined;
  const https = builtin('node:https') as typeof NodeHttps | undefined;
  if (!http || !https) return undefined;
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  shared = (url, req) => new Promise<TextResponse>((resolve, reject) => {
    if (req.signal.aborted) {
      reject(req.signal.reason);
      return;
    }
    const tls = url.startsWith('https:');
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(typeof req.body === 'string' ? Buffer.byteLength(req.body) : req.body.byteLength);
    const r = (tls ? https.request : http.request)(url, { method: req.method, headers, agent: tls ? agents.https : agents.http }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('the response was cut off')));
    });
    const onAbort = (): void => {
      r.destroy(req.signal.reason instanceof Error ? req.signal.reason : new Error('aborted'));
    };
    req.signal.addEventListener('abort', onAbort, { once: true });
    r.on('close', () => req.signal.removeEventListener('abort', onAbort));
    r.on('error', (err) => reject(req.signal.aborted ? req.signal.reason : err));
    r.end(req.body);
  });
  return shared;
}
