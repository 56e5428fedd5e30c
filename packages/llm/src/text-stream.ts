/**
 * Generated tokens to released text, one token at a time, the same way for
 * streamed and whole answers (so both give the same text):
 *
 * - Tokens are detokenised with the tokens before them as context, so a
 *   word-initial token keeps its leading space (" world" after "Hello").
 * - A character split over several byte tokens is held until complete
 *   (detokenising half of it gives U+FFFD).
 * - Text that may be the start of a stop string is held until it is clear
 *   whether it is; a stop string ends the text before it, as OpenAI does.
 */

/** What the stream needs from a model: node-llama-cpp's LlamaModel.detokenize. */
export type Detokenize = (tokens: readonly number[], specialTokens: boolean, lastTokens: readonly number[]) => string;

/** Tokens of context for spacing; SentencePiece needs only the previous one. */
const CONTEXT_TOKENS = 8;
/** A UTF-8 character is at most 4 bytes, so at most 4 byte tokens. */
const MAX_SPLIT_TOKENS = 4;

export class TextStream {
  private pending: number[] = [];
  private context: number[];
  private held = '';
  private started: boolean;
  /** Set once a stop string was found: nothing more is released. */
  stopped = false;

  constructor(
    private readonly detokenize: Detokenize,
    contextTokens: readonly number[],
    private readonly stops: readonly string[],
    /** Drop whitespace at the start of the answer (the plain chat format's "Assistant: "). */
    trimStart = false,
  ) {
    this.context = contextTokens.slice(-CONTEXT_TOKENS);
    this.started = !trimStart;
  }

  /** Adds one generated token; returns the text now safe to release ('' if none). */
  push(token: number): string {
    if (this.stopped) return '';
    this.pending.push(token);
    const text = this.detokenize(this.pending, false, this.context);
    if (text.endsWith('\uFFFD') && this.pending.length < MAX_SPLIT_TOKENS) return '';
    this.context = [...this.context, ...this.pending].slice(-CONTEXT_TOKENS);
    this.pending = [];
    return this.release(text, false);
  }

  /** The end of generation: releases what was held (a stop string's prefix that never completed, a split character). */
  flush(): string {
    if (this.stopped) return '';
    const text = this.pending.length > 0 ? this.detokenize(this.pending, false, this.context) : '';
    this.pending = [];
    return this.release(text, true);
  }

  private release(piece: string, final: boolean): string {
    let buf = this.held + piece;
    this.held = '';
    if (!this.started) {
      buf = buf.trimStart();
      if (buf === '') return '';
      this.started = true;
    }
    let cut = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      return buf.slice(0, cut);
    }
    if (final) return buf;
    const keep = heldSuffix(buf, this.stops);
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }
}

/** Length of the longest end of `text` that is a proper prefix of a stop string. */
function heldSuffix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
