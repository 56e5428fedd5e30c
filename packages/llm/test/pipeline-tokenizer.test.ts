/**
 * The split head's SentencePiece tokenizer against llama.cpp's
 * (node-llama-cpp) on a generated vocabulary and on the shared tiny fixture
 * (a real converter's vocabulary): the same ids for prompts with spaces,
 * punctuation, newlines and characters outside the vocabulary (byte
 * fallback), and the same text back.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';
import { FIXTURE, NEEDS_FIXTURE } from './helpers.js';
import { SpmTokenizer, openGgufFile, writeRandomLlama } from '../src/index.js';

type Lib = typeof import('node-llama-cpp');
let lib: Lib | undefined;
try {
  lib = await import('node-llama-cpp');
} catch {
  lib = undefined;
}

const TEXTS = [
  'Hello world',
  'Tell me about idle machines',
  'User: Hi\nAssistant:',
  '  two leading spaces, and  double  spaces.',
  'naïve café — déjà vu ✓ 你好',
  'x',
  'abc123!?;:()',
];

describe('the pipeline tokenizer (SentencePiece from GGUF)', () => {
  it('encodes with byte fallback and decodes back to the text, without llama.cpp', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-tok-'));
    try {
      const path = join(dir, 'm.gguf');
      writeFileSync(path, writeRandomLlama({ blocks: 1, hidden: 32, heads: 2, kvHeads: 2, ff: 64, vocab: 800, ctx: 64, seed: 1, type: 'f32' }));
      const f = await openGgufFile(path);
      const t = SpmTokenizer.fromGguf(f.header);
      await f.close();
      for (const text of TEXTS) {
        const ids = t.encode(text);
        assert.equal(ids[0], t.bos, 'BOS first');
        assert.equal(t.decode(ids), text, `round trip of ${JSON.stringify(text)}`);
      }
      assert.ok(t.encode('Hello world').length < 'Hello world'.length, 'pieces merge');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('against llama.cpp', { skip: lib ? false : 'node-llama-cpp (an optional dependency) is not installed' }, () => {
    let llama: Llama;
    let dir: string;
    before(async () => {
      llama = await lib!.getLlama({ build: 'never', gpu: false, logLevel: lib!.LlamaLogLevel.error });
      dir = mkdtempSync(join(tmpdir(), 'idlemesh-tok-'));
    });
    after(async () => {
      await llama?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    const compare = async (path: string): Promise<void> => {
      const f = await openGgufFile(path);
      const ours = SpmTokenizer.fromGguf(f.header);
      await f.close();
      const model: LlamaModel = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
      try {
        for (const text of TEXTS) {
          const theirs = [...model.tokenize(text)].map(Number);
          const mine = ours.encode(text, false);
          assert.deepEqual(mine, theirs, `ids of ${JSON.stringify(text)}`);
          assert.equal(ours.decode(mine), model.detokenize(theirs as Token[]), `text of ${JSON.stringify(text)}`);
        }
      } finally {
        await model.dispose();
      }
    };

    it('a generated vocabulary', async () => {
      const path = join(dir, 'random.gguf');
      writeFileSync(path, writeRandomLlama({ blocks: 1, hidden: 32, heads: 2, kvHeads: 2, ff: 64, vocab: 1200, ctx: 64, seed: 2, type: 'f32' }));
      await compare(path);
    });

    it('the shared tiny fixture', { skip: NEEDS_FIXTURE }, async () => {
      await compare(FIXTURE);
    });
  });
});
