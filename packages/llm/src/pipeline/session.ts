/**
 * The client side of a pipeline (as in Petals): sends each step's tokens
 * through the stages in order, passing each stage's answer to the next as
 * bytes, and keeps every frame each stage has taken.
 *
 * Recovery: when a stage's transport fails, a replacement for the same
 * layers is asked for, its cache is rebuilt by replaying that stage's kept
 * inputs (merged into one frame: the forward pass gives the same values
 * batched or not), and the failed frame is sent again. Other stages are
 * untouched, so the run goes on exactly as if nothing had failed: the same
 * logits, the same sampled tokens. A stage that answers IM_PIPELINE_POSITION
 * (it lost its cache but is still there) is replayed without replacement.
 */
import { ImError } from '@idlemesh/protocol';
import { decodeFrame, encodeFrame, type Frame } from './frame.js';
import { Rng } from './rng.js';
import { sampleToken, type SamplingOptions } from './sampling.js';
import type { StageTransport } from './transport.js';

export type PipelineEvent =
  | { type: 'stage-failed'; stage: number; error: unknown }
  | { type: 'stage-replaced'; stage: number; replayedRows: number };

export interface PipelineSessionOptions {
  /** One transport per stage, first layers first. */
  stages: readonly StageTransport[];
  /** A fresh transport for the same layers as the failed stage; without it a failure ends the run. */
  replace?: (stage: number, error: unknown) => Promise<StageTransport>;
  /** Replacements (and replays) allowed over the session's life; default 3. */
  maxRecoveries?: number;
  onEvent?: (event: PipelineEvent) => void;
}

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  /** Seeds the sampling RNG (default 0); unused when greedy. */
  seed?: number;
  /** Token ids that end generation (yielded, then stop), such as EOS. */
  stop?: readonly number[];
}

/** Errors a replacement cannot cure: the frame or request itself is wrong. */
const PERMANENT = new Set(['IM_PIPELINE_FRAME', 'IM_VALIDATION', 'IM_GGUF_INVALID', 'IM_CONFIG_INVALID']);

function codeOf(err: unknown): string | undefined {
  return err instanceof ImError ? err.code : (err as { code?: unknown } | null)?.code as string | undefined;
}

export class PipelineSession {
  private readonly stages: StageTransport[];
  /** kept[i]: the frames stage i has taken since the last reset, in order. */
  private readonly kept: Uint8Array[][];
  private recoveries = 0;
  private pos = 0;

  constructor(private readonly opts: PipelineSessionOptions) {
    if (opts.stages.length === 0) throw new ImError('IM_VALIDATION', 'a pipeline needs at least one stage');
    this.stages = [...opts.stages];
    this.kept = this.stages.map(() => []);
  }

  /** Tokens processed since the last reset. */
  get position(): number {
    return this.pos;
  }

  /** Replacements and replays so far. */
  get recoveryCount(): number {
    return this.recoveries;
  }

  /** The current transports (replacements included). */
  get transports(): readonly StageTransport[] {
    return this.stages;
  }

  /** Empties every stage's cache and forgets the kept inputs. */
  async reset(): Promise<void> {
    for (let i = 0; i < this.stages.length; i++) {
      await this.stages[i]!.reset();
      this.kept[i] = [];
    }
    this.pos = 0;
  }

  /**
   * Runs tokens through the pipeline from the current position; resolves
   * with the logits of the last token, or of every token with allLogits
   * (one row of the vocabulary's size each).
   */
  async forward(tokens: readonly number[], allLogits = false): Promise<Float32Array[]> {
    if (tokens.length === 0) throw new ImError('IM_VALIDATION', 'nothing to forward: no tokens');
    for (const t of tokens) if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new ImError('IM_VALIDATION', `token id ${t} is not a u32`);
    let frame = encodeFrame({ kind: 'tokens', position: this.pos, tokens: Uint32Array.from(tokens), allLogits });
    for (let i = 0; i < this.stages.length; i++) frame = await this.call(i, frame);
    const out = decodeFrame(frame);
    if (out.kind !== 'logits') throw new ImError('IM_PIPELINE_FRAME', `the last stage answered a ${out.kind} frame, not logits: are the stages in order and complete?`);
    this.pos += tokens.length;
    const rows: Float32Array[] = [];
    for (let r = 0; r < out.count; r++) rows.push(out.logits.subarray(r * out.width, (r + 1) * out.width));
    return rows;
  }

