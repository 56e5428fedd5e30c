/**
 * One pipeline stage: layers [from, to) of a llama model, loaded alone from
 * the GGUF (plus the embedding for the first stage, the final norm and head
 * for the last), with its own KV cache.
 *
 * The forward pass is llama's: per block RMSNorm → Q, K, V (grouped-query),
 * RoPE (the "normal" mode: adjacent pairs), causal attention over the cache,
 * output projection, residual; RMSNorm → SwiGLU feed-forward, residual. Then
 * the final RMSNorm and the head (token_embd when output.weight is absent).
 *
 * Why the residual stream is rounded to f16 after every block: hidden states
 * travel between stages as f16, and rounding at every block boundary (not
 * only where a stage ends) makes the result independent of where the model
 * is split. One stage, two or three give bit-identical logits. llama.cpp
 * keeps f32 here; the difference is far inside the tolerance its logits are
 * compared with (its own KV cache is f16).
 *
 * A frame's rows may come one token at a time or many at once (a prompt, a
 * replay): every output value is computed the same way either way, so a
 * replayed cache equals the original bit for bit.
 */
import { ImError } from '@idlemesh/protocol';
import { roundToF16 } from '../gguf/f16.js';
import { decodeTensor } from '../gguf/reader.js';
import type { GgufSource } from '../gguf/source.js';
import { createKernel, type KernelChoice, type Matrix, type MatmulKernel } from './kernel.js';
import { decodeFrame, encodeFrame, frameRows, type Frame } from './frame.js';
import { blockTensors, checkShape, llamaConfigOf, tensorInfo, type LlamaConfig, type TensorNeed } from './model.js';

export interface StageOptions {
  /** First layer (inclusive). */
  from: number;
  /** Last layer (exclusive). */
  to: number;
  /** 'auto' (default): WASM SIMD where available, else JS. */
  kernel?: KernelChoice;
  /** Longest sequence the KV cache holds; default the model's context length, at most 4096. */
  contextSize?: number;
}

interface Layer {
  attnNorm: Float32Array;
  q: Matrix;
  k: Matrix;
  v: Matrix;
  o: Matrix;
  ffnNorm: Float32Array;
  gate: Matrix;
  up: Matrix;
  down: Matrix;
  /** [kvHead][position][headDim], contextSize positions each. */
  kCache: Float32Array;
  vCache: Float32Array;
}

export const DEFAULT_STAGE_CONTEXT = 4096;

export class Stage {
  /** Positions held in the KV cache. */
  private length = 0;

  private constructor(
    readonly config: LlamaConfig,
    readonly from: number,
    readonly to: number,
    readonly contextSize: number,
    readonly kernel: MatmulKernel,
    /** The GGUF tensors this stage read, in order: its layers and, at the ends, embedding or head. */
    readonly tensorNames: readonly string[],
    private readonly layers: readonly Layer[],
    private readonly embedding: Float32Array | undefined,
    private readonly outNorm: Float32Array | undefined,
    private readonly head: Matrix | undefined,
    /** cos and sin of RoPE's angle for each position and pair. */
    private readonly ropeCos: Float32Array,
    private readonly ropeSin: Float32Array,
  ) {}

