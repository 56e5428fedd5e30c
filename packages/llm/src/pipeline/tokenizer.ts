/**
 * A SentencePiece (llama.cpp "llama"/SPM) tokenizer read from GGUF metadata,
 * so the head of a split group turns text into token ids and back without
 * loading the model in llama.cpp (it may not fit on the head).
 *
 * Encoding follows llama.cpp's SPM tokenizer: a leading space is added, spaces
 * become "▁", the text starts as one symbol per character, and the adjacent
 * pair whose joined text is a token with the highest score is merged first
 * (ties: leftmost), until no pair is a token. A symbol that is not a token is
 * spelled with byte tokens `<0xXX>` (byte fallback).
 */
import { ImError } from '@idlemesh/protocol';
import { metaString } from '../gguf/reader.js';
import type { GgufHeader } from '../gguf/types.js';

// llama.cpp's token types.
const NORMAL = 1, CONTROL = 3, USER_DEFINED = 4, BYTE = 6;

export class SpmTokenizer {
  private readonly ids = new Map<string, number>();
  private readonly byteIds = new Map<number, number>();
  private readonly byteOf = new Map<number, number>();

  constructor(
    readonly tokens: readonly string[],
    readonly scores: readonly number[],
    readonly types: readonly number[],
    readonly bos: number | undefined,
    readonly eos: number | undefined,
    readonly addBos: boolean,
    readonly addSpacePrefix: boolean,
  ) {
    tokens.forEach((t, i) => {
      const type = types[i] ?? NORMAL;
      if (type === BYTE) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
        if (m) {
          this.byteIds.set(parseInt(m[1]!, 16), i);
          this.byteOf.set(i, parseInt(m[1]!, 16));
        }
      } else if ((type === NORMAL || type === USER_DEFINED) && !this.ids.has(t)) this.ids.set(t, i);
    });
  }

  /** The tokenizer of a GGUF whose `tokenizer.ggml.model` is `llama` (SentencePiece). */
  static fromGguf(h: GgufHeader): SpmTokenizer {
    const model = metaString(h, 'tokenizer.ggml.model');
    if (model !== 'llama') throw new ImError('IM_GGUF_INVALID', `the pipeline head tokenizes SentencePiece ("llama") vocabularies; this GGUF's is ${JSON.stringify(model ?? 'missing')}`);
    const arr = (key: string): unknown[] => {
      const v = h.metadata.get(key);
      return v !== undefined && Array.isArray(v.value) ? (v.value as unknown[]) : [];
    };
    const tokens = arr('tokenizer.ggml.tokens').map(String);
    if (tokens.length === 0) throw new ImError('IM_GGUF_INVALID', 'the GGUF has no tokenizer.ggml.tokens');
    const scores = arr('tokenizer.ggml.scores').map(Number);
    const types = arr('tokenizer.ggml.token_type').map(Number);
    const num = (key: string): number | undefined => {
      const v = h.metadata.get(key)?.value;
      return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
    };
    const bool = (key: string, dflt: boolean): boolean => {
      const v = h.metadata.get(key)?.value;
      return typeof v === 'boolean' ? v : dflt;
    };
    return new SpmTokenizer(tokens, scores, types, num('tokenizer.ggml.bos_token_id'), num('tokenizer.ggml.eos_token_id'),
      bool('tokenizer.ggml.add_bos_token', true), bool('tokenizer.ggml.add_space_prefix', true));
  }

  /** Token ids of text, with BOS first when the model wants it (as llama.cpp tokenizes a prompt). */
  encode(text: string, withBos = this.addBos): number[] {
    const out: number[] = withBos && this.bos !== undefined ? [this.bos] : [];
    if (text === '') return out;
    const norm = (this.addSpacePrefix ? ` ${text}` : text).replaceAll(' ', '▁');
    const syms = [...norm];
    // Repeated best-pair merging: O(n²) per prompt, fine for the prompts a split group takes.
    for (;;) {
      let best = -1;
      let bestScore = -Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const id = this.ids.get(syms[i]! + syms[i + 1]!);
        if (id === undefined) continue;
        const score = this.scores[id] ?? 0;
        if (score > bestScore) {
          bestScore = score;
          best = i;
        }
      }
      if (best < 0) break;
      syms.splice(best, 2, syms[best]! + syms[best + 1]!);
    }
    for (const s of syms) {
      const id = this.ids.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of new TextEncoder().encode(s)) {
        const bid = this.byteIds.get(b);
        if (bid === undefined) throw new ImError('IM_VALIDATION', `the character ${JSON.stringify(s)} is not in this model's vocabulary and it has no byte tokens`);
        out.push(bid);
      }
    }
    return out;
  }

  /**
   * Text of tokens, as node-llama-cpp's detokenize: "▁" is a space, byte
   * tokens join into UTF-8, control tokens are dropped unless `special`.
   * Without context before them, the tokenizer's leading space is removed.
   */
  decode(tokens: readonly number[], special = false, lastTokens: readonly number[] = []): string {
    const bytes: number[] = [];
    for (const t of tokens) {
      const b = this.byteOf.get(t);
      if (b !== undefined) {
        bytes.push(b);
        continue;
      }
      const type = this.types[t] ?? NORMAL;
      if (type === CONTROL && !special) continue;
      const piece = this.tokens[t];
      if (piece === undefined) continue;
      bytes.push(...new TextEncoder().encode(type === CONTROL ? piece : piece.replaceAll('▁', ' ')));
    }
    let text = new TextDecoder().decode(new Uint8Array(bytes));
    const atStart = lastTokens.length === 0 || lastTokens.every((t) => (this.types[t] ?? NORMAL) === CONTROL);
    if (this.addSpacePrefix && atStart && text.startsWith(' ')) text = text.slice(1);
    return text;
  }
}
