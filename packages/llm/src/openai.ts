/**
 * The OpenAI wire format as we serve it: request schemas (what we accept),
 * response shapes (what we send), errors in OpenAI's own shape, and the
 * server-sent-event framing of streams.
 *
 * Requests are loose objects: OpenAI clients and coding tools send fields we
 * do not use (`user`, `metadata`, `store`, …) and rejecting them would break
 * those tools. Unknown fields are ignored by the llama.cpp backend and passed
 * through by the OpenAI-compatible one. What we cannot honour and a client
 * would rely on (n > 1, images, audio, echo) is refused with a 400 naming the
 * parameter, never silently dropped.
 */
import { z } from 'zod';
import { ImError, type ErrorCode } from '@idlemesh/protocol';

// ---- Requests --------------------------------------------------------------

/** A content part. Only text is served: images, audio and files are refused by name. */
const ContentPart = z.looseObject({ type: z.string(), text: z.string().optional() }).superRefine((part, ctx) => {
  if (part.type !== 'text') ctx.addIssue({ code: 'custom', message: `content parts of type "${part.type}" are not supported (text only: no images, audio or files)`, path: ['type'] });
  else if (part.text === undefined) ctx.addIssue({ code: 'custom', message: 'a text content part needs "text"', path: ['text'] });
});
export const MessageContent = z.union([z.string(), z.array(ContentPart)]);
export type MessageContent = z.infer<typeof MessageContent>;

export const ToolCall = z.looseObject({
  id: z.string(),
  type: z.literal('function'),
  function: z.looseObject({ name: z.string().min(1), arguments: z.string() }),
});
export type ToolCall = z.infer<typeof ToolCall>;

/** `developer` is what newer OpenAI clients send instead of `system`; both mean the same to us. */
export const ChatMessage = z.discriminatedUnion('role', [
  z.looseObject({ role: z.enum(['system', 'developer']), content: MessageContent, name: z.string().optional() }),
  z.looseObject({ role: z.literal('user'), content: MessageContent, name: z.string().optional() }),
  z.looseObject({
    role: z.literal('assistant'),
    content: MessageContent.nullish(),
    tool_calls: z.array(ToolCall).nullish(),
    name: z.string().optional(),
  }),
  z.looseObject({ role: z.literal('tool'), content: MessageContent, tool_call_id: z.string() }),
]);
export type ChatMessage = z.infer<typeof ChatMessage>;

export const Tool = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({
    name: z.string().min(1).max(64).regex(/^[\w-]+$/, 'letters, digits, _ and -'),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});
export type Tool = z.infer<typeof Tool>;

export const ToolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: z.string() }) }),
]);
export type ToolChoice = z.infer<typeof ToolChoice>;

const Stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();
const StreamOptions = z.looseObject({ include_usage: z.boolean().nullish() }).nullish();
const OnlyOne = z.literal(1, { error: 'only n=1 is supported: send one request per choice' }).nullish();
const MaxTokens = z.int().positive().nullish();
/** Sampling fields both endpoints share; each is nullable because some clients send null for "default". */
const Sampling = {
  model: z.string().min(1, 'model is required'),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  seed: z.int().nullish(),
  stop: Stop,
  stream: z.boolean().nullish(),
  stream_options: StreamOptions,
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  n: OnlyOne,
};

export const ChatCompletionRequest = z.looseObject({
  ...Sampling,
  messages: z.array(ChatMessage).min(1, 'messages must hold at least one message'),
  max_tokens: MaxTokens,
  max_completion_tokens: MaxTokens,
  tools: z.array(Tool).max(128).nullish(),
  tool_choice: ToolChoice.nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.int().min(0).max(20).nullish(),
  response_format: z.looseObject({ type: z.string() }).nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.looseObject({
  ...Sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'prompt must be one string: batches are not supported')]),
  max_tokens: z.int().min(0).nullish(),
  echo: z.literal(false, { error: 'echo is not supported' }).nullish(),
  best_of: OnlyOne,
  logprobs: z.int().min(0).max(5).nullish(),
  suffix: z.null({ error: 'suffix (fill-in-the-middle) is not supported' }).optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** OpenAI's legacy default when max_tokens is absent. */
export const LEGACY_DEFAULT_MAX_TOKENS = 16;

/** The prompt of a legacy completion request as one string. */
export function completionPrompt(req: CompletionRequest): string {
  return typeof req.prompt === 'string' ? req.prompt : (req.prompt[0] ?? '');
}

/** The text of a message's content (text parts joined). */
export function contentText(content: MessageContent | null | undefined): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content.map((p) => p.text ?? '').join('');
}

