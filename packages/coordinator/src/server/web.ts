/**
 * Serves the web app (packages/web/dist) at `/`: files by path, every other
 * client route (`/contribute`, `/jobs/…`) as index.html so the app's router
 * takes over. Hashed assets are cached for a year, index.html never. A
 * missing build answers a short page that says how to build it. API paths
 * keep their JSON 404s; nothing outside the dist folder is ever read.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ImError } from '@idlemesh/protocol';

/** packages/coordinator/dist/src/server → packages/web/dist */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../../../web/dist/', import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Paths that belong to the API (or the machinery around it), never to the app. */
const API_PREFIXES = ['/v1/', '/v2/', '/healthz', '/metrics', '/openapi'];

/**
 * The app runs WebAssembly (the browser node), talks to this origin only
 * (fetch, server-sent events, the agent WebSocket) and draws on canvases.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>idlemesh</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5">
<h1>idlemesh</h1>
<p>The coordinator is running, but the web app is not built.</p>
<p>Build it with <code>npm run build -w @idlemesh/web</code> (or <code>npm run build</code>), then reload this page.</p>
<p>The API works without it: <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>
`;

interface Cached { mtimeMs: number; size: number; body: Buffer }

export function registerWeb(app: FastifyInstance, opts: { dir?: string } = {}): void {
  const root = resolve(opts.dir ?? DEFAULT_WEB_DIR);
  const cache = new Map<string, Cached>();

  /** A file under root, or undefined (missing, a directory, or outside root). */
  const load = async (rel: string): Promise<Cached | undefined> => {
    const path = resolve(root, `.${rel}`);
    if (path !== root && !path.startsWith(root + sep)) return undefined;
    try {
      const st = await stat(path);
      if (!st.isFile()) return undefined;
      const hit = cache.get(path);
      if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit;
      const entry = { mtimeMs: st.mtimeMs, size: st.size, body: await readFile(path) };
      if (st.size <= 4 * 1024 * 1024) cache.set(path, entry);
      return entry;
    } catch {
      return undefined;
    }
  };

  const sendIndex = async (reply: FastifyReply): Promise<FastifyReply> => {
    const index = await load('/index.html');
    reply.header('content-type', TYPES['.html']).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    if (index === undefined) return reply.code(200).send(NOT_BUILT);
    return reply.header('content-security-policy', CSP).send(index.body);
  };

  const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const raw = req.url.split('?')[0] ?? '/';
    let path: string;
    try {
      path = decodeURIComponent(raw);
    } catch {
      throw new ImError('IM_BAD_REQUEST', `not a valid path: ${raw.slice(0, 200)}`);
    }
    if (API_PREFIXES.some((p) => path === p.replace(/\/$/, '') || path.startsWith(p))) {
      throw new ImError('IM_ROUTE_NOT_FOUND', `no route ${req.method} ${raw}`);
    }
    // Traversal, NUL bytes and Windows separators never reach the file system.
    if (path.includes('\0') || path.includes('\\') || path.split('/').some((seg) => seg === '..')) {
      throw new ImError('IM_NOT_FOUND', 'no such file');
    }
    const ext = extname(path);
    if (path === '/' || ext === '' || path === '/index.html') return sendIndex(reply);
    const file = await load(path);
    if (file === undefined) {
      // A missing asset is a 404, not the app: a stale page must not run index.html as a script.
      throw new ImError('IM_NOT_FOUND', `no file ${path}`);
    }
    // Vite names built assets by content hash: they never change under one name.
    const immutable = path.startsWith('/assets/');
    return reply
      .header('content-type', TYPES[ext] ?? 'application/octet-stream')
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'public, max-age=300')
      .header('x-content-type-options', 'nosniff')
      .send(file.body);
  };

  app.get('/', serve);
  app.get('/*', serve);
}
