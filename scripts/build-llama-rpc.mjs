#!/usr/bin/env node
// Builds llama.cpp's ggml-rpc-server and llama-server (split inference, engine
// llamacpp-rpc) once, from node-llama-cpp's bundled source, into the idlemesh
// cache. A second run returns at once. The logic is buildLlamaRpc() in
// packages/agent/src/split/build.ts, which the agent calls itself; this is its CLI.
import { existsSync } from 'node:fs';

const HELP = `usage: node scripts/build-llama-rpc.mjs [--json] [--jobs N] [--cache-dir DIR]

Builds ggml-rpc-server and llama-server (GGML_RPC=ON, only those targets) from
node_modules/node-llama-cpp/llama/gitRelease.bundle into
\${IDLEMESH_CACHE_DIR:-\$XDG_CACHE_HOME/idlemesh or ~/.cache/idlemesh}/llama-rpc/<bundle sha256 prefix>/.
Needs git, cmake and a C++ compiler (ninja if present). Idempotent; a lock
file keeps concurrent builds apart.

  --json          print one JSON line {dir, rpcServer, llamaServer, cached, buildSeconds, seconds}
  --jobs N        parallel compile jobs (default 2)
  --cache-dir D   cache root instead of the default
  --help          this text`;

const args = process.argv.slice(2);
const opts = { json: false, jobs: 2, cacheDir: undefined };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--help' || a === '-h') { console.log(HELP); process.exit(0); }
  else if (a === '--json') opts.json = true;
  else if (a === '--jobs') opts.jobs = Number(args[++i]);
  else if (a === '--cache-dir') opts.cacheDir = args[++i];
  else { console.error(`unknown argument ${a}\n\n${HELP}`); process.exit(2); }
}
if (!Number.isInteger(opts.jobs) || opts.jobs < 1) { console.error('--jobs takes a positive integer'); process.exit(2); }

const lib = new URL('../packages/agent/dist/src/split/build.js', import.meta.url);
if (!existsSync(lib)) { console.error('packages/agent is not built: run npx tsc -b packages/agent first'); process.exit(1); }
const { buildLlamaRpc } = await import(lib.href);

const tty = process.stderr.isTTY;
let lastPct = -1;
let pendingLine = false; // a \r progress line waiting for its newline
function progress(p) {
  if (p.type === 'compile') {
    const pct = Math.floor((100 * p.done) / p.total);
    const line = `building llama.cpp rpc: ${p.done}/${p.total} (${pct}%, ${Math.round(p.elapsedSeconds)} s)`;
    if (tty) { process.stderr.write(`\r${line}`); pendingLine = true; }
    else if (pct >= lastPct + 10 || p.done === p.total) { console.error(line); lastPct = pct; }
    return;
  }
  if (pendingLine) { process.stderr.write('\n'); pendingLine = false; }
  if (p.type === 'hash') console.error(`llama.cpp source: ${p.bundle}`);
  else if (p.type === 'wait-lock') console.error(`waiting for another build (pid ${p.holderPid}, ${p.lock})`);
  else if (p.type === 'clone') console.error(`cloning into ${p.dir}`);
  else if (p.type === 'configure') console.error('configuring (cmake)');
  else if (p.type === 'done') console.error(`built in ${p.seconds} s`);
}

const t0 = Date.now();
try {
  const r = await buildLlamaRpc({ jobs: opts.jobs, onProgress: progress, ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}) });
  const seconds = Math.round((Date.now() - t0) / 100) / 10;
  if (opts.json) console.log(JSON.stringify({ ...r, seconds }));
  else console.log(`${r.cached ? 'cached' : 'built'}: ${r.dir} (build time ${r.buildSeconds} s; this run ${seconds} s)\n  ${r.rpcServer}\n  ${r.llamaServer}`);
} catch (err) {
  console.error(`error ${err.code ?? ''}: ${err.message}`);
  process.exit(1);
}
