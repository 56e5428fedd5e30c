/**
 * A backend's deltas as OpenAI responses: the stream chunks a client reads
 * (`chat.completion.chunk` / `text_completion`, then the usage chunk when
 * asked) and the whole response at the end. The HTTP server and the agent
 * both run requests through these, so what a node streams to the mesh and
 * what serve-model answers are the same bytes.
 */
import { randomBytes } from 'node:crypto';
import type { LlmBackend, TokenUsage } from './backend.js';
import {
  unsupported,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionRequest,
  type CompletionRequest,
  type FinishReason,
  type TextCompletion,
  type ToolCall,
  type Usage,
} from './openai.js';

export interface RunOptions<C> {
  signal?: AbortSignal;
  /** Each stream chunk in order, only for `stream: true`; awaited, so a slow reader slows generation down. */
  onChunk?: (chunk: C) => void | Promise<void>;
  /** Response id (default chatcmpl-… / cmpl-…). */
  id?: string;
  /** Unix seconds (default now). */
  created?: number;
}

/** What this server cannot answer, refused before any work: a client asking for logprobs relies on getting them. */
export function refuseUnsupported(req: ChatCompletionRequest | CompletionRequest): void {
  const asked = 'messages' in req
    ? (req as ChatCompletionRequest).logprobs === true || ((req as ChatCompletionRequest).top_logprobs ?? 0) > 0
    : (req as CompletionRequest).logprobs !== null && (req as CompletionRequest).logprobs !== undefined;
  if (asked) throw unsupported('logprobs are not returned by this server; verification uses teacher-forced scoring instead (see docs/llm.md)', 'logprobs');
}

/** Runs a chat request to its end; streams chunks through onChunk when req.stream, and returns the whole response either way. */
export async function runChatCompletion(backend: LlmBackend, req: ChatCompletionRequest, opts: RunOptions<ChatCompletionChunk> = {}): Promise<ChatCompletion> {
  refuseUnsupported(req);
  const id = opts.id ?? `chatcmpl-${randomId()}`;
  const created = opts.created ?? nowSec();
  const streaming = req.stream === true && opts.onChunk !== undefined;
  const includeUsage = req.stream_options?.include_usage === true;
  const emit = async (delta: ChatCompletionChunk['choices'][number]['delta'], finishReason: FinishReason | null): Promise<void> => {
    if (!streaming) return;
    await opts.onChunk?.({ id, object: 'chat.completion.chunk', created, model: req.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }], ...(includeUsage ? { usage: null } : {}) });
  };
  let text = '';
  const toolCalls: ToolCall[] = [];
  let finish: FinishReason | undefined;
  let usage: TokenUsage | undefined;
  let started = false;
  for await (const c of backend.chat(req, opts.signal)) {
    // The role comes first, with the first real delta: a backend that fails before producing anything fails the request, not the stream.
    if (!started && (c.type === 'text' ? c.text !== '' : c.type !== 'usage')) {
      started = true;
      await emit({ role: 'assistant', content: '' }, null);
    }
    switch (c.type) {
      case 'text':
        if (c.text === '') break;
        text += c.text;
        await emit({ content: c.text }, null);
        break;
      case 'tool_call': {
        // OpenAI's first delta of a call carries its id, type and name; later ones only more arguments.
        const isNew = toolCalls[c.index] === undefined;
        const call = (toolCalls[c.index] ??= { id: c.id ?? `call_${randomId()}`, type: 'function', function: { name: c.name ?? '', arguments: '' } });
        if (c.name !== undefined && call.function.name === '') call.function.name = c.name;
        call.function.arguments += c.arguments ?? '';
        const fn = { ...(c.name === undefined ? {} : { name: c.name }), arguments: c.arguments ?? '' };
        await emit({ tool_calls: [{ index: c.index, ...(isNew ? { id: call.id, type: 'function' as const } : {}), function: fn }] }, null);
        break;
      }
      case 'finish':
        finish = c.reason;
        break;
      case 'usage':
        usage = c.usage;
        break;
    }
  }
  if (!started) await emit({ role: 'assistant', content: '' }, null);
  const reason = finish ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop');
  await emit({}, reason);
  const u = openAiUsage(usage);
  if (streaming && includeUsage) await opts.onChunk?.({ id, object: 'chat.completion.chunk', created, model: req.model, choices: [], usage: u });
  const calls = toolCalls.filter((c): c is ToolCall => c !== undefined);
  return {
    id,
    object: 'chat.completion',
    created,
    model: req.model,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: calls.length > 0 && text === '' ? null : text, refusal: null, ...(calls.length > 0 ? { tool_calls: calls } : {}) },
      logprobs: null,
      finish_reason: reason,
    }],
    usage: u,
  };
}

/** Runs a legacy completion request to its end, likewise. */
export async function runTextCompletion(backend: LlmBackend, req: CompletionRequest, opts: RunOptions<TextCompletion> = {}): Promise<TextCompletion> {
  refuseUnsupported(req);
  const id = opts.id ?? `cmpl-${randomId()}`;
  const created = opts.created ?? nowSec();
  const streaming = req.stream === true && opts.onChunk !== undefined;
  const includeUsage = req.stream_options?.include_usage === true;
  const emit = async (text: string, finishReason: FinishReason | null): Promise<void> => {
    if (!streaming) return;
    await opts.onChunk?.({ id, object: 'text_completion', created, model: req.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }], ...(includeUsage ? { usage: null } : {}) });
  };
  let text = '';
  let finish: FinishReason | undefined;
  let usage: TokenUsage | undefined;
  for await (const c of backend.complete(req, opts.signal)) {
    if (c.type === 'text' && c.text !== '') {
      text += c.text;
      await emit(c.text, null);
    } else if (c.type === 'finish') finish = c.reason;
    else if (c.type === 'usage') usage = c.usage;
  }
  const reason = finish ?? 'stop';
  await emit('', reason);
  const u = openAiUsage(usage);
  if (streaming && includeUsage) await opts.onChunk?.({ id, object: 'text_completion', created, model: req.model, choices: [], usage: u });
  return { id, object: 'text_completion', created, model: req.model, choices: [{ index: 0, text, logprobs: null, finish_reason: reason }], usage: u };
}

/** Backends that report no usage (some OpenAI-compatible servers) count as zero: we do not guess. */
function openAiUsage(u: TokenUsage | undefined): Usage {
  const prompt = u?.promptTokens ?? 0;
  const completion = u?.completionTokens ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function randomId(): string {
  return randomBytes(12).toString('hex');
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}
