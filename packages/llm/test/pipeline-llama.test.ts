/**
 * The pipeline engine against llama.cpp (node-llama-cpp, CPU, flash attention
 * off) on the same generated GGUF: teacher-forced logits at every position
 * within TOLERANCE, and the same top token wherever llama.cpp's top-2 gap is
 * clear. Differences come from llama.cpp's f16 KV cache and f16 activations
 * in f16 matmuls, and our f16 residual between blocks; measured ~0.005–0.01.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { FIXTURE, NEEDS_FIXTURE } from './helpers.js';
import { argmax, ggufFromBytes, openGgufFile, LocalStageTransport, PipelineSession, RANDOM_LLAMA_TOKENS, Rng, splitLayers, Stage, writeRandomLlama, type RandomLlamaOptions } from '../src/index.js';

/** Largest allowed |ours − llama.cpp| for any logit at any position. */
const TOLERANCE = 0.05;
/** Top tokens are compared only where llama.cpp's best logit leads the second by more than this. */
const CLEAR_GAP = 0.1;

type Lib = typeof import('node-llama-cpp');
let lib: Lib | undefined;
try {
  lib = await import('node-llama-cpp');
} catch {
  lib = undefined;
}
const SKIP = lib ? false : 'node-llama-cpp (an optional dependency) is not installed';

/** Teacher-forced logits of `tokens` from node-llama-cpp, one full row per position. */
async function llamaCppLogits(llama: Llama, path: string, tokens: readonly number[], contextSize: number): Promise<Float32Array[]> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
    const context = await model.createContext({ contextSize, flashAttention: false, threads: 1, sequences: 1 });
    try {
      const out = await context.getSequence().controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }]));
      return tokens.map((_, i) => {
        const m = out[i]?.next?.logits;
        assert.ok(m && m.size === vocab, `llama.cpp gave ${m?.size} logits at ${i}`);
        const row = new Float32Array(vocab);
        for (const [t, v] of m) row[t] = v;
        return row;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function maxDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let worst = 0;
  a.forEach((row, i) => row.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - b[i]![j]!)); }));
  return worst;
}

const MODELS: Array<[string, RandomLlamaOptions]> = [
  ['4-block f16', { blocks: 4, hidden: 64, heads: 4, kvHeads: 2, ff: 168, vocab: 320, ctx: 128, seed: 21, type: 'f16' }],
  ['4-block f32', { blocks: 4, hidden: 64, heads: 4, kvHeads: 4, ff: 176, vocab: 320, ctx: 128, seed: 22, type: 'f32' }],
  ['8-block f16', { blocks: 8, hidden: 96, heads: 6, kvHeads: 2, ff: 200, vocab: 384, ctx: 128, seed: 23, type: 'f16', untied: true }],
  ['8-block f32', { blocks: 8, hidden: 128, heads: 8, kvHeads: 2, ff: 256, vocab: 400, ctx: 128, seed: 24, type: 'f32', ropeBase: 500000 }],
];

describe('pipeline logits against llama.cpp', { skip: SKIP }, () => {
  let llama: Llama;
  let dir: string;
  before(async () => {
    llama = await lib!.getLlama({ build: 'never', gpu: false, logLevel: lib!.LlamaLogLevel.error });
    dir = mkdtempSync(join(tmpdir(), 'pipeline-llama-'));
  });
  after(async () => {
    await llama?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [label, opts] of MODELS) {
    it(`${label}: teacher-forced logits within ${TOLERANCE} over 40 positions, split in 3`, async (t) => {
      const bytes = writeRandomLlama(opts);
      const path = join(dir, `${label.replace(/\W+/g, '-')}.gguf`);
      writeFileSync(path, bytes);
      const rng = new Rng(opts.seed);
      const tokens = [RANDOM_LLAMA_TOKENS.bos, ...Array.from({ length: 39 }, () => RANDOM_LLAMA_TOKENS.firstPiece + (rng.u32() % (opts.vocab - RANDOM_LLAMA_TOKENS.firstPiece)))];

      const theirs = await llamaCppLogits(llama, path, tokens, opts.ctx);

      const src = ggufFromBytes(bytes);
      const stages = await Promise.all(splitLayers(opts.blocks, 3).map((r) => Stage.load(src, r)));
      const ours = await new PipelineSession({ stages: stages.map((s) => new LocalStageTransport(s)) }).logits(tokens);
      const worst = maxDiff(ours, theirs);
      let clear = 0;
      for (let i = 0; i < tokens.length; i++) {
        const a = ours[i]!;
        const b = theirs[i]!;
        const top = argmax(b);
        const second = Math.max(...b.filter((_, v) => v !== top));
        if (b[top]! - second > CLEAR_GAP) {
          clear += 1;
          assert.equal(argmax(a), top, `top token at position ${i}`);
        }
      }
      assert.ok(worst <= TOLERANCE, `${label}: largest logit difference ${worst}`);
      assert.ok(clear >= tokens.length / 2, `only ${clear} positions had a clear top token`);
      t.diagnostic(`${label}: max |Δlogit| ${worst.toFixed(4)}, top token equal at ${clear} clear positions`);
    });
  }

  it('the shared tiny fixture (made by a real converter) matches too', { skip: NEEDS_FIXTURE }, async (t) => {
    const file = await openGgufFile(FIXTURE);
    try {
      const tokens = [1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203];
      const stage = await Stage.load(file, { from: 0, to: 1, contextSize: 64 });
      const ours = await new PipelineSession({ stages: [new LocalStageTransport(stage)] }).logits(tokens);
      const worst = maxDiff(ours, await llamaCppLogits(llama, FIXTURE, tokens, 64));
      assert.ok(worst <= TOLERANCE, `largest logit difference ${worst}`);
      t.diagnostic(`llama-2-tiny-random: max |Δlogit| ${worst.toFixed(5)}`);
    } finally {
      await file.close();
    }
  });
});
