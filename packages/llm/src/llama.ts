/**
 * GGUF models run in-process by llama.cpp, through node-llama-cpp.
 *
 * node-llama-cpp is an optional dependency: it is imported when a backend is
 * loaded, so the rest of the package works without it.
 *
 * Determinism: every request starts from an empty context (no prefix reuse
 * from the previous request), contexts shift never (the answer is cut at the
 * context size instead), no repeat penalty unless the request asks for one,
 * and requests to one model run one at a time. At temperature 0 the same
 * request on the same build and machine gives the same tokens; with a seed,
 * the same holds for sampled answers.
 *
 * Generation (completions, and chat in the plain format) drives
 * `LlamaContextSequence.evaluate()` token by token, so the exact prompt and
 * answer token ids are known: usage counts them, streaming sends them as they
 * come, and score() can re-check them. Chat with a template goes through
 * `LlamaChat` (the model's own template and function calling).
 *
 * score() is one `LlamaContextSequence.controlledEvaluate()` pass over prompt
 * + continuation, asking at each continuation position for the logit of the
 * token that follows, the top logit and the total logit weight
 * (Σ exp(logit − max)): log P(token) = logit − max − ln(total). The sampler
 * there is greedy with no penalties, so these are the model's raw
 * probabilities, the ones temperature-0 generation takes the argmax of.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, extname, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { ImError } from '@idlemesh/protocol';
import type { ChatHistoryItem, ChatModelFunctions, ChatWrapper, ControlledEvaluateInputItem, Llama, LlamaContext, LlamaContextSequence, LlamaModel, SequenceEvaluateOptions, Token } from 'node-llama-cpp';
import { MODEL_ID_PATTERN, sizeClassOf, type Chunk, type LlmBackend, type ModelInfo, type ScoreRequest, type ScoreResult } from './backend.js';
import { Channel } from './channel.js';
import { chatMaxTokens, completionPrompt, LEGACY_DEFAULT_MAX_TOKENS, stopList, unsupported, type ChatCompletionRequest, type ChatMessage, type CompletionRequest, type FinishReason } from './openai.js';
import { PLAIN_STOPS, renderPlainChat, toChatHistory, toFunctions } from './prompt.js';
import { ModelQueue } from './queue.js';
import { TextStream } from './text-stream.js';

type NodeLlamaCpp = typeof import('node-llama-cpp');

/** Context size when none is given: the model's training context, at most this. */
export const DEFAULT_CONTEXT_SIZE = 4096;

const ModelSpec = z.strictObject({
  path: z.string().min(1),
  name: z.string().regex(MODEL_ID_PATTERN, 'letters, digits and . _ : / - (1-200)').optional(),
  chatFormat: z.string().min(1).optional().describe("'auto' (the GGUF's template, else plain), 'plain', or a node-llama-cpp chat wrapper name such as 'chatML' or 'llama3.1'"),
  contextSize: z.int().min(16).max(10_000_000).optional(),
});
export type LlamaModelSpec = z.infer<typeof ModelSpec>;

const LlamaCppOptionsSchema = z.strictObject({
  models: z.array(z.union([z.string().min(1), ModelSpec])).min(1, 'at least one model'),
  /** 'auto': offload to a GPU when node-llama-cpp finds one (as many layers as fit in free VRAM); false: CPU only. */
  gpu: z.union([z.literal('auto'), z.literal(false)]).optional(),
  /** CPU threads per model; default defaultThreads(): about one per billion parameters, at most the math cores. */
  threads: z.int().min(1).max(1024).optional(),
  contextSize: z.int().min(16).max(10_000_000).optional(),
});
export type LlamaCppOptions = z.input<typeof LlamaCppOptionsSchema>;

export interface ResolvedLlamaCppOptions {
  models: LlamaModelSpec[];
  gpu: 'auto' | false;
  threads: number | undefined;
  contextSize: number | undefined;
}

