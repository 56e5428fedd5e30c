/**
 * Random-weight llama models as GGUF bytes, for tests and benches: any number
 * of blocks, grouped-query attention, a tiny self-made SentencePiece-style
 * vocabulary, deterministic weights from a seed. llama.cpp (node-llama-cpp)
 * loads them, so the pipeline engine can be checked against it.
 *
 * Weights are uniform with a standard deviation of about 1/√(fan-in), norms
 * about 1, so activations stay near unit size through the blocks and the
 * logits have a standard deviation of about 2: sane, with clear top-2 gaps at most
 * positions. The output head is tied to the embedding unless `untied`.
 */
import { ImError } from '@idlemesh/protocol';
import { Rng } from '../pipeline/rng.js';
import { GgmlType, GgufValueType, type GgufValue } from './types.js';
import { encodeTensor, writeGguf, type GgufTensorInput } from './writer.js';

export interface RandomLlamaOptions {
  blocks: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  /** Feed-forward width. */
  ff: number;
  /** Vocabulary size, at least 3 specials + 256 byte tokens + 1. */
  vocab: number;
  /** Training context (llama.context_length). */
  ctx: number;
  seed: number;
  /** Type of the 2-D weights; norms are always F32, as llama.cpp's converters write them. */
  type: 'f32' | 'f16' | 'q8_0';
  /** Write a separate output.weight instead of tying the head to token_embd. */
  untied?: boolean;
  ropeBase?: number;
  rmsEps?: number;
}

/** Special token ids of the generated vocabulary. */
export const RANDOM_LLAMA_TOKENS = { unk: 0, bos: 1, eos: 2, firstByte: 3, firstPiece: 259 } as const;

// llama.cpp's token types.
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6;

/**
 * A vocabulary llama.cpp's SPM tokenizer accepts: <unk> <s> </s>, the 256
 * byte-fallback tokens <0x00>..<0xFF> (it looks up <0x0A> for newline), then
 * pieces: "▁", letters, digits, punctuation, "▁"+letter, letter pairs, … until
 * the size is reached. Scores fall with the index (SPM merges prefer higher).
 */
export function randomLlamaVocabulary(size: number): { tokens: string[]; scores: number[]; types: number[] } {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [UNKNOWN, CONTROL, CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(BYTE);
  }
  const chars = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?\'-:;()'];
  const pieces = function* (): Generator<string> {
    yield '▁';
    for (const c of chars) yield c;
    for (const c of chars) yield `▁${c}`;
    for (const a of chars) for (const b of chars) yield `${a}${b}`;
    for (const a of chars) for (const b of chars) yield `▁${a}${b}`;
    for (const a of chars) for (const b of chars) for (const c of chars) yield `${a}${b}${c}`;
  };
  const it = pieces();
  while (tokens.length < size) {
    const p = it.next();
    if (p.done) throw new ImError('IM_VALIDATION', `a random llama vocabulary has at most ${tokens.length} tokens`);
    tokens.push(p.value);
    types.push(NORMAL);
  }
  const scores = tokens.map((_, i) => (types[i] === NORMAL ? -i : 0));
  return { tokens, scores, types };
}

function check(o: RandomLlamaOptions): void {
  const bad = (m: string): never => {
    throw new ImError('IM_VALIDATION', `writeRandomLlama: ${m}`);
  };
  for (const k of ['blocks', 'hidden', 'heads', 'kvHeads', 'ff', 'vocab', 'ctx'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) bad(`${k} must be a positive integer`);
  }
  if (o.hidden % o.heads !== 0) bad('hidden must be a multiple of heads');
  if ((o.hidden / o.heads) % 2 !== 0) bad('the head size (hidden/heads) must be even for RoPE');
  if (o.heads % o.kvHeads !== 0) bad('heads must be a multiple of kvHeads');
  if (o.vocab < RANDOM_LLAMA_TOKENS.firstPiece + 1) bad(`vocab must be at least ${RANDOM_LLAMA_TOKENS.firstPiece + 1}`);
  if (o.type === 'q8_0' && (o.hidden % 32 !== 0 || o.ff % 32 !== 0)) bad('q8_0 needs hidden and ff multiples of 32');
}

