/**
 * HTTP for talking to an upstream model server, on node:http with kept-alive
 * connections, returning a WHATWG Response like fetch does. Node's fetch
 * (undici) costs about half a millisecond more to the first byte on loopback,
 * and the first byte is what time-to-first-token is made of when an agent
 * relays a local server (bench/inference-relay.mjs).
 */
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';

const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

export interface HttpInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
}

/** A request; rejects like fetch (an Error whose `cause` carries the socket's code), or with the signal's reason when aborted. */
export function httpFetch(url: string, init: HttpInit): Promise<Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const tls = u.protocol === 'https:';
    if (!tls && u.protocol !== 'http:') {
      reject(new Error(`unsupported protocol ${u.protocol}`));
      return;
    }
    const signal = init.signal ?? undefined;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const headers = { ...init.headers, ...(init.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(init.body)) } : {}) };
    const req = (tls ? httpsRequest : httpRequest)(u, { method: init.method, headers, agent: tls ? agents.https : agents.http }, (res) => {
      const status = res.statusCode ?? 502;
      const out = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (Array.isArray(v)) for (const x of v) out.append(k, x);
        else if (v !== undefined) out.set(k, v);
      }
      // Responses without a body (204, 304) cannot carry a stream.
      const empty = status === 204 || status === 304;
      if (empty) res.resume();
      resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: out }));
    });
    const onAbort = (): void => {
      req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('close', () => signal?.removeEventListener('abort', onAbort));
    req.on('error', (err) => reject(signal?.aborted ? signal.reason : Object.assign(new Error(`request to ${u.host} failed: ${err.message}`), { cause: err })));
    req.end(init.body);
  });
}
