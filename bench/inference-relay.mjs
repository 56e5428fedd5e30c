// What the mesh adds to LLM serving: time to first token, per-chunk relay
// overhead and tokens/s through the coordinator (official `openai` client →
// coordinator → agent `--backend openai=` → backend) against the same backend
// asked directly, request by request, alternating.
//
// Backends:
//   fast   an OpenAI-shaped load generator (NOT a model) in its own process,
//          as a real backend is (llama-server, vLLM, Ollama): it streams
//          --chunks chunks at --rate, so what is measured is the relay, not
//          inference (≥ 500 chunks/s required)
//   gguf   `idlemesh serve-model` on a generated 8-block random-weight GGUF
//          (node-llama-cpp, CPU): a real backend, slower than the relay
//
//   --backends fast,gguf   which to run (default both)
//   --reps N               requests per path and backend (default 30)
//   --chunks N             chunks per fast request (default 500)
//   --rate N               fast backend's chunks/s (default 1000, as a quick
//                          local model; 0 = as fast as the socket takes them,
//                          which measures the relay's own ceiling)
//   --tokens N             max_tokens per gguf request (default 64)
//   --fast-in-process      run the load generator inside the client's process
//                          (the direct path then crosses no process at all)
//   --backend-cpu N        pin the backend to CPU N and everything else (client,
//                          coordinator, agent) to the other CPUs, as if the model
//                          ran on its own machine: on a 2-core box a CPU-bound
//                          model otherwise loses cycles to the relay, and the
//                          throughput ratio measures that contention
// Prints one JSON line per backend and a summary line; targets: TTFT ≤ +5 ms,
// mesh tokens/s ≥ 0.97 × direct.
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { ROOT, arg, freePort, machine, mesh, percentile } from './lib.mjs';

const REPS = arg('reps', 30);
const CHUNKS = arg('chunks', 500);
const RATE = arg('rate', 1000);
const TOKENS = arg('tokens', 64);
const BACKEND_CPU = arg('backend-cpu', -1);
/** The backend's command line, behind `taskset` when it has a CPU of its own. */
const pinned = (argv) => (BACKEND_CPU >= 0 ? ['taskset', ['-c', String(BACKEND_CPU), ...argv]] : [argv[0], argv.slice(1)]);
if (BACKEND_CPU >= 0 && !process.argv.includes('--serve-fast')) {
  const rest = Array.from({ length: availableParallelism() }, (_, i) => i).filter((i) => i !== BACKEND_CPU);
  if (rest.length === 0) throw new Error('--backend-cpu needs at least 2 CPUs');
  execFileSync('taskset', ['-a', '-pc', rest.join(','), String(process.pid)], { stdio: 'ignore' });
}
const bIdx = process.argv.indexOf('--backends');
const BACKENDS = bIdx >= 0 ? process.argv[bIdx + 1].split(',') : ['fast', 'gguf'];
const log = (...a) => console.error(`[inference-relay ${new Date().toISOString().slice(11, 19)}]`, ...a);
const r2 = (x) => Math.round(x * 100) / 100;

/** The load generator in a child process (this file with --serve-fast): what a direct client talks to is another process. */
async function fastBackendProcess() {
  const child = spawn(...pinned([process.execPath, fileURLToPath(import.meta.url), '--serve-fast', '--chunks', String(CHUNKS), '--rate', String(RATE)]), { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; const m = /^listening (\S+)$/m.exec(out); if (m) resolve(m[1]); });
    child.on('exit', (code) => reject(new Error(`load generator exited ${code}`)));
  });
  return { url, model: 'fast-echo', maxTokens: CHUNKS, stop: async () => { child.kill('SIGTERM'); await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r))); } };
}

