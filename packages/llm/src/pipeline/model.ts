/**
 * A llama model's shape as the pipeline needs it, read from GGUF metadata,
 * and the tensors each stage loads (by name, with the shape each must have).
 */
import { ImError } from '@idlemesh/protocol';
import { metaNumber, metaString } from '../gguf/reader.js';
import type { GgufHeader, GgufTensorInfo } from '../gguf/types.js';

export interface LlamaConfig {
  blocks: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Feed-forward width. */
  ff: number;
  vocab: number;
  /** Training context: the longest a stage's KV cache may grow by default. */
  contextLength: number;
  ropeBase: number;
  /** Dimensions of each head that RoPE rotates (the rest pass through). */
  ropeDims: number;
  rmsEps: number;
  /** Whether the output head is token_embd (no output.weight in the file). */
  tiedHead: boolean;
}

function invalid(message: string): ImError {
  return new ImError('IM_GGUF_INVALID', message);
}

export function llamaConfigOf(h: GgufHeader): LlamaConfig {
  const arch = metaString(h, 'general.architecture');
  if (arch !== 'llama') throw invalid(`the pipeline engine runs llama models; this GGUF is ${JSON.stringify(arch ?? 'of no architecture')}`);
  const hidden = metaNumber(h, 'llama.embedding_length');
  const heads = metaNumber(h, 'llama.attention.head_count');
  const kvHeads = metaNumber(h, 'llama.attention.head_count_kv', heads);
  if (hidden % heads !== 0 || heads % kvHeads !== 0) throw invalid(`head counts ${heads}/${kvHeads} do not divide the hidden size ${hidden}`);
  const headDim = hidden / heads;
  const embd = tensorInfo(h, 'token_embd.weight');
  const vocab = embd.dims[1] ?? 0;
  const ropeDims = metaNumber(h, 'llama.rope.dimension_count', headDim);
  if (ropeDims > headDim || ropeDims % 2 !== 0) throw invalid(`llama.rope.dimension_count ${ropeDims} does not fit the head size ${headDim}`);
  if (h.metadata.has('llama.rope.scaling.type') && metaString(h, 'llama.rope.scaling.type') !== 'none') throw invalid('RoPE scaling is not supported by the pipeline engine');
  return {
    blocks: metaNumber(h, 'llama.block_count'),
    hidden,
    heads,
    kvHeads,
    headDim,
    ff: metaNumber(h, 'llama.feed_forward_length'),
    vocab,
    contextLength: metaNumber(h, 'llama.context_length'),
    ropeBase: metaNumber(h, 'llama.rope.freq_base', 10000),
    ropeDims,
    rmsEps: metaNumber(h, 'llama.attention.layer_norm_rms_epsilon', 1e-5),
    tiedHead: !h.tensors.some((t) => t.name === 'output.weight'),
  };
}

export function tensorInfo(h: GgufHeader, name: string): GgufTensorInfo {
  const t = h.tensors.find((x) => x.name === name);
  if (!t) throw invalid(`the GGUF has no tensor ${name}`);
  return t;
}

/** A tensor a stage needs: its name and expected dims (innermost first). */
export interface TensorNeed {
  name: string;
  dims: number[];
}

export function blockTensors(c: LlamaConfig, b: number): TensorNeed[] {
  const p = `blk.${b}.`;
  const kv = c.kvHeads * c.headDim;
  return [
    { name: `${p}attn_norm.weight`, dims: [c.hidden] },
    { name: `${p}attn_q.weight`, dims: [c.hidden, c.heads * c.headDim] },
    { name: `${p}attn_k.weight`, dims: [c.hidden, kv] },
    { name: `${p}attn_v.weight`, dims: [c.hidden, kv] },
    { name: `${p}attn_output.weight`, dims: [c.heads * c.headDim, c.hidden] },
    { name: `${p}ffn_norm.weight`, dims: [c.hidden] },
    { name: `${p}ffn_gate.weight`, dims: [c.hidden, c.ff] },
    { name: `${p}ffn_up.weight`, dims: [c.hidden, c.ff] },
    { name: `${p}ffn_down.weight`, dims: [c.ff, c.hidden] },
  ];
}

/** Checks a tensor's shape against what the model config implies. */
export function checkShape(t: GgufTensorInfo, need: TensorNeed): void {
  if (t.dims.length !== need.dims.length || t.dims.some((d, i) => d !== need.dims[i])) {
    throw invalid(`tensor ${t.name} is ${t.dims.join('×')}, expected ${need.dims.join('×')} for this model's metadata: a wrong tensor size`);
  }
}

/** Contiguous layer ranges for `stages` stages, as even as possible (earlier stages take the extra layer). */
export function splitLayers(blocks: number, stages: number): Array<{ from: number; to: number }> {
  if (!Number.isInteger(stages) || stages < 1 || stages > blocks) throw new ImError('IM_VALIDATION', `cannot split ${blocks} layers over ${stages} stages`);
  const out: Array<{ from: number; to: number }> = [];
  let from = 0;
  for (let i = 0; i < stages; i++) {
    const n = Math.floor(blocks / stages) + (i < blocks % stages ? 1 : 0);
    out.push({ from, to: from + n });
    from += n;
  }
  return out;
}
