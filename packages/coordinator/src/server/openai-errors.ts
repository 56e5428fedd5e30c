import type { OpenAiError } from '../inference.js';

/** OpenAI's error body: what its clients (the official SDK, Continue, Cline) parse. */
export function openAiErrorBody(e: OpenAiError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}
