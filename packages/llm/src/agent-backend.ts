/**
 * An LlmBackend as the agent serves it (the agent's ModelBackend shape,
 * structural, so the agent does not depend on this package): one OpenAI
 * request in, chunks out when it streams, the whole response and its token
 * usage at the end — the same responses serve-model sends.
 */
import { ImError } from '@idlemesh/protocol';
import type { ModelOffer } from '@idlemesh/protocol';
import { toModelOffer } from './backend.js';
import type { LlmBackend } from './backend.js';
import { z } from 'zod';
import { ChatCompletionRequest, CompletionRequest } from './openai.js';

/** What the honesty check asks a second node to score: the request's prompt (text or chat messages) and the answer given. */
const ScoreBody = z.strictObject({
  model: z.string().min(1),
  prompt: z.union([z.string(), ChatCompletionRequest.shape.messages]),
  continuation: z.string().max(1_000_000),
});
import { runChatCompletion, runTextCompletion } from './responses.js';

export interface AgentModelBackend {
  offers(): Promise<ModelOffer[]>;
  run(kind: 'chat' | 'completion', request: Record<string, unknown>, onChunk: (chunk: unknown) => void, signal: AbortSignal): Promise<{ response: Record<string, unknown>; usage: { prompt_tokens: number; completion_tokens: number } }>;
  /** Teacher-forced scoring of another node's answer (the coordinator's honesty check). */
  score(request: Record<string, unknown>, signal: AbortSignal): Promise<{ tokenLogprobs: number[]; topLogprobs?: number[] }>;
  close(): Promise<void>;
}

export function agentBackend(backend: LlmBackend): AgentModelBackend {
  return {
    async offers() {
      return (await backend.models()).map((m) => toModelOffer(m));
    },
    async run(kind, request, onChunk, signal) {
      const schema = kind === 'chat' ? ChatCompletionRequest : CompletionRequest;
      const parsed = schema.safeParse(request);
      if (!parsed.success) {
        throw new ImError('IM_VALIDATION', parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
      }
      const opts = { signal, ...(request.stream === true ? { onChunk: (c: unknown) => onChunk(c) } : {}) };
      const response = kind === 'chat'
        ? await runChatCompletion(backend, parsed.data as ChatCompletionRequest, opts)
        : await runTextCompletion(backend, parsed.data as CompletionRequest, opts);
      const usage = (response as { usage?: { prompt_tokens?: number; completion_tokens?: number } }).usage;
      return { response: response as unknown as Record<string, unknown>, usage: { prompt_tokens: usage?.prompt_tokens ?? 0, completion_tokens: usage?.completion_tokens ?? 0 } };
    },
    async score(request, signal) {
      const parsed = ScoreBody.safeParse(request);
      if (!parsed.success) throw new ImError('IM_VALIDATION', parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
      const r = await backend.score(parsed.data, signal);
      return { tokenLogprobs: r.tokenLogprobs, ...(r.topLogprobs ? { topLogprobs: r.topLogprobs } : {}) };
    },
    close: () => backend.close(),
  };
}
