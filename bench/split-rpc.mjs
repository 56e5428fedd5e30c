// Split inference, engine llamacpp-rpc: decode tokens/s and per-hop overhead
// for 1 (no split), 2 and 3 stages on the 8-block random llama, every stage
// reached through a real tunnel (X25519 + ChaCha20-Poly1305) over loopback.
// Also 1 stage through the tunnel and 2 stages over plain loopback RPC (no
// tunnel), to separate the RPC cost from the tunnel's.
//
// Usage (after `npx tsc -b packages/agent` and the build, scripts/build-llama-rpc.mjs):
//   node bench/split-rpc.mjs [--tokens 64] [--runs 3] [--threads 1]
// Prints one JSON line. All processes share this machine's cores, so the
// figures are RPC/tunnel overhead, not a speed-up.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateNodeKey } from '../packages/protocol/dist/src/index.js';
import { writeRandomLlama } from '../packages/llm/dist/src/index.js';
import { buildLlamaRpc, exposeLocalPort, localEndpoint, SplitHead, startLocalStage, tcpDialer } from '../packages/agent/dist/src/split/index.js';
import { arg, machine } from './lib.mjs';

/** The 8-block random llama of bench/split-pipeline.mjs (BENCH_MODEL, copied: importing that file would run it), so the engines compare. */
const MODEL = { blocks: 8, hidden: 256, heads: 8, kvHeads: 4, ff: 688, vocab: 1024, ctx: 512, seed: 8, type: 'f16' };
const TOKENS = arg('tokens', 64);
const RUNS = arg('runs', 5);
const THREADS = arg('threads', 1);
const PROMPT = 'the quick brown fox';

const bins = await buildLlamaRpc({ onProgress: (p) => p.type === 'compile' && p.done % 20 === 0 && console.error(`building llama.cpp ${p.done}/${p.total}`) });
const dir = mkdtempSync(join(tmpdir(), 'idlemesh-bench-split-'));
const model = join(dir, 'random-8-block.gguf');
writeFileSync(model, writeRandomLlama(MODEL));
const headKey = await generateNodeKey();

/** Decode ms/token (first token to last) and time to first token: the run with the median ms/token of RUNS (the machine is shared; the median resists its noise). */
async function measure(head) {
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    let first = 0;
    let n = 0;
    let serverMs = 0;
    for await (const e of head.complete({ prompt: PROMPT, maxTokens: TOKENS, ignoreEos: true })) {
      if (e.type === 'done') serverMs = e.serverMs;
      if (e.type !== 'token') continue;
      if (n++ === 0) first = performance.now();
    }
    const end = performance.now();
    const decodeMs = (end - first) / Math.max(1, n - 1);
    // llama-server's own time per token (compute + RPC to the stages); the rest is the per-token HTTP step.
    const run = { tokens: n, ttftMs: +(first - t0).toFixed(1), msPerToken: +decodeMs.toFixed(3), tokensPerSecond: +(1000 / decodeMs).toFixed(1), serverMsPerToken: +(serverMs / n).toFixed(3) };
    runs.push(run);
  }
  runs.sort((a, b) => a.msPerToken - b.msPerToken);
  return runs[Math.floor(runs.length / 2)];
}

async function config(name, { stages, tunnel }) {
  const started = [];
  try {
    let endpoints = [];
    for (let i = 0; i < stages; i++) {
      const s = await startLocalStage({ rpcServer: bins.rpcServer, head: headKey, threads: THREADS });
      started.push(s);
      endpoints.push(tunnel ? s.endpoint.endpoint : `127.0.0.1:${s.stage.rpcPort}`);
    }
    const t0 = performance.now();
    const head = await SplitHead.start({ llamaServer: bins.llamaServer, model, stages: endpoints, tensorSplit: endpoints.map(() => 1), contextSize: MODEL.ctx, threads: THREADS });
    const startSeconds = +((performance.now() - t0) / 1000).toFixed(2);
    try {
      return { name, stages, tunnel, startSeconds, ...(await measure(head)) };
    } finally {
      await head.close();
    }
  } finally {
    for (const s of started) await s.close();
  }
}

/** Round trip of a 64-byte message to an echo server, plain loopback TCP vs through the tunnel (median µs of 2000): the tunnel's own cost per RPC round trip. */
async function echoRoundTrips() {
  const echo = createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); });
  await new Promise((r) => echo.listen(0, '127.0.0.1', r));
  const stageKey = await generateNodeKey();
  const exposed = exposeLocalPort({ identity: stageKey, allow: (id) => id === headKey.publicKeyHex, targetPort: echo.address().port });
  const { port: tunnelPort } = await exposed.listenTcp();
  const ep = await localEndpoint({ identity: headKey, peerId: stageKey.publicKeyHex, dial: tcpDialer('127.0.0.1', tunnelPort) });
  async function rtt(port) {
    const s = connect(port, '127.0.0.1');
    s.setNoDelay(true);
    await new Promise((r) => s.on('connect', r));
    const times = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      const got = new Promise((r) => s.once('data', r));
      s.write(Buffer.alloc(64, 1));
      await got;
      times.push(performance.now() - t0);
    }
    s.destroy();
    times.sort((a, b) => a - b);
    return +(times[1000] * 1000).toFixed(1);
  }
  try {
    return { plainUs: await rtt(echo.address().port), tunnelUs: await rtt(ep.port) };
  } finally {
    await ep.close();
    await exposed.close();
    echo.close();
  }
}

const results = [];
const echoRoundTrip = await echoRoundTrips();
try {
  results.push(await config('unsplit', { stages: 0, tunnel: false }));
  results.push(await config('1 stage, tunnel', { stages: 1, tunnel: true }));
  results.push(await config('2 stages, tunnel', { stages: 2, tunnel: true }));
  results.push(await config('3 stages, tunnel', { stages: 3, tunnel: true }));
  results.push(await config('2 stages, plain RPC', { stages: 2, tunnel: false }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const base = results[0].msPerToken;
for (const r of results) {
  // Hops per token: head → stage 1 → … → stage n → head; each stage adds a network round trip (graph compute + the activations back).
  if (r.stages > 0) {
    r.perHopOverheadMs = +((r.msPerToken - base) / r.stages).toFixed(3);
    r.perHopServerMs = +((r.serverMsPerToken - results[0].serverMsPerToken) / r.stages).toFixed(3);
  }
}
console.log(JSON.stringify({ bench: 'split-rpc', engine: 'llamacpp-rpc', model: MODEL, tokens: TOKENS, runs: RUNS, threadsPerProcess: THREADS, machine: { ...machine(), loadavg1m: +loadavg()[0].toFixed(1) }, buildSeconds: bins.buildSeconds, echoRoundTrip, results }));
