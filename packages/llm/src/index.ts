/**
 * @idlemesh/llm: serving language models the OpenAI way.
 *
 * - backend.ts: the LlmBackend interface every engine implements (models,
 *   chat/complete as streams of deltas, teacher-forced score()).
 * - llama.ts: GGUF files in-process with node-llama-cpp (optional dependency).
 * - openai-backend.ts: any OpenAI-compatible server (Ollama, llama-server, vLLM).
 * - openai.ts: the wire format: request schemas, response shapes, errors, SSE.
 * - responses.ts: backend deltas as OpenAI responses and stream chunks.
 * - server.ts: a standalone OpenAI-compatible HTTP server (`idlemesh serve-model`).
 * - gguf/: GGUF reader and writer, random-weight llama models for tests.
 * - pipeline/: the `pipeline` split-inference engine (stages, frames, session).
 */
export const LLM_PACKAGE = '@idlemesh/llm';

export * from './backend.js';
export * from './openai.js';
export * from './responses.js';
export * from './queue.js';
export * from './llama.js';
export * from './openai-backend.js';
export * from './server.js';
export { TextStream } from './text-stream.js';
export { PLAIN_STOPS, renderPlainChat } from './prompt.js';
export { agentBackend } from './agent-backend.js';
export type { AgentModelBackend } from './agent-backend.js';
export * from './gguf/index.js';
export * from './pipeline/index.js';