/** Defaults and validation in one place; a bad option is IM_CONFIG_INVALID naming it. */
export function resolveLlamaCppOptions(input: LlamaCppOptions): ResolvedLlamaCppOptions {
  const r = LlamaCppOptionsSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new ImError('IM_CONFIG_INVALID', `llama.cpp backend: ${i?.path.join('.') || 'options'}: ${i?.message ?? 'invalid'}`, { details: r.error.issues });
  }
  const o = r.data;
  return {
    models: o.models.map((m) => (typeof m === 'string' ? { path: m } : m)),
    gpu: o.gpu ?? 'auto',
    threads: o.threads,
    contextSize: o.contextSize,
  };
}

interface Loaded {
  info: ModelInfo;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  /** The chat template; undefined for the plain format. */
  wrapper: ChatWrapper | undefined;
  /** Tokens put before every prompt (BOS), as llama.cpp's own tokenizer does. */
  prefix: Token[];
  vocabularySize: number;
}

interface Sampling {
  temperature: number;
  topP: number;
  seed: number | undefined;
  frequencyPenalty: number;
  presencePenalty: number;
}

const hashes = new Map<string, Promise<string>>();

/** sha256 of a file, once per path, size and modification time in this process (GGUF files are gigabytes). */
export function fileSha256(path: string, size: number, mtimeMs: number): Promise<string> {
  const key = `${path}\0${size}\0${mtimeMs}`;
  let h = hashes.get(key);
  if (!h) {
    h = new Promise<string>((resolve, reject) => {
      const hash = createHash('sha256');
      createReadStream(path)
        .on('data', (d) => hash.update(d))
        .on('error', reject)
        .on('end', () => resolve(hash.digest('hex')));
    });
    hashes.set(key, h);
    h.catch(() => hashes.delete(key));
  }
  return h;
}

async function importNodeLlamaCpp(): Promise<NodeLlamaCpp> {
  try {
    return await import('node-llama-cpp');
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `node-llama-cpp is not available (${(err as Error).message}); it is an optional dependency of @idlemesh/llm: install it to serve GGUF models`, { cause: err });
  }
}

export class LlamaCppBackend implements LlmBackend {
  /** One request at a time per model: a model has one context sequence. */
  private readonly lock = new ModelQueue(Number.POSITIVE_INFINITY);
  private closed = false;

  private constructor(
    private readonly lib: NodeLlamaCpp,
    private readonly llama: Llama,
    private readonly loaded: ReadonlyMap<string, Loaded>,
  ) {}

  /** Loads every model (hashing each file once); fails as a whole if one cannot be loaded. */
  static async load(input: LlamaCppOptions): Promise<LlamaCppBackend> {
    const opts = resolveLlamaCppOptions(input);
    const lib = await importNodeLlamaCpp();
    const llama = await lib.getLlama({ build: 'never', gpu: opts.gpu === false ? false : 'auto', logLevel: lib.LlamaLogLevel.error });
    const loaded = new Map<string, Loaded>();
    try {
      // A GPU that reports no VRAM (or none at all) means CPU: offloading would only fail.
      const vram = llama.gpu === false ? undefined : await llama.getVramState();
      const useGpu = vram !== undefined && vram.total > 0;
      for (const spec of opts.models) {
        const m = await loadOne(lib, llama, spec, opts, useGpu);
        if (loaded.has(m.info.id)) {
          await m.context.dispose();
          await m.model.dispose();
          throw new ImError('IM_CONFIG_INVALID', `two models are named ${m.info.id}; give one another name`);
        }
        loaded.set(m.info.id, m);
      }
    } catch (err) {
      for (const m of loaded.values()) {
        await m.context.dispose();
        await m.model.dispose();
      }
      await llama.dispose();
      throw err;
    }
    return new LlamaCppBackend(lib, llama, loaded);
  }

  async models(): Promise<ModelInfo[]> {
    return [...this.loaded.values()].map((m) => ({ ...m.info }));
  }