/** The chat request's token limit: max_completion_tokens (new name) wins over max_tokens. */
export function chatMaxTokens(req: ChatCompletionRequest): number | undefined {
  return req.max_completion_tokens ?? req.max_tokens ?? undefined;
}

export function stopList(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0);
}

// ---- Responses ---------------------------------------------------------------
// Lenient on the way in (the OpenAI-compatible backend parses other servers'
// answers with these), exact in what we build (see the builders in responses.ts).

export const FinishReason = z.enum(['stop', 'length', 'tool_calls', 'content_filter', 'function_call']);
export type FinishReason = z.infer<typeof FinishReason>;

export const Usage = z.looseObject({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  total_tokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof Usage>;

export const ChatCompletion = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(z.looseObject({
    index: z.number().int(),
    message: z.looseObject({
      role: z.literal('assistant'),
      content: z.string().nullable(),
      refusal: z.string().nullish(),
      tool_calls: z.array(ToolCall).nullish(),
    }),
    logprobs: z.unknown().optional(),
    finish_reason: FinishReason.nullable(),
  })),
  usage: Usage.nullish(),
});
export type ChatCompletion = z.infer<typeof ChatCompletion>;

export const ToolCallDelta = z.looseObject({
  index: z.number().int().nonnegative(),
  id: z.string().nullish(),
  type: z.literal('function').nullish(),
  function: z.looseObject({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
});
export type ToolCallDelta = z.infer<typeof ToolCallDelta>;

export const ChatCompletionChunk = z.looseObject({
  id: z.string(),
  object: z.literal('chat.completion.chunk'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(z.looseObject({
    index: z.number().int(),
    delta: z.looseObject({
      role: z.string().nullish(),
      content: z.string().nullish(),
      tool_calls: z.array(ToolCallDelta).nullish(),
    }),
    logprobs: z.unknown().optional(),
    finish_reason: FinishReason.nullish(),
  })),
  usage: Usage.nullish(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunk>;

/** A legacy completion; its stream chunks have the same shape (OpenAI sends `text_completion` for both). */
export const TextCompletion = z.looseObject({
  id: z.string(),
  object: z.literal('text_completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(z.looseObject({
    index: z.number().int(),
    text: z.string(),
    logprobs: z.unknown().optional(),
    finish_reason: FinishReason.nullish(),
  })),
  usage: Usage.nullish(),
});
export type TextCompletion = z.infer<typeof TextCompletion>;

export const ModelObject = z.looseObject({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
});
export type ModelObject = z.infer<typeof ModelObject>;

export const ModelList = z.looseObject({ object: z.literal('list'), data: z.array(ModelObject) });
export type ModelList = z.infer<typeof ModelList>;

// ---- Errors ------------------------------------------------------------------

/** OpenAI's error body: what its clients (the official SDK, Continue, Cline) parse. */
export const OpenAiErrorBody = z.looseObject({
  error: z.looseObject({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});
export type OpenAiErrorBody = z.infer<typeof OpenAiErrorBody>;

/** An HTTP answer in OpenAI's error shape, with the status and (for 429 and 503) Retry-After in seconds. */
export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = 'OpenAiError';
  }

  body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): OpenAiError {
  return new OpenAiError(400, 'invalid_request_error', message, param, code);
}

export function authenticationError(message = 'Incorrect API key provided: send it as "Authorization: Bearer <key>".'): OpenAiError {
  return new OpenAiError(401, 'authentication_error', message, null, 'invalid_api_key');
}

export function modelNotFound(model: string): OpenAiError {
  return new OpenAiError(404, 'invalid_request_error', `The model "${model}" does not exist here; GET /v1/models lists the models served.`, 'model', 'model_not_found');
}

export function routeNotFound(method: string, path: string): OpenAiError {
  return new OpenAiError(404, 'invalid_request_error', `No route ${method} ${path}; this server serves GET /v1/models, POST /v1/chat/completions and POST /v1/completions.`, null, 'unknown_url');
}

export function rateLimited(message: string, retryAfterSec: number): OpenAiError {
  return new OpenAiError(429, 'rate_limit_error', message, null, 'rate_limit_exceeded', retryAfterSec);
}

export function serverUnavailable(message: string, retryAfterSec: number): OpenAiError {
  return new OpenAiError(503, 'server_error', message, null, 'service_unavailable', retryAfterSec);
}

export function serverError(message: string): OpenAiError {
  return new OpenAiError(500, 'server_error', message);
}

/** A zod failure as OpenAI reports it: the first issue's message, its path as `param` (`messages[0].content`). */
export function fromZodError(err: z.ZodError): OpenAiError {
  const issue = err.issues[0];
  if (!issue) return invalidRequest('invalid request');
  const param = issue.path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
  const where = param ? `${param}: ` : '';
  return invalidRequest(`${where}${issue.message}`, param || null);
}

/** Details an ImError may carry to keep an upstream OpenAI error's param and code (see openai-backend.ts). */
export interface OpenAiErrorDetails {
  openai?: { type?: string; param?: string | null; code?: string | null };
  param?: string;
}

const TYPE_BY_STATUS: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'invalid_request_error', 409: 'invalid_request_error', 413: 'invalid_request_error', 422: 'invalid_request_error', 429: 'rate_limit_error' };

/** Anything thrown, in OpenAI's vocabulary: ImErrors keep their status; unknown errors are 500s. */
export function toOpenAiError(err: unknown): OpenAiError {
  if (err instanceof OpenAiError) return err;
  if (err instanceof ImError) {
    const details = (err.details ?? {}) as OpenAiErrorDetails;
    const retryAfterSec = err.retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(err.retryAfterMs / 1000));
    if (err.code === 'IM_NOT_FOUND' && details.openai?.code === undefined) {
      return new OpenAiError(404, 'invalid_request_error', err.message, details.param ?? 'model', 'model_not_found');
    }
    const status = err.status >= 500 && err.status !== 503 ? 500 : err.status;
    const type = details.openai?.type ?? TYPE_BY_STATUS[status] ?? 'server_error';
    const code = details.openai?.code ?? openAiCode(err.code);
    return new OpenAiError(status, type, err.message, details.openai?.param ?? details.param ?? null, code, retryAfterSec ?? (status === 429 || status === 503 ? 1 : undefined));
  }
  const message = err instanceof Error ? err.message : String(err);
  return serverError(message);
}

function openAiCode(code: ErrorCode): string | null {
  switch (code) {
    case 'IM_UNAUTHORIZED':
      return 'invalid_api_key';
    case 'IM_RATE_LIMITED':
      return 'rate_limit_exceeded';
    case 'IM_UNAVAILABLE':
      return 'service_unavailable';
    default:
      return null;
  }
}

/**
 * Refusal of something the wire format allows but we do not serve. The
 * protocol has no IM_UNSUPPORTED code yet, so this is IM_BAD_REQUEST (400)
 * with the parameter named; switch here once it exists.
 */
export function unsupported(message: string, param?: string): ImError {
  return new ImError('IM_BAD_REQUEST', message, param === undefined ? {} : { details: { param } satisfies OpenAiErrorDetails });
}

// ---- Server-sent events ------------------------------------------------------

/** One SSE event carrying JSON, as OpenAI frames stream chunks. */
export function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

/** The end of every OpenAI stream; the official clients stop reading there. */
export const SSE_DONE = 'data: [DONE]\n\n';

/**
 * How a stream that already started reports a failure: the status line is
 * sent, so the error goes in the body (`data: {"error":…}`, which the official
 * clients raise as an APIError), then [DONE].
 */
export function sseError(err: OpenAiError): string {
  return sseData(err.body()) + SSE_DONE;
}
