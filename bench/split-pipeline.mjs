// The `pipeline` engine's speed: tokens/s for 1, 2 and 3 stages on an 8-block
// random-weight llama (made here, deterministic), in one process and with
// each stage in its own process over loopback TCP, plus per-hop overhead.
// Prints a one-line JSON summary last (docs/split-inference.md quotes it).
//
// Usage (after `npx tsc -b packages/llm`): node bench/split-pipeline.mjs
//   --tokens 64       tokens generated per run (after a 32-token prompt)
//   --reps 3          runs per configuration; the fastest counts
//   --write-fixture p  also write the bench model to p (for other engines' benches)
// Internal: --serve FROM TO runs one stage behind a TCP port (printed on stdout).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, loadavg, platform } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  createKernel, decodeFrame, encodeFrame, ggufFromBytes, LocalStageTransport, PipelineSession, Rng, splitLayers, Stage, writeRandomLlama,
} from '../packages/llm/dist/src/index.js';

/** The 8-block bench model: ~6 M parameters, f16. */
export const BENCH_MODEL = { blocks: 8, hidden: 256, heads: 8, kvHeads: 4, ff: 688, vocab: 1024, ctx: 512, seed: 8, type: 'f16' };
const PROMPT_TOKENS = 32;

const argv = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};

// --- the TCP seam: u32 length | u8 op (1 forward, 2 reset, 3 echo) | frame; answer u32 length | u8 status (0 ok, 1 error) | frame or message
function writeMessage(socket, tag, payload) {
  const head = Buffer.alloc(5);
  head.writeUInt32LE(payload.length + 1, 0);
  head.writeUInt8(tag, 4);
  socket.write(Buffer.concat([head, payload]));
}

function onMessages(socket, handler) {
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 4) {
      const len = buf.readUInt32LE(0);
      if (buf.length < 4 + len) break;
      const tag = buf.readUInt8(4);
      const payload = new Uint8Array(buf.subarray(5, 4 + len));
      buf = buf.subarray(4 + len);
      handler(tag, payload);
    }
  });
}

class TcpStageTransport {
  constructor(socket) {
    this.socket = socket;
    this.waiting = [];
    onMessages(socket, (status, payload) => {
      const w = this.waiting.shift();
      if (status === 0) w.resolve(payload);
      else w.reject(new Error(Buffer.from(payload).toString()));
    });
    socket.on('close', () => { for (const w of this.waiting.splice(0)) w.reject(new Error('stage connection closed')); });
  }
  static open(port) {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, noDelay: true }, () => resolve(new TcpStageTransport(s)));
      s.once('error', reject);
    });
  }
  call(op, payload) {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      writeMessage(this.socket, op, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    });
  }
  forward(frame) { return this.call(1, frame); }
  async reset() { await this.call(2, new Uint8Array(0)); }
  async close() { this.socket.destroy(); }
}

async function serveStage(from, to) {
  const stage = await Stage.load(ggufFromBytes(writeRandomLlama(BENCH_MODEL)), { from, to });
  const server = createServer({ noDelay: true }, (socket) => {
    onMessages(socket, (op, payload) => {
      try {
        if (op === 2) { stage.reset(); writeMessage(socket, 0, Buffer.alloc(0)); return; }
        if (op === 3) { writeMessage(socket, 0, Buffer.from(payload)); return; }
        const out = stage.handle(payload);
        writeMessage(socket, 0, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
      } catch (err) {
        writeMessage(socket, 1, Buffer.from(String(err?.message ?? err)));
      }
    });
    socket.on('close', () => server.close());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
}

function startStageProcess(from, to) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', String(from), String(to)], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) }));
    child.once('exit', (code) => reject(new Error(`stage process exited ${code}`)));
  });
}

/** Best of `reps` runs (tokens/s of the fastest, and the fastest prompt): this machine is shared, and the fastest run is the one least disturbed. */
async function best(session, prompt, tokens, reps = Number(opt('reps', '3'))) {
  let b;
  for (let i = 0; i < reps; i++) {
    const r = await run(session, prompt, tokens);
    if (!b || r.decodeMsPerToken < b.decodeMsPerToken) b = { ...r, prefillMs: Math.min(r.prefillMs, b?.prefillMs ?? Infinity) };
    else b.prefillMs = Math.min(b.prefillMs, r.prefillMs);
  }
  return b;
}

async function run(session, prompt, tokens) {
  const out = [];
  const t0 = performance.now();
  let tFirst = 0;
  for await (const t of session.generate(prompt, { maxTokens: tokens })) {
    if (out.length === 0) tFirst = performance.now();
    out.push(t);
  }
  const tEnd = performance.now();
  return { out, prefillMs: tFirst - t0, decodeMsPerToken: (tEnd - tFirst) / (tokens - 1) };
}

