/**
 * HTTP for talking to an upstream model server, on node:http with kept-alive
 * connections. Node's fetch (undici) costs about half a millisecond more to
 * the first byte on loopback, and a web-stream adapter over the response
 * about as much again to the first chunk; the first chunk is what
 * time-to-first-token is made of when an agent relays a local server
 * (bench/inference-relay.mjs).
 */
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';

const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

export interface HttpInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal | null;
}

/** A response whose body is read as it arrives, from Node's own stream (no web-stream adapter in between). */
export interface StreamedResponse {
  status: number;
  ok: boolean;
  headers: Headers;
  body: AsyncIterable<Uint8Array>;
  /** The whole body as text (for an error answer). */
  text(): Promise<string>;
  /** Stops reading: the upstream sees the connection go (an unfinished generation stops). */
  cancel(): void;
}

/** A request whose answer streams; rejects like fetch (an Error whose `cause` carries the socket's code), or with the signal's reason when aborted. */
export function httpStream(url: string, init: HttpInit): Promise<StreamedResponse> {
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
      resolve({
        status, ok: status >= 200 && status <= 299, headers: out, body: res,
        text: async () => {
          const chunks: Buffer[] = [];
          for await (const c of res) chunks.push(c as Buffer);
          return Buffer.concat(chunks).toString('utf8');
        },
        cancel: () => {
          if (!res.complete) res.destroy();
        },
      });
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

/** A request answered as a WHATWG Response (the body read whole first: for JSON answers). */
export async function httpFetch(url: string, init: HttpInit): Promise<Response> {
  const res = await httpStream(url, init);
  const text = await res.text();
  // Responses without a body (204, 304) cannot carry one.
  const empty = res.status === 204 || res.status === 304;
  return new Response(empty ? null : text, { status: res.status, headers: res.headers });
}