  /** Reads only this stage's tensors from the source. */
  static async load(source: GgufSource, opts: StageOptions): Promise<Stage> {
    const h = source.header;
    const c = llamaConfigOf(h);
    const { from, to } = opts;
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > c.blocks || from >= to) {
      throw new ImError('IM_VALIDATION', `layers [${from}, ${to}) are not a range within the model's ${c.blocks} blocks`);
    }
    const contextSize = opts.contextSize ?? Math.min(c.contextLength, DEFAULT_STAGE_CONTEXT);
    if (!Number.isInteger(contextSize) || contextSize < 1) throw new ImError('IM_VALIDATION', `context size ${contextSize}`);
    const kernel = createKernel(opts.kernel);
    const names: string[] = [];
    const read = async (need: TensorNeed): Promise<Float32Array> => {
      const t = tensorInfo(h, need.name);
      checkShape(t, need);
      names.push(t.name);
      return decodeTensor(t, await source.tensorBytes(t));
    };
    /** A GGUF matrix [in, out] is `out` rows of `in` values: the kernel's rows × cols. */
    const matrix = async (need: TensorNeed): Promise<Matrix> => kernel.upload(await read(need), need.dims[1]!, need.dims[0]!);
    const kvDim = c.kvHeads * c.headDim;
    const layers: Layer[] = [];
    for (let b = from; b < to; b++) {
      const [attnNorm, q, k, v, o, ffnNorm, gate, up, down] = blockTensors(c, b) as [TensorNeed, TensorNeed, TensorNeed, TensorNeed, TensorNeed, TensorNeed, TensorNeed, TensorNeed, TensorNeed];
      layers.push({
        attnNorm: await read(attnNorm),
        q: await matrix(q),
        k: await matrix(k),
        v: await matrix(v),
        o: await matrix(o),
        ffnNorm: await read(ffnNorm),
        gate: await matrix(gate),
        up: await matrix(up),
        down: await matrix(down),
        kCache: new Float32Array(contextSize * kvDim),
        vCache: new Float32Array(contextSize * kvDim),
      });
    }
    const embdNeed = { name: 'token_embd.weight', dims: [c.hidden, c.vocab] };
    const embedding = from === 0 ? await read(embdNeed) : undefined;
    let outNorm: Float32Array | undefined;
    let head: Matrix | undefined;
    if (to === c.blocks) {
      outNorm = await read({ name: 'output_norm.weight', dims: [c.hidden] });
      if (c.tiedHead) head = kernel.upload(embedding ?? (await read(embdNeed)), c.vocab, c.hidden);
      else head = await matrix({ name: 'output.weight', dims: [c.hidden, c.vocab] });
    }
    const pairs = c.ropeDims / 2;
    const ropeCos = new Float32Array(contextSize * pairs);
    const ropeSin = new Float32Array(contextSize * pairs);
    for (let p = 0; p < contextSize; p++) {
      for (let i = 0; i < pairs; i++) {
        const theta = p * Math.pow(c.ropeBase, (-2 * i) / c.ropeDims);
        ropeCos[p * pairs + i] = Math.cos(theta);
        ropeSin[p * pairs + i] = Math.sin(theta);
      }
    }
    return new Stage(c, from, to, contextSize, kernel, names, layers, embedding, outNorm, head, ropeCos, ropeSin);
  }

  get first(): boolean {
    return this.from === 0;
  }

  get last(): boolean {
    return this.to === this.config.blocks;
  }

  /** Positions in the KV cache: the next frame must start here (or earlier, to rewind). */
  get position(): number {
    return this.length;
  }

  /** Empties the KV cache. */
  reset(): void {
    this.length = 0;
  }

  /**
   * The same layers with a KV cache of its own: one stage agent serves
   * several requests at once without holding the weights twice.
   */
  fork(): Stage {
    const kvDim = this.config.kvHeads * this.config.headDim;
    const layers = this.layers.map((l) => ({ ...l, kCache: new Float32Array(this.contextSize * kvDim), vCache: new Float32Array(this.contextSize * kvDim) }));
    return new Stage(this.config, this.from, this.to, this.contextSize, this.kernel, this.tensorNames, layers, this.embedding, this.outNorm, this.head, this.ropeCos, this.ropeSin);
  }

  /** Bytes-in, bytes-out: what a transport calls. */
  handle(frame: Uint8Array): Uint8Array {
    return encodeFrame(this.forward(decodeFrame(frame)));
  }

  /**
   * Runs the frame's rows through this stage's layers: tokens (first stage)
   * or hidden states in; hidden states, or logits from the last stage, out.
   * A frame starting before the cache's end rewinds the cache to its position.
   */
  forward(input: Frame): Frame {
    const c = this.config;
    const count = frameRows(input);
    const position = input.position;
    if (input.kind === 'logits') throw new ImError('IM_PIPELINE_FRAME', 'a stage takes tokens or hidden states, not logits');
    if (this.first !== (input.kind === 'tokens')) {
      throw new ImError('IM_PIPELINE_FRAME', this.first ? `the first stage takes token ids, got a ${input.kind} frame` : `stage [${this.from}, ${this.to}) takes hidden states, got token ids`);
    }
    if (position > this.length) throw new ImError('IM_PIPELINE_POSITION', `the frame starts at position ${position} but this stage's cache holds ${this.length}; reset and replay from 0`);
    if (position + count > this.contextSize) throw new ImError('IM_VALIDATION', `positions up to ${position + count} do not fit this stage's context of ${this.contextSize} tokens; shorten the sequence`);
    const x = new Float32Array(count * c.hidden);
    if (input.kind === 'tokens') {
      for (let t = 0; t < count; t++) {
        const id = input.tokens[t]!;
        if (id >= c.vocab) throw new ImError('IM_PIPELINE_FRAME', `token id ${id} is outside the vocabulary (0..${c.vocab - 1})`);
        x.set(this.embedding!.subarray(id * c.hidden, (id + 1) * c.hidden), t * c.hidden);
      }
    } else {
      if (input.width !== c.hidden) throw new ImError('IM_PIPELINE_FRAME', `hidden width ${input.width}; this model's is ${c.hidden}`);
      x.set(input.hidden);
    }
    this.length = position;
    for (const layer of this.layers) {
      this.block(layer, x, position, count);
      roundToF16(x);
    }
    this.length = position + count;
    if (!this.last) return { kind: 'hidden', position, count, width: c.hidden, hidden: x, allLogits: input.allLogits };
    const rows = input.allLogits ? count : 1;
    const first = count - rows;
    const normed = new Float32Array(rows * c.hidden);
    for (let t = 0; t < rows; t++) rmsNorm(x, (first + t) * c.hidden, this.outNorm!, c.hidden, c.rmsEps, normed, t * c.hidden);
    const logits = new Float32Array(rows * c.vocab);
    this.kernel.matmul(this.head!, normed, rows, logits);
    return { kind: 'logits', position: position + first, count: rows, width: c.vocab, logits };
  }

  private block(l: Layer, x: Float32Array, position: number, count: number): void {
    const c = this.config;
    const { hidden, heads, kvHeads, headDim, ff } = c;
    const qDim = heads * headDim;
    const kvDim = kvHeads * headDim;
    const k = this.kernel;

    const xn = new Float32Array(count * hidden);
    for (let t = 0; t < count; t++) rmsNorm(x, t * hidden, l.attnNorm, hidden, c.rmsEps, xn, t * hidden);
    const q = new Float32Array(count * qDim);
    const kk = new Float32Array(count * kvDim);
    const vv = new Float32Array(count * kvDim);
    k.matmul(l.q, xn, count, q);
    k.matmul(l.k, xn, count, kk);
    k.matmul(l.v, xn, count, vv);
    for (let t = 0; t < count; t++) {
      const p = position + t;
      for (let h = 0; h < heads; h++) this.rope(q, t * qDim + h * headDim, p);
      for (let h = 0; h < kvHeads; h++) this.rope(kk, t * kvDim + h * headDim, p);
    }
    // The cache is laid out per KV head ([kvHead][position][headDim]) so the loops below read it contiguously.
    const ctx = this.contextSize;
    for (let t = 0; t < count; t++) {
      for (let g = 0; g < kvHeads; g++) {
        const at = (g * ctx + position + t) * headDim;
        l.kCache.set(kk.subarray(t * kvDim + g * headDim, t * kvDim + (g + 1) * headDim), at);
        l.vCache.set(vv.subarray(t * kvDim + g * headDim, t * kvDim + (g + 1) * headDim), at);
      }
    }

    // Causal attention: row t sees cache positions 0..position+t.
    const att = new Float32Array(count * qDim);
    const scale = 1 / Math.sqrt(headDim);
    const group = heads / kvHeads;
    const scores = new Float64Array(position + count);
    const acc = new Float64Array(headDim);
    for (let t = 0; t < count; t++) {
      const span = position + t + 1;
      for (let h = 0; h < heads; h++) {
        const qo = t * qDim + h * headDim;
        const base = Math.floor(h / group) * ctx * headDim;
        let max = -Infinity;
        for (let j = 0; j < span; j++) {
          let s = 0;
          const kb = base + j * headDim;
          for (let d = 0; d < headDim; d++) s += q[qo + d]! * l.kCache[kb + d]!;
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j < span; j++) {
          const e = Math.exp(scores[j]! - max);
          sum += e;
          const vb = base + j * headDim;
          for (let d = 0; d < headDim; d++) acc[d] = acc[d]! + e * l.vCache[vb + d]!;
        }
        for (let d = 0; d < headDim; d++) att[qo + d] = acc[d]! / sum;
      }
    }
    const o = new Float32Array(count * hidden);
    k.matmul(l.o, att, count, o);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + o[i]!;

    // SwiGLU feed-forward.
    for (let t = 0; t < count; t++) rmsNorm(x, t * hidden, l.ffnNorm, hidden, c.rmsEps, xn, t * hidden);
    const g = new Float32Array(count * ff);
    const u = new Float32Array(count * ff);
    k.matmul(l.gate, xn, count, g);
    k.matmul(l.up, xn, count, u);
    for (let i = 0; i < g.length; i++) {
      const gi = g[i]!;
      g[i] = (gi / (1 + Math.exp(-gi))) * u[i]!;
    }
    const d = new Float32Array(count * hidden);
    k.matmul(l.down, g, count, d);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + d[i]!;
  }

  /** RoPE, normal mode: rotates pairs (v[2i], v[2i+1]) by position·base^(−2i/ropeDims). */
  private rope(v: Float32Array, at: number, p: number): void {
    const pairs = this.config.ropeDims / 2;
    const base = p * pairs;
    for (let i = 0; i < pairs; i++) {
      const cos = this.ropeCos[base + i]!;
      const sin = this.ropeSin[base + i]!;
      const a = v[at + 2 * i]!;
      const b = v[at + 2 * i + 1]!;
      v[at + 2 * i] = a * cos - b * sin;
      v[at + 2 * i + 1] = a * sin + b * cos;
    }
  }
}

/** out = x / √(mean(x²) + eps) · w, for one row. */
function rmsNorm(x: Float32Array, at: number, w: Float32Array, n: number, eps: number, out: Float32Array, outAt: number): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[at + i]! * x[at + i]!;
  const inv = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) out[outAt + i] = x[at + i]! * inv * w[i]!;
}