  async *chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncGenerator<Chunk> {
    const m = this.get(req.model);
    if (req.response_format && req.response_format.type !== 'text') {
      throw unsupported(`response_format ${req.response_format.type} is not supported by the llama.cpp backend`, 'response_format');
    }
    const release = await this.lock.acquire(m.info.id, signal);
    try {
      const sampling = samplingOf(req);
      const stops = stopList(req.stop);
      if (m.wrapper) {
        yield* this.templateChat(m, m.wrapper, req, sampling, stops, signal);
      } else {
        const prompt = promptTokens(m, renderPlainChat(req.messages), 'messages');
        yield* generate(m, prompt, { maxTokens: chatMaxTokens(req), sampling, stops: [...stops, ...PLAIN_STOPS], trimStart: true }, signal);
      }
    } finally {
      release();
    }
  }

  async *complete(req: CompletionRequest, signal?: AbortSignal): AsyncGenerator<Chunk> {
    const m = this.get(req.model);
    const release = await this.lock.acquire(m.info.id, signal);
    try {
      const prompt = promptTokens(m, completionPrompt(req), 'prompt');
      yield* generate(m, prompt, { maxTokens: req.max_tokens ?? LEGACY_DEFAULT_MAX_TOKENS, sampling: samplingOf(req), stops: stopList(req.stop), trimStart: false }, signal);
    } finally {
      release();
    }
  }

  async score(req: ScoreRequest, signal?: AbortSignal): Promise<ScoreResult> {
    const m = this.get(req.model);
    const release = await this.lock.acquire(m.info.id, signal);
    try {
      const prefix = typeof req.prompt === 'string' ? promptTokens(m, req.prompt, 'prompt') : this.chatPromptTokens(m, req.prompt);
      // Text continues the prompt: no dummy leading space (pass token ids to score exactly what was generated).
      const cont = typeof req.continuation === 'string' ? m.model.tokenize(req.continuation, false, 'trimLeadingSpace') : [...req.continuation] as Token[];
      for (const t of cont) {
        if (!Number.isInteger(t) || t < 0 || t >= m.vocabularySize) throw new ImError('IM_VALIDATION', `continuation token ${t} is not in the model's vocabulary (0..${m.vocabularySize - 1})`);
      }
      if (prefix.length === 0) throw new ImError('IM_VALIDATION', 'the prompt is empty and the model adds no BOS token: nothing to score the first token against');
      if (prefix.length + cont.length > m.info.contextSize) throw contextExceeded(prefix.length + cont.length, m.info.contextSize, 'continuation');
      const texts = cont.map((_, i) => m.model.detokenize(cont.slice(i, i + 1), false, [...prefix, ...cont.slice(0, i)].slice(-8)));
      if (cont.length === 0) return { tokenLogprobs: [], tokens: [], tokenTexts: [] };
      signal?.throwIfAborted();
      const all = [...prefix, ...cont];
      const first = prefix.length - 1;
      const input: ControlledEvaluateInputItem[] = all.map((t, i) => {
        const next = all[i + 1];
        if (i < first || next === undefined) return t;
        return [t, { generateNext: { logits: { filter: { tokens: [next], includeTop: 1 } }, totalLogitWeight: true } }];
      });
      await m.sequence.clearHistory();
      const out = await m.sequence.controlledEvaluate(input);
      signal?.throwIfAborted();
      const topLogprobs: number[] = [];
      const tokenLogprobs = cont.map((token, k) => {
        const next = out[first + k]?.next;
        // includeTop: 1 puts the highest logit among the returned ones; the weight is Σ exp(logit − top).
        const top = next?.logits ? Math.max(...next.logits.values()) : undefined;
        const logit = next?.logits?.get(token);
        if (next?.totalLogitWeight === undefined || top === undefined || logit === undefined) throw new ImError('IM_INTERNAL', `node-llama-cpp returned no logits for continuation token ${k}`);
        topLogprobs.push(-Math.log(next.totalLogitWeight));
        return logit - top - Math.log(next.totalLogitWeight);
      });
      return { tokenLogprobs, topLogprobs, tokens: [...cont], tokenTexts: texts };
    } finally {
      release();
    }
  }