/** A llama GGUF with deterministic random weights; see the file comment. */
export function writeRandomLlama(o: RandomLlamaOptions): Uint8Array {
  check(o);
  const rng = new Rng(o.seed);
  const headDim = o.hidden / o.heads;
  const kvDim = headDim * o.kvHeads;
  const wtype = o.type === 'f32' ? GgmlType.F32 : o.type === 'f16' ? GgmlType.F16 : GgmlType.Q8_0;
  const tensors: GgufTensorInput[] = [];
  /** dims innermost first: [in, out] for a matrix mapping `in` values to `out`. */
  const uniform = (name: string, dims: number[], std: number, mean = 0, type = wtype): void => {
    const n = dims.reduce((a, b) => a * b, 1);
    const a = std * Math.sqrt(3);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = mean + (rng.next() * 2 - 1) * a;
    tensors.push({ name, dims, type, data: encodeTensor(v, type) });
  };
  const norm = (name: string): void => uniform(name, [o.hidden], 0.05, 1, GgmlType.F32);

  // Also the tied head: logits spread about ±2.
  uniform('token_embd.weight', [o.hidden, o.vocab], 2 / Math.sqrt(o.hidden));
  for (let b = 0; b < o.blocks; b++) {
    const p = `blk.${b}.`;
    norm(`${p}attn_norm.weight`);
    uniform(`${p}attn_q.weight`, [o.hidden, o.hidden], 1 / Math.sqrt(o.hidden));
    uniform(`${p}attn_k.weight`, [o.hidden, kvDim], 1 / Math.sqrt(o.hidden));
    uniform(`${p}attn_v.weight`, [o.hidden, kvDim], 1 / Math.sqrt(o.hidden));
    uniform(`${p}attn_output.weight`, [o.hidden, o.hidden], 0.5 / Math.sqrt(o.hidden));
    norm(`${p}ffn_norm.weight`);
    uniform(`${p}ffn_gate.weight`, [o.hidden, o.ff], 1 / Math.sqrt(o.hidden));
    uniform(`${p}ffn_up.weight`, [o.hidden, o.ff], 1 / Math.sqrt(o.hidden));
    uniform(`${p}ffn_down.weight`, [o.ff, o.hidden], 0.5 / Math.sqrt(o.ff));
  }
  norm('output_norm.weight');
  if (o.untied) uniform('output.weight', [o.hidden, o.vocab], 2 / Math.sqrt(o.hidden));

  const vocab = randomLlamaVocabulary(o.vocab);
  const u32 = (value: number): GgufValue => ({ type: GgufValueType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value });
  const str = (value: string): GgufValue => ({ type: GgufValueType.STRING, value });
  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', str('llama')],
    ['general.name', str(`idlemesh-random-llama-${o.blocks}x${o.hidden}-${o.seed}`)],
    // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7.
    ['general.file_type', u32(o.type === 'f32' ? 0 : o.type === 'f16' ? 1 : 7)],
    ['llama.context_length', u32(o.ctx)],
    ['llama.embedding_length', u32(o.hidden)],
    ['llama.block_count', u32(o.blocks)],
    ['llama.feed_forward_length', u32(o.ff)],
    ['llama.attention.head_count', u32(o.heads)],
    ['llama.attention.head_count_kv', u32(o.kvHeads)],
    ['llama.rope.dimension_count', u32(headDim)],
    ['llama.rope.freq_base', f32(o.ropeBase ?? 10000)],
    ['llama.attention.layer_norm_rms_epsilon', f32(o.rmsEps ?? 1e-5)],
    ['llama.vocab_size', u32(o.vocab)],
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', u32(RANDOM_LLAMA_TOKENS.bos)],
    ['tokenizer.ggml.eos_token_id', u32(RANDOM_LLAMA_TOKENS.eos)],
    ['tokenizer.ggml.unknown_token_id', u32(RANDOM_LLAMA_TOKENS.unk)],
    ['tokenizer.ggml.add_bos_token', { type: GgufValueType.BOOL, value: true }],
    ['tokenizer.ggml.add_eos_token', { type: GgufValueType.BOOL, value: false }],
  ];
  return writeGguf({ metadata, tensors });
}