  /** Teacher-forced logits: row i is the distribution after tokens[0..i], from a fresh state. */
  async logits(tokens: readonly number[]): Promise<Float32Array[]> {
    await this.reset();
    return this.forward(tokens, true);
  }

  /** Generates from a fresh state: yields each token as it is chosen. */
  async *generate(prompt: readonly number[], opts: GenerateOptions): AsyncGenerator<number> {
    await this.reset();
    const rng = new Rng(opts.seed ?? 0);
    if (opts.maxTokens <= 0) return;
    let logits = (await this.forward(prompt)).at(-1)!;
    for (let n = 0; ; n++) {
      const token = sampleToken(logits, opts, rng);
      yield token;
      if (n + 1 >= opts.maxTokens || opts.stop?.includes(token)) return;
      logits = (await this.forward([token]))[0]!;
    }
  }

  /** One frame through stage i, recovering the stage as often as allowed. */
  private async call(i: number, frame: Uint8Array): Promise<Uint8Array> {
    let replay = false;
    for (;;) {
      try {
        if (replay) {
          const rows = await this.replay(i);
          this.opts.onEvent?.({ type: 'stage-replaced', stage: i, replayedRows: rows });
          replay = false;
        }
        const out = await this.stages[i]!.forward(frame);
        this.kept[i]!.push(frame);
        return out;
      } catch (err) {
        const code = codeOf(err);
        if (code !== undefined && PERMANENT.has(code)) throw err;
        this.opts.onEvent?.({ type: 'stage-failed', stage: i, error: err });
        const lostCache = code === 'IM_PIPELINE_POSITION';
        if (this.recoveries >= (this.opts.maxRecoveries ?? 3) || (!lostCache && !this.opts.replace)) {
          throw new ImError('IM_SPLIT_STAGE_FAILED', `pipeline stage ${i} failed (${(err as Error).message}) and ${this.opts.replace ? 'the recovery budget is spent' : 'no replacement was offered'}`, { cause: err });
        }
        this.recoveries += 1;
        if (!lostCache) {
          const old = this.stages[i]!;
          await old.close?.().catch(() => undefined);
          try {
            this.stages[i] = await this.opts.replace!(i, err);
          } catch (cause) {
            throw new ImError('IM_SPLIT_STAGE_FAILED', `pipeline stage ${i} failed (${(err as Error).message}) and no replacement could be had: ${(cause as Error).message}`, { cause });
          }
        }
        replay = true;
      }
    }
  }

  /** Resets stage i and feeds it everything it had taken, as one frame; the kept list becomes that frame. */
  private async replay(i: number): Promise<number> {
    const t = this.stages[i]!;
    await t.reset();
    const kept = this.kept[i]!;
    if (kept.length === 0) return 0;
    const merged = encodeFrame(mergeFrames(kept.map(decodeFrame)));
    await t.forward(merged);
    this.kept[i] = [merged];
    return rowsOf(merged);
  }
}

function rowsOf(bytes: Uint8Array): number {
  const f = decodeFrame(bytes);
  return f.kind === 'tokens' ? f.tokens.length : f.count;
}

/** Consecutive input frames as one, from the first one's position; logits of the last row only. */
export function mergeFrames(frames: readonly Frame[]): Frame {
  const first = frames[0];
  if (!first || first.kind === 'logits') throw new ImError('IM_INTERNAL', 'mergeFrames: no input frames');
  let next = first.position;
  const check = (f: Frame, rows: number): void => {
    if (f.kind !== first.kind || f.position !== next) throw new ImError('IM_INTERNAL', `mergeFrames: frame at ${f.position} (${f.kind}) does not follow ${next} (${first.kind})`);
    next += rows;
  };
  if (first.kind === 'tokens') {
    const parts = frames.map((f) => {
      if (f.kind !== 'tokens') throw new ImError('IM_INTERNAL', 'mergeFrames: mixed kinds');
      check(f, f.tokens.length);
      return f.tokens;
    });
    const tokens = new Uint32Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) { tokens.set(p, at); at += p.length; }
    return { kind: 'tokens', position: first.position, tokens, allLogits: false };
  }
  const parts = frames.map((f) => {
    if (f.kind !== 'hidden' || f.width !== first.width) throw new ImError('IM_INTERNAL', 'mergeFrames: mixed kinds or widths');
    check(f, f.count);
    return f.hidden;
  });
  const hidden = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) { hidden.set(p, at); at += p.length; }
  return { kind: 'hidden', position: first.position, count: hidden.length / first.width, width: first.width, hidden, allLogits: false };
}