  /** Refuses new requests, lets those already running or queued finish (abort them to hurry), then frees the models. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.loaded.values()) {
      // Freeing a model under a running generation would crash the process: wait for its turn.
      const release = await this.lock.acquire(m.info.id);
      await m.context.dispose();
      await m.model.dispose();
      release();
    }
    await this.llama.dispose();
  }

  private get(id: string): Loaded {
    if (this.closed) throw new ImError('IM_UNAVAILABLE', 'the llama.cpp backend is closed');
    const m = this.loaded.get(id);
    if (!m) throw new ImError('IM_NOT_FOUND', `The model "${id}" is not loaded here; loaded: ${[...this.loaded.keys()].join(', ')}`, { details: { param: 'model' } });
    return m;
  }

  private chatPromptTokens(m: Loaded, messages: readonly ChatMessage[]): Token[] {
    if (!m.wrapper) return promptTokens(m, renderPlainChat(messages), 'messages');
    return renderTemplate(m, m.wrapper, toChatHistory(messages), undefined);
  }

  /** Chat through the model's template (LlamaChat): its callbacks feed a channel the caller iterates. */
  private async *templateChat(m: Loaded, wrapper: ChatWrapper, req: ChatCompletionRequest, s: Sampling, stops: string[], signal: AbortSignal | undefined): AsyncGenerator<Chunk> {
    const history = toChatHistory(req.messages);
    const functions = toFunctions(req.tools, req.tool_choice);
    const promptLength = renderTemplate(m, wrapper, history, functions).length;
    const room = m.info.contextSize - promptLength;
    if (room <= 0) throw contextExceeded(promptLength, m.info.contextSize, 'messages');
    const maxTokens = Math.min(chatMaxTokens(req) ?? room, room);
    await m.sequence.clearHistory();
    const chat = new this.lib.LlamaChat({ contextSequence: m.sequence, chatWrapper: wrapper });
    // Stops LlamaChat when the caller aborts or stops iterating.
    const stop = new AbortController();
    const out = new Channel<Chunk>();
    const outputBefore = m.sequence.tokenMeter.usedOutputTokens;
    const done = chat.generateResponse(history, {
      onTextChunk: (text) => out.push({ type: 'text', text }),
      signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
      maxTokens,
      ...llamaChatSampling(s),
      trimWhitespaceSuffix: false,
      ...(stops.length > 0 ? { customStopTriggers: stops } : {}),
      ...(functions ? { functions, documentFunctionParams: true } : {}),
    }).then((res) => {
      const calls = res.functionCalls ?? [];
      calls.forEach((c, index) => out.push({ type: 'tool_call', index, id: toolCallId(), name: c.functionName, arguments: JSON.stringify(c.params ?? {}) }));
      const reason: FinishReason = calls.length > 0 ? 'tool_calls' : res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop';
      out.push({ type: 'finish', reason });
      out.push({ type: 'usage', usage: { promptTokens: promptLength, completionTokens: m.sequence.tokenMeter.usedOutputTokens - outputBefore } });
      out.end();
    }, (err: unknown) => out.end(err));
    try {
      yield* out;
    } finally {
      stop.abort();
      await done;
      chat.dispose();
    }
  }
}

