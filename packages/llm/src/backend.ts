/**
 * What an inference backend is to the rest of idlemesh: the models it
 * serves, generation as a stream of deltas, and teacher-forced scoring.
 * The HTTP server (server.ts) and the agent drive every backend through this
 * interface only, so a new engine plugs in by implementing it.
 */
import { createHash } from 'node:crypto';
import type { ModelOffer, ModelSizeClass } from '@idlemesh/protocol';
import type { ChatCompletionRequest, ChatMessage, CompletionRequest, FinishReason } from './openai.js';

export interface ModelInfo {
  /** What clients put in `model`. */
  id: string;
  /** sha256 (hex) of the model file; backends without a file give the sha256 of the id. */
  hash: string;
  sizeClass: ModelSizeClass;
  /** Parameter count, when the backend can tell. */
  parameters?: number;
  /** Size of the model file in bytes, when there is one. */
  bytes?: number;
  /** Tokens of prompt plus completion one request may use. */
  contextSize: number;
  /** Where the weights run: `gpu` when any layer is offloaded to a GPU. */
  device: 'gpu' | 'cpu';
  backend: 'llama.cpp' | 'openai';
  /** The licence the model file states (GGUF `general.license`), when it states one. */
  licence?: string;
}

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * One step of a generation. A backend yields text and tool-call deltas in
 * order, then exactly one `finish`, then one `usage` (counted in the model's
 * own tokens).
 */
export type Chunk =
  /** Generated text; `tokens` are the model's token ids behind it when the backend knows them (text may be '' while a multi-token character or a possible stop string is held back). */
  | { type: 'text'; text: string; tokens?: number[] }
  /** A tool call: the first delta of a call carries its id and name, later ones more of the JSON arguments. */
  | { type: 'tool_call'; index: number; id?: string; name?: string; arguments?: string }
  | { type: 'finish'; reason: FinishReason }
  | { type: 'usage'; usage: TokenUsage };

export interface ScoreRequest {
  model: string;
  /** Raw text (as /v1/completions takes it) or chat messages, rendered as chat() renders them. */
  prompt: string | readonly ChatMessage[];
  /** The continuation to score: text (tokenised by the model) or the model's token ids. */
  continuation: string | readonly number[];
}

export interface ScoreResult {
  /** log P(token | prompt, the continuation before it) for each continuation token, natural log. */
  tokenLogprobs: number[];
  /** log P of the most likely token at each continuation position (so a greedy answer has tokenLogprobs = topLogprobs), when the backend knows it. */
  topLogprobs?: number[];
  /** The continuation's token ids, when the backend knows them. */
  tokens?: number[];
  /** Each continuation token as text, when the backend knows it. */
  tokenTexts?: string[];
}

export interface LlmBackend {
  /** The models served now. */
  models(): Promise<ModelInfo[]>;
  /** A chat completion as deltas; aborting the signal stops the generation (the iterator then throws the signal's reason). */
  chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk>;
  /** A legacy text completion, likewise. */
  complete(req: CompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk>;
  /**
   * Teacher-forced log-probabilities of a given continuation: what the model
   * thinks of text someone claims it produced. A referee re-scores a claimed
   * greedy (temperature 0) answer: every token should be the most likely one.
   */
  score(req: ScoreRequest, signal?: AbortSignal): Promise<ScoreResult>;
  /** Frees the models and any connections. */
  close(): Promise<void>;
}

/**
 * Size class by parameter count, the unit effort and price are weighted by
 * (protocol SIZE_CLASS_WEIGHT): up to 2 B `xs`, 5 B `s`, 15 B `m`, 40 B `l`,
 * above `xl`. The bounds fall between the common sizes (0.5/1.5 B, 3-4 B,
 * 7-14 B, 32 B, 70 B) so a family's variants do not straddle a bound.
 */
export function sizeClassOf(parameters: number): ModelSizeClass {
  const b = parameters / 1e9;
  if (b <= 2) return 'xs';
  if (b <= 5) return 's';
  if (b <= 15) return 'm';
  if (b <= 40) return 'l';
  return 'xl';
}

/** Parameters named in a model id such as `qwen2.5-coder:7b` or `Llama-3.2-1B-Instruct`; undefined when none is. */
export function parametersFromName(id: string): number | undefined {
  const m = /(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])/i.exec(id);
  if (!m) return undefined;
  return Number(m[1]) * (m[2]!.toLowerCase() === 'b' ? 1e9 : 1e6);
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What an agent advertises to a coordinator for this model (protocol ModelOffer). */
export function toModelOffer(m: ModelInfo, tokensPerSec?: number): ModelOffer {
  return {
    id: m.id, hash: m.hash, sizeClass: m.sizeClass, contextSize: m.contextSize, device: m.device, backend: m.backend,
    ...(tokensPerSec === undefined ? {} : { tokensPerSec }),
    ...(m.licence === undefined ? {} : { licence: m.licence.slice(0, 200) }),
  };
}

/** Model ids as the protocol's ModelOffer accepts them. */
export const MODEL_ID_PATTERN = /^[\w.:/-]{1,200}$/;
