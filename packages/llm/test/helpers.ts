import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Chunk, LlmBackend, ModelInfo, ScoreRequest, ScoreResult } from '../src/index.js';
import type { ChatCompletionRequest, CompletionRequest } from '../src/index.js';

/** The repository root, from this file's compiled place (packages/llm/dist/test/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The tiny random-weight GGUF shared next to the repository (see ../shared/fixtures/README.md). */
export const FIXTURE = join(REPO_ROOT, '..', 'shared', 'fixtures', 'llama-2-tiny-random.gguf');

/** A skip reason for tests that need the fixture, or false when it is there (a fresh clone has no ../shared). */
export const NEEDS_FIXTURE: string | false = existsSync(FIXTURE) ? false : `needs the GGUF fixture ${FIXTURE}, which is not present`;

/** The fixture's model id: the file name without .gguf. */
export const TINY = 'llama-2-tiny-random';

/**
 * One thread and a small context: on a shared 2-core machine llama.cpp's
 * spinning worker threads fight each other (measured: 4 threads ~10 s, 1
 * thread ~15 ms for 32 tokens of the fixture).
 */
export const TEST_LLAMA = { gpu: false as const, threads: 1, contextSize: 512 };

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function textOf(chunks: readonly Chunk[]): string {
  return chunks.map((c) => (c.type === 'text' ? c.text : '')).join('');
}

export function tokensOf(chunks: readonly Chunk[]): number[] {
  return chunks.flatMap((c) => (c.type === 'text' ? c.tokens ?? [] : []));
}

/**
 * A real backend seen through a window: records the abort signals it was
 * given and can slow each chunk down, so a test can disconnect a client
 * mid-generation for sure, however fast the model is.
 */
export class WatchedBackend implements LlmBackend {
  readonly signals: Array<AbortSignal | undefined> = [];
  delayMs = 0;

  constructor(private readonly inner: LlmBackend) {}

  models(): Promise<ModelInfo[]> {
    return this.inner.models();
  }

  chat(req: ChatCompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    this.signals.push(signal);
    return this.slow(this.inner.chat(req, signal));
  }

  complete(req: CompletionRequest, signal?: AbortSignal): AsyncIterable<Chunk> {
    this.signals.push(signal);
    return this.slow(this.inner.complete(req, signal));
  }

  score(req: ScoreRequest, signal?: AbortSignal): Promise<ScoreResult> {
    return this.inner.score(req, signal);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async *slow(it: AsyncIterable<Chunk>): AsyncGenerator<Chunk> {
    for await (const c of it) {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      yield c;
    }
  }
}

export async function waitUntil(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