async function loadOne(lib: NodeLlamaCpp, llama: Llama, spec: LlamaModelSpec, opts: ResolvedLlamaCppOptions, useGpu: boolean): Promise<Loaded> {
  const path = resolvePath(spec.path);
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `cannot read model file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  if (!st.isFile()) throw new ImError('IM_CONFIG_INVALID', `model path ${path} is not a file`);
  const id = spec.name ?? basename(path, extname(path));
  if (!MODEL_ID_PATTERN.test(id)) throw new ImError('IM_CONFIG_INVALID', `model id ${JSON.stringify(id)} (from the file name) has characters other than letters, digits and . _ : / -; give it a name`);
  const hash = await fileSha256(path, st.size, st.mtimeMs);
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: path, gpuLayers: useGpu ? 'auto' : 0 });
  } catch (err) {
    throw new ImError('IM_CONFIG_INVALID', `cannot load ${path} as a GGUF model: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parameters = (model.fileInfo.tensorInfo ?? []).reduce((sum, t) => sum + t.dimensions.reduce<number>((p, d) => p * Number(d), 1), 0);
    const contextSize = spec.contextSize ?? opts.contextSize ?? Math.min(model.trainContextSize, DEFAULT_CONTEXT_SIZE);
    const threads = opts.threads ?? defaultThreads(llama.cpuMathCores, parameters);
    const context = await model.createContext({ contextSize, sequences: 1, threads });
    const wrapper = chatWrapperFor(lib, model, spec.chatFormat ?? 'auto');
    const vocabularySize = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? [...model.iterateAllTokens()].length;
    const bos = model.tokens.bos;
    const licence = (model.fileInfo.metadata.general as { license?: unknown } | undefined)?.license;
    const info: ModelInfo = {
      id,
      hash,
      // Without tensor shapes, guess from the file at ~4 bits per weight (the common quantisations).
      sizeClass: sizeClassOf(parameters > 0 ? parameters : st.size * 2),
      ...(parameters > 0 ? { parameters } : {}),
      bytes: st.size,
      contextSize: context.contextSize,
      device: model.gpuLayers > 0 ? 'gpu' : 'cpu',
      backend: 'llama.cpp',
      ...(typeof licence === 'string' && licence.trim() !== '' ? { licence: licence.trim() } : {}),
    };
    return { info, model, context, sequence: context.getSequence(), wrapper, prefix: model.tokens.shouldPrependBosToken && bos !== null ? [bos] : [], vocabularySize };
  } catch (err) {
    await model.dispose();
    throw err instanceof ImError ? err : new ImError('IM_CONFIG_INVALID', `cannot set up ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * About one thread per billion parameters, at most the math cores: on small
 * models, keeping llama.cpp's spinning worker threads in step costs more than
 * the arithmetic they share (the 0.5 M-parameter fixture on a busy 2-core
 * machine: 1 thread ~1000 tokens/s, 2 threads ~85, 4 threads ~5).
 */
export function defaultThreads(mathCores: number, parameters: number): number {
  return Math.max(1, Math.min(mathCores, Math.ceil(parameters / 1e9)));
}

/** 'auto': the GGUF's own template when it has one, else plain; 'plain'; or a named node-llama-cpp wrapper. */
function chatWrapperFor(lib: NodeLlamaCpp, model: LlamaModel, format: string): ChatWrapper | undefined {
  if (format === 'plain') return undefined;
  if (format === 'auto') {
    const template = model.fileInfo.metadata.tokenizer?.chat_template;
    return typeof template === 'string' && template.length > 0 ? lib.resolveChatWrapper(model) : undefined;
  }
  const names: readonly string[] = lib.specializedChatWrapperTypeNames;
  if (!names.includes(format)) {
    throw new ImError('IM_CONFIG_INVALID', `unknown chat format ${JSON.stringify(format)}: use auto, plain or one of ${names.join(', ')}`);
  }
  const w = lib.resolveChatWrapper({ type: format as (typeof lib.specializedChatWrapperTypeNames)[number], fileInfo: model.fileInfo, tokenizer: model.tokenizer });
  if (!w) throw new ImError('IM_CONFIG_INVALID', `chat format ${format} does not fit this model`);
  return w;
}

/** BOS (when the model wants it) + the text with the tokenizer's usual leading space, as llama.cpp tokenizes a prompt. */
function promptTokens(m: Loaded, text: string, param: string): Token[] {
  const tokens = [...m.prefix, ...m.model.tokenize(text)];
  if (tokens.length === 0) throw new ImError('IM_VALIDATION', `the ${param} is empty`, { details: { param } });
  if (tokens.length >= m.info.contextSize) throw contextExceeded(tokens.length, m.info.contextSize, param);
  return tokens;
}

function renderTemplate(m: Loaded, wrapper: ChatWrapper, history: ChatHistoryItem[], functions: ChatModelFunctions | undefined): Token[] {
  const state = wrapper.generateContextState({ chatHistory: [...history, { type: 'model', response: [] }], ...(functions ? { availableFunctions: functions, documentFunctionParams: true } : {}) });
  return state.contextText.tokenize(m.model.tokenizer);
}

function contextExceeded(tokens: number, contextSize: number, param: string): ImError {
  return new ImError('IM_VALIDATION', `This model's context is ${contextSize} tokens and the ${param} needs ${tokens}; shorten it.`, { details: { param, openai: { code: 'context_length_exceeded', param } } });
}

/** OpenAI's defaults: temperature 1, top_p 1, no penalties. */
function samplingOf(req: ChatCompletionRequest | CompletionRequest): Sampling {
  return {
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    seed: req.seed ?? undefined,
    frequencyPenalty: req.frequency_penalty ?? 0,
    presencePenalty: req.presence_penalty ?? 0,
  };
}

/** Sampling options for evaluate(); top_p and the seed matter only when sampling (temperature > 0). */
function evaluateOptions(s: Sampling, generated: readonly Token[]): SequenceEvaluateOptions {
  const o: SequenceEvaluateOptions = { temperature: s.temperature };
  if (s.temperature > 0) {
    if (s.topP < 1) o.topP = s.topP;
    if (s.seed !== undefined) o.seed = s.seed;
  }
  if (s.frequencyPenalty !== 0 || s.presencePenalty !== 0) {
    o.repeatPenalty = { punishTokens: () => [...generated], penalty: 1, frequencyPenalty: s.frequencyPenalty, presencePenalty: s.presencePenalty };
  }
  return o;
}

function llamaChatSampling(s: Sampling): { temperature: number; topP?: number; seed?: number; repeatPenalty: false | { penalty: number; frequencyPenalty: number; presencePenalty: number } } {
  return {
    temperature: s.temperature,
    ...(s.temperature > 0 && s.topP < 1 ? { topP: s.topP } : {}),
    ...(s.temperature > 0 && s.seed !== undefined ? { seed: s.seed } : {}),
    repeatPenalty: s.frequencyPenalty !== 0 || s.presencePenalty !== 0 ? { penalty: 1, frequencyPenalty: s.frequencyPenalty, presencePenalty: s.presencePenalty } : false,
  };
}

interface Generation {
  maxTokens: number | undefined;
  sampling: Sampling;
  stops: string[];
  trimStart: boolean;
}

/** Token-by-token generation from an empty context; see the file comment. */
async function* generate(m: Loaded, prompt: Token[], g: Generation, signal: AbortSignal | undefined): AsyncGenerator<Chunk> {
  const room = m.info.contextSize - prompt.length;
  const maxTokens = Math.min(g.maxTokens ?? room, room);
  const text = new TextStream((t, special, last) => m.model.detokenize(t as Token[], special, last as Token[]), prompt, g.stops, g.trimStart);
  const generated: Token[] = [];
  let finish: FinishReason = 'length';
  if (maxTokens > 0) {
    signal?.throwIfAborted();
    await m.sequence.clearHistory();
    // Ends by itself at an end-of-generation token (not yielded): a natural stop.
    finish = 'stop';
    for await (const token of m.sequence.evaluate(prompt, evaluateOptions(g.sampling, generated))) {
      signal?.throwIfAborted();
      generated.push(token);
      yield { type: 'text', text: text.push(token), tokens: [token] };
      if (text.stopped) break;
      if (generated.length >= maxTokens) {
        finish = 'length';
        break;
      }
    }
  }
  const rest = text.flush();
  if (rest) yield { type: 'text', text: rest, tokens: [] };
  yield { type: 'finish', reason: finish };
  yield { type: 'usage', usage: { promptTokens: prompt.length, completionTokens: generated.length } };
}

function toolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}