/** The load generator: an OpenAI-shaped streaming server with one model, `fast-echo`. */
async function fastBackend() {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fast-echo', object: 'model', created: 0, owned_by: 'bench' }] }));
      return;
    }
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const q = JSON.parse(body);
      const n = Math.min(q.max_tokens ?? CHUNKS, 100_000);
      const base = { id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 0, model: 'fast-echo' };
      const usage = { prompt_tokens: 5, completion_tokens: n, total_tokens: n + 5 };
      if (!q.stream) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion', created: 0, model: 'fast-echo', choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(n) }, finish_reason: 'length' }], usage }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`);
      const chunk = `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: 'x' }, finish_reason: null }] })}\n\n`;
      const finish = () => {
        res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'length' }] })}\n\n`);
        if (q.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`);
        res.end('data: [DONE]\n\n');
      };
      if (RATE <= 0) {
        for (let i = 0; i < n; i++) res.write(chunk);
        finish();
        return;
      }
      // Paced: chunk i is due at i / RATE seconds; every due chunk goes out, then a wait for the next.
      const t0 = performance.now();
      let sent = 0;
      const tick = () => {
        const due = Math.min(n, Math.floor(((performance.now() - t0) * RATE) / 1000) + 1);
        while (sent < due) { res.write(chunk); sent++; }
        if (sent >= n) finish();
        else setTimeout(tick, Math.max(0, (sent * 1000) / RATE - (performance.now() - t0)));
      };
      tick();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/v1`, model: 'fast-echo', maxTokens: CHUNKS, stop: () => new Promise((r) => server.close(r)) };
}

/** `idlemesh serve-model` on a generated random-weight GGUF (8 blocks, hidden 256). */
async function ggufBackend() {
  const { writeRandomLlama } = await import('../packages/llm/dist/src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'idlemesh-bench-gguf-'));
  const file = join(dir, 'bench-8block.gguf');
  writeFileSync(file, writeRandomLlama({ blocks: 8, hidden: 256, heads: 8, kvHeads: 4, ff: 512, vocab: 512, ctx: 512, seed: 1, type: 'f16' }));
  const port = await freePort();
  const child = spawn(...pinned([process.execPath, join(ROOT, 'packages/cli/bin/idlemesh.js'), 'serve-model', file, '--port', String(port), '--gpu', 'off', '--json']), { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; if (out.includes('"ready"')) resolve(); });
    child.on('exit', (code) => reject(new Error(`serve-model exited ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/v1`, model: 'bench-8block', maxTokens: TOKENS,
    stop: async () => { child.kill('SIGTERM'); await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r))); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** One streamed request: time to the first content chunk, to the last, total time, content chunks. */
async function once(client, model, maxTokens) {
  const t0 = performance.now();
  let first = NaN;
  let last = NaN;
  let chunks = 0;
  const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Count to a thousand' }], max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } });
  for await (const c of stream) {
    if (c.choices[0]?.delta?.content) {
      last = performance.now() - t0;
      if (chunks === 0) first = last;
      chunks++;
    }
  }
  return { ttft: first, decode: last - first, total: performance.now() - t0, chunks };
}

function summarize(samples) {
  const ttft = samples.map((s) => s.ttft).sort((a, b) => a - b);
  const total = samples.reduce((a, s) => a + s.total, 0);
  const chunks = samples.reduce((a, s) => a + s.chunks, 0);
  // After the first chunk: the decode rate, without the time to first token (reported apart).
  const decode = samples.reduce((a, s) => a + s.decode, 0);
  const later = chunks - samples.length;
  return { ttftP50: r2(percentile(ttft, 50)), ttftP99: r2(percentile(ttft, 99)), chunksPerSec: Math.round((chunks / total) * 1000), decodeChunksPerSec: Math.round((later / decode) * 1000), chunksPerRequest: Math.round(chunks / samples.length), msPerRequest: r2(total / samples.length) };
}

if (process.argv.includes('--serve-fast')) {
  const b = await fastBackend();
  process.stdout.write(`listening ${b.url}\n`);
  process.on('SIGTERM', () => void b.stop().then(() => process.exit(0)));
  await new Promise(() => undefined);
}

const IN_PROCESS = process.argv.includes('--fast-in-process');
const rows = [];
for (const name of BACKENDS) {
  const backend = name === 'fast' ? await (IN_PROCESS ? fastBackend() : fastBackendProcess()) : await ggufBackend();
  const m = await mesh({ agents: 1, agentArgs: ['--backend', `openai=${backend.url}`] });
  try {
    const direct = new OpenAI({ baseURL: backend.url, apiKey: 'bench', maxRetries: 0, timeout: 120_000 });
    const through = new OpenAI({ baseURL: `${m.url}/v1`, apiKey: 'bench', maxRetries: 0, timeout: 120_000 });
    for (let i = 0; i < 100; i++) {
      if ((await through.models.list()).data.some((x) => x.id === backend.model)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Warm both paths, then alternate so load drifts hit both alike.
    for (let i = 0; i < 3; i++) { await once(direct, backend.model, backend.maxTokens); await once(through, backend.model, backend.maxTokens); }
    const d = [];
    const t = [];
    for (let i = 0; i < REPS; i++) {
      d.push(await once(direct, backend.model, backend.maxTokens));
      t.push(await once(through, backend.model, backend.maxTokens));
      if ((i + 1) % 10 === 0) log(`${name}: ${i + 1}/${REPS}`);
    }
    const sd = summarize(d);
    const st = summarize(t);
    const row = {
      bench: 'inference-relay', backend: name, label: name === 'fast' ? `OpenAI-shaped load generator (not a model), ${RATE > 0 ? `${RATE} chunks/s` : 'unpaced'}, ${IN_PROCESS ? 'in the client\'s process' : 'own process'}` : 'idlemesh serve-model, 8-block random GGUF, CPU',
      reps: REPS, backendCpu: BACKEND_CPU >= 0 ? BACKEND_CPU : null, direct: sd, mesh: st,
      ttftAddedMs: r2(st.ttftP50 - sd.ttftP50),
      relayMsPerChunk: r2((st.msPerRequest - sd.msPerRequest) / Math.max(1, st.chunksPerRequest)),
      throughputRatio: r2(st.chunksPerSec / sd.chunksPerSec),
      decodeRatio: r2(st.decodeChunksPerSec / sd.decodeChunksPerSec),
      machine: machine(),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    await m.stop();
    await backend.stop();
  }
}
console.log(JSON.stringify({ bench: 'inference-relay-summary', targets: { ttftAddedMs: 5, throughputRatio: 0.97 }, rows: rows.map((r) => ({ backend: r.backend, ttftAddedMs: r.ttftAddedMs, relayMsPerChunk: r.relayMsPerChunk, throughputRatio: r.throughputRatio, decodeRatio: r.decodeRatio, directChunksPerSec: r.direct.chunksPerSec })) }));
