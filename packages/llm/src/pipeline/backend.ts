/**
 * A PipelineSession as an LlmBackend: what the head of a split group runs a
 * request on, and what a test runs unsplit (one local stage) to compare.
 * Both go through the same code, so "split equals unsplit" compares only
 * where the layers ran.
 *
 * Chat requests use the plain chat format (prompt.ts): the pipeline does not
 * apply a GGUF chat template. Sampling: greedy at temperature 0, otherwise a
 * seeded draw (OpenAI's `seed`, default 0) over the whole vocabulary; top_p
 * and penalties are not applied. Generation ends at EOS, a stop string,
 * max_tokens or the context.
 */
import { ImError } from '@idlemesh/protocol';
import type { Chunk, LlmBackend, ModelInfo, ScoreRequest, ScoreResult } from '../backend.js';
import { chatMaxTokens, completionPrompt, stopList, type ChatCompletionRequest, type CompletionRequest, type FinishReason } from '../openai.js';
import { PLAIN_STOPS, renderPlainChat } from '../prompt.js';
import { TextStream } from '../text-stream.js';
import type { PipelineSession } from './session.js';
import type { SpmTokenizer } from './tokenizer.js';

export interface PipelineBackendOptions {
  info: ModelInfo;
  tokenizer: SpmTokenizer;
  /** The pipeline a request runs on (reset at the start of each generation). */
  session: PipelineSession;
}

export class PipelineBackend implements LlmBackend {
  constructor(private readonly opts: PipelineBackendOptions) {}

  async models(): Promise<ModelInfo[]> {
    return [this.opts.info];
  }

  chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    const prompt = this.prompt(renderPlainChat(req.messages), 'messages');
    return this.generate(prompt, req, chatMaxTokens(req), [...PLAIN_STOPS, ...stopList(req.stop)], true, signal);
  }

  complete(req: CompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    const prompt = this.prompt(completionPrompt(req), 'prompt');
    return this.generate(prompt, req, req.max_tokens ?? 16, stopList(req.stop), false, signal);
  }

  async score(req: ScoreRequest, signal?: AbortSignal): Promise<ScoreResult> {
    const t = this.opts.tokenizer;
    const prompt = this.prompt(typeof req.prompt === 'string' ? req.prompt : renderPlainChat(req.prompt), 'prompt');
    const cont = typeof req.continuation === 'string' ? t.encode(req.continuation, false) : [...req.continuation];
    if (cont.length === 0) return { tokenLogprobs: [], tokens: [], tokenTexts: [] };
    signal?.throwIfAborted();
    const rows = await this.opts.session.logits([...prompt, ...cont]);
    const tokenLogprobs = cont.map((tok, i) => logSoftmaxAt(rows[prompt.length - 1 + i]!, tok));
    return { tokenLogprobs, tokens: cont, tokenTexts: cont.map((tok, i) => t.decode([tok], false, [...prompt, ...cont.slice(0, i)])) };
  }

  async close(): Promise<void> {
    for (const s of this.opts.session.transports) await s.close?.();
  }

  private prompt(text: string, param: string): number[] {
    const tokens = this.opts.tokenizer.encode(text);
    if (tokens.length === 0) throw new ImError('IM_VALIDATION', `the ${param} is empty`);
    const ctx = this.opts.info.contextSize;
    if (tokens.length >= ctx) throw new ImError('IM_VALIDATION', `This model's context is ${ctx} tokens and the ${param} needs ${tokens.length}; shorten it.`, { details: { param, openai: { code: 'context_length_exceeded', param } } });
    return tokens;
  }

  private async *generate(prompt: number[], req: ChatCompletionRequest | CompletionRequest, max: number | null | undefined, stops: string[], trimStart: boolean, signal: AbortSignal | undefined): AsyncGenerator<Chunk> {
    const t = this.opts.tokenizer;
    const room = this.opts.info.contextSize - prompt.length;
    const maxTokens = Math.min(max ?? room, room);
    const text = new TextStream((tokens, special, last) => t.decode(tokens, special, last), prompt, stops, trimStart);
    let generated = 0;
    let finish: FinishReason = 'length';
    if (maxTokens > 0) {
      signal?.throwIfAborted();
      const eos = t.eos;
      for await (const token of this.opts.session.generate(prompt, { maxTokens, temperature: req.temperature ?? 1, seed: req.seed ?? 0, ...(eos === undefined ? {} : { stop: [eos] }) })) {
        signal?.throwIfAborted();
        if (token === eos) {
          finish = 'stop';
          break;
        }
        generated++;
        yield { type: 'text', text: text.push(token), tokens: [token] };
        if (text.stopped) {
          finish = 'stop';
          break;
        }
      }
    }
    const rest = text.flush();
    if (rest) yield { type: 'text', text: rest, tokens: [] };
    yield { type: 'finish', reason: finish };
    yield { type: 'usage', usage: { promptTokens: prompt.length, completionTokens: generated } };
  }
}

function logSoftmaxAt(row: Float32Array, token: number): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[token]! - max - Math.log(sum);
}