async function main() {
  const tokens = Number(opt('tokens', '64'));
  const bytes = writeRandomLlama(BENCH_MODEL);
  const fixture = opt('write-fixture');
  if (fixture) writeFileSync(fixture, bytes);
  const src = ggufFromBytes(bytes);
  const rng = new Rng(1);
  const prompt = [1, ...Array.from({ length: PROMPT_TOKENS - 1 }, () => 259 + (rng.u32() % (BENCH_MODEL.vocab - 259)))];
  const parameters = src.header.tensors.reduce((a, t) => a + t.dims.reduce((x, y) => x * y, 1), 0);

  // Kernel throughput on the largest block matrix (ffn 688×256).
  const kernels = {};
  for (const kind of ['wasm-simd', 'js']) {
    const k = createKernel(kind);
    const w = Float32Array.from({ length: 688 * 256 }, () => rng.next() - 0.5);
    const x = Float32Array.from({ length: 256 }, () => rng.next() - 0.5);
    const m = k.upload(w, 688, 256);
    const out = new Float32Array(688);
    const reps = kind === 'js' ? 300 : 3000;
    for (let i = 0; i < 50; i++) k.matmul(m, x, 1, out);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) k.matmul(m, x, 1, out);
    kernels[kind] = +((2 * 688 * 256 * reps) / ((performance.now() - t0) / 1000) / 1e9).toFixed(2);
  }

  // Frame encode + decode for one token's hidden state (f16 on the wire).
  const hidden = Float32Array.from({ length: BENCH_MODEL.hidden }, () => rng.next() - 0.5);
  const reps = 20000;
  let t0 = performance.now();
  for (let i = 0; i < reps; i++) decodeFrame(encodeFrame({ kind: 'hidden', position: i, count: 1, width: BENCH_MODEL.hidden, hidden, allLogits: false }));
  const codecUs = ((performance.now() - t0) * 1000) / reps;

  const results = [];
  let reference;
  let echoMs;
  for (const n of [1, 2, 3]) {
    const ranges = splitLayers(BENCH_MODEL.blocks, n);
    const local = new PipelineSession({ stages: await Promise.all(ranges.map(async (r) => new LocalStageTransport(await Stage.load(src, r)))) });
    await run(local, prompt, 8); // warm-up
    const inproc = await best(local, prompt, tokens);

    const procs = await Promise.all(ranges.map((r) => startStageProcess(r.from, r.to)));
    const transports = await Promise.all(procs.map((p) => TcpStageTransport.open(p.port)));
    const remote = new PipelineSession({ stages: transports });
    await run(remote, prompt, 8);
    const tcp = await best(remote, prompt, tokens);
    // Transfer alone: a hidden-state frame echoed by the first stage process, no compute.
    if (n === 1) {
      const frame = encodeFrame({ kind: 'hidden', position: 0, count: 1, width: BENCH_MODEL.hidden, hidden, allLogits: false });
      for (let i = 0; i < 100; i++) await transports[0].call(3, frame);
      const t = performance.now();
      for (let i = 0; i < 1000; i++) await transports[0].call(3, frame);
      echoMs = (performance.now() - t) / 1000;
    }
    for (const t of transports) await t.close();
    await Promise.all(procs.map((p) => new Promise((r) => { if (p.child.exitCode !== null) r(); else { p.child.once('exit', r); p.child.kill(); } })));

    reference ??= inproc.out;
    const identical = [inproc.out, tcp.out].every((o) => o.length === reference.length && o.every((t, i) => t === reference[i]));
    const row = {
      stages: n,
      layers: ranges.map((r) => `${r.from}-${r.to - 1}`).join(','),
      inprocTokPerS: +(1000 / inproc.decodeMsPerToken).toFixed(1),
      tcpTokPerS: +(1000 / tcp.decodeMsPerToken).toFixed(1),
      inprocPrefillTokPerS: +((PROMPT_TOKENS * 1000) / inproc.prefillMs).toFixed(0),
      inprocMsPerToken: +inproc.decodeMsPerToken.toFixed(3),
      tcpMsPerToken: +tcp.decodeMsPerToken.toFixed(3),
      // The session drives every stage (a star): n round trips per token.
      roundTripsPerToken: n,
      identical,
    };
    results.push(row);
    console.error(JSON.stringify(row));
  }

  const jsStage = await Stage.load(src, { from: 0, to: BENCH_MODEL.blocks, kernel: 'js' });
  const js = await best(new PipelineSession({ stages: [new LocalStageTransport(jsStage)] }), prompt, Math.min(tokens, 32));

  console.log(JSON.stringify({
    bench: 'split-pipeline',
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, platform: platform(), node: process.version, loadavg1m: +loadavg()[0].toFixed(1) },
    model: { ...BENCH_MODEL, parameters },
    kernelGflops: kernels,
    // Per hop, for one token's hidden state: encode + decode (in-process the bytes are handed over, no copy); loopback TCP round trip between processes.
    perHop: { frameCodecUs: +codecUs.toFixed(2), tcpRoundTripMs: +echoMs.toFixed(3), frameBytes: 24 + BENCH_MODEL.hidden * 2 },
    promptTokens: PROMPT_TOKENS,
    generatedTokens: tokens,
    results,
    jsKernelOneStageTokPerS: +(1000 / js.decodeMsPerToken).toFixed(1),
  }));
}

if (argv[0] === '--serve') await serveStage(Number(argv[1]), Number(argv[2]));
else await main();
