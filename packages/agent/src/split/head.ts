/**
 * The split head: llama-server over the stages' tunnel endpoints, with
 * recovery mid-generation.
 *
 * llama-server holds the GGUF, pushes each stage its layers (`-sm layer`,
 * all layers offloaded to the RPC devices) and runs the graph across them.
 * A stage that fails aborts llama-server (llama.cpp's RPC client asserts on
 * a broken connection), so recovery is a restart: find the dead stages (the
 * live ones answer an RPC HELLO once the old head is gone), ask the group
 * for replacements, start llama-server again, and replay the request as the
 * prompt plus the tokens already streamed — by token ids, through
 * `/completion`, so nothing is re-tokenized. The caller's stream goes on
 * where it stopped: at temperature 0 on the same greedy path, and with a
 * seed on the same sampled path (each step's seed is fixed by its position).
 * The one difference is floating-point: the replay evaluates the prefix as
 * one batch, so its logits differ from the incremental ones in the last
 * digits (the tests bound it).
 *
 * Flash attention is off: with it on, llama.cpp's CPU kernels take another
 * path and greedy output may differ from node-llama-cpp's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { ImError } from '@idlemesh/protocol';
import { ownChild } from './children.js';
import { freeLoopbackPort, probeRpc, tailOf } from './stage.js';

export interface HeadOptions {
  /** Path of llama-server (buildLlamaRpc().llamaServer). */
  llamaServer: string;
  /** The GGUF; only the head needs the file. */
  model: string;
  /** RPC endpoints in layer order (localEndpoint().endpoint for each stage); empty runs the model unsplit. */
  stages: string[];
  /** Layer proportions per stage (`-ts`); default: llama.cpp's, by each stage's free memory. */
  tensorSplit?: number[];
  contextSize?: number;
  /** CPU threads of llama-server itself (it computes the input embeddings). */
  threads?: number;
  startTimeoutMs?: number;
  /** A token that takes longer than this counts as a failure (a stage that hangs rather than dies). Default 60 s. */
  tokenTimeoutMs?: number;
  /** Restarts allowed per request; default 3. */
  maxRestarts?: number;
  /**
   * Called for each stage that no longer answers after a failure; returns
   * the endpoint of a replacement holding the same position. Without it,
   * a dead stage fails the request with IM_SPLIT_STAGE_FAILED.
   */
  replaceStage?: (failed: { index: number; endpoint: string; error: Error }) => Promise<string>;
  onEvent?: (e: HeadEvent) => void;
}

export type HeadEvent =
  | { type: 'started'; port: number; stages: string[]; seconds: number }
  | { type: 'failed'; error: Error; generated: number }
  | { type: 'stage-dead'; index: number; endpoint: string }
  | { type: 'stage-replaced'; index: number; endpoint: string }
  | { type: 'replayed'; promptTokens: number; generated: number };

export interface CompletionRequest {
  /** Text (tokenized with the model's BOS) or token ids (used as given). */
  prompt: string | number[];
  maxTokens: number;
  /** Default 0 (greedy). */
  temperature?: number;
  seed?: number;
  /** Also return the top-n candidates (log-probabilities of the raw logits) at each step. */
  nProbs?: number;
  /** Generate past the end-of-sequence token (benchmarks: a fixed number of tokens). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface StreamedToken {
  id: number;
  /** The text this token adds ('' while a UTF-8 character is incomplete; the token completing it carries it). */
  text: string;
  /** log P(token) under the raw logits, when nProbs > 0 (llama-server gives none for a token that ends inside a UTF-8 character). */
  logprob?: number;
  /** The top candidates, when nProbs > 0. */
  top?: Array<{ id: number; logprob: number }>;
}

export type CompletionEvent =
  | { type: 'token'; token: StreamedToken }
  /** `serverMs`: llama-server's own compute time over all steps (the rest of the wall time is HTTP and this process). */
  | { type: 'done'; finish: 'stop' | 'length'; promptTokens: number; completionTokens: number; restarts: number; serverMs: number };

/** llama-server's non-streamed /completion answer, the fields used. */
interface StepResponse {
  content?: string;
  tokens?: number[];
  stop_type?: string;
  timings?: { prompt_ms?: number; predicted_ms?: number };
  completion_probabilities?: Array<{ id: number; logprob: number; top_logprobs?: Array<{ id: number; logprob: number }> }>;
}

/**
 * POSTs JSON to llama-server on loopback and parses the answer. node:http
 * with a keep-alive agent rather than fetch: a generation makes one request
 * per token, and this saves about a millisecond each.
 */
function postJson(agent: Agent, port: number, path: string, body: object, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, signal, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new ImError('IM_SPLIT_STAGE_FAILED', `llama-server ${path}: HTTP ${res.statusCode} ${text.slice(0, 500)}`));
        try {
          resolve(JSON.parse(text));
        } catch (err) {
          reject(new ImError('IM_SPLIT_STAGE_FAILED', `llama-server ${path}: not JSON`, { cause: err }));
        }
      });
    });
    req.on('error', (err) => reject(signal.aborted ? signal.reason : err));
    req.end(JSON.stringify(body));
  });
}

interface Running {
  child: ChildProcess;
  port: number;
  exited: Promise<void>;
  tail: () => string;
}

export class SplitHead {
  private running: Running | undefined;
  private stages: string[];
  private busy = false;
  private closed = false;
  private readonly http = new Agent({ keepAlive: true, maxSockets: 1 });
  /** llama-server restarts since start (all requests). */
  restarts = 0;

  private constructor(private readonly opts: HeadOptions) {
    this.stages = [...opts.stages];
  }

  /** Starts llama-server over the stages and waits until it has loaded the model. */
  static async start(opts: HeadOptions): Promise<SplitHead> {
    const head = new SplitHead(opts);
    head.running = await head.launch();
    return head;
  }

  /** The current stage endpoints (replacements included). */
  get endpoints(): readonly string[] {
    return this.stages;
  }

  /** llama-server's port on loopback (for its own OpenAI API, without recovery). */
  get port(): number | undefined {
    return this.running?.port;
  }

  private args(port: number): string[] {
    const o = this.opts;
    // No stages: the whole model in this process (the unsplit baseline, or a group of one).
    const split = this.stages.length > 0 ? ['--rpc', this.stages.join(','), '-sm', 'layer', '-ngl', '999'] : ['-ngl', '0'];
    const a = ['-m', o.model, ...split, '-fa', 'off', '--host', '127.0.0.1', '--port', String(port), '-np', '1', '--no-webui', '--no-warmup', '-c', String(o.contextSize ?? 2048)];
    if (o.tensorSplit && this.stages.length > 0) a.push('-ts', o.tensorSplit.join(','));
    if (o.threads) a.push('-t', String(o.threads));
    return a;
  }

  private async launch(): Promise<Running> {
    const started = Date.now();
    const deadline = started + (this.opts.startTimeoutMs ?? 120_000);
    for (let attempt = 0; ; attempt++) {
      const port = await freeLoopbackPort();
      const child = spawn(this.opts.llamaServer, this.args(port), { stdio: ['ignore', 'pipe', 'pipe'] });
      ownChild(child);
      const tail = tailOf(child, 40);
      let gone = false;
      const exited = new Promise<void>((resolve) => {
        child.on('exit', () => { gone = true; resolve(); });
        child.on('error', () => { gone = true; resolve(); });
      });
      const running: Running = { child, port, exited, tail };
      while (!gone && Date.now() < deadline) {
        const ok = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
        if (ok) {
          this.opts.onEvent?.({ type: 'started', port, stages: [...this.stages], seconds: (Date.now() - started) / 1000 });
          return running;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await this.stop(running);
      if (attempt < 2 && /bind|address already in use/i.test(tail())) continue;
      throw new ImError('IM_SPLIT_STAGE_FAILED', `llama-server did not become healthy over ${this.stages.join(',')}:\n${tail()}`);
    }
  }

  private async stop(r: Running): Promise<void> {
    r.child.kill('SIGKILL');
    await r.exited;
  }

  /** Token ids of `text` with the model's BOS, as a string prompt is tokenized. */
  async tokenize(text: string): Promise<number[]> {
    const r = await this.call('/tokenize', { content: text, add_special: true });
    return (r as { tokens: number[] }).tokens;
  }

  /** A chat rendered as a prompt by the GGUF's chat template (llama-server's own, as its /v1/chat/completions would). */
  async applyTemplate(messages: Array<{ role: string; content: string }>): Promise<string> {
    const r = await this.call('/apply-template', { messages });
    return (r as { prompt: string }).prompt;
  }

  async detokenize(tokens: number[]): Promise<string> {
    const r = await this.call('/detokenize', { tokens });
    return (r as { content: string }).content;
  }

  private async call(path: string, body: object): Promise<unknown> {
    if (!this.running) this.running = await this.launch();
    return postJson(this.http, this.running.port, path, body, AbortSignal.timeout(30_000));
  }

  /**
   * Streams one completion. A stage failure in the middle is recovered
   * (restart, replay) without the caller seeing more than a pause; the
   * token stream it gets is the same as without the failure (greedy).
   */
  async *complete(req: CompletionRequest): AsyncGenerator<CompletionEvent> {
    if (this.closed) throw new ImError('IM_UNAVAILABLE', 'the split head is closed');
    if (this.busy) throw new ImError('IM_CONFLICT', 'the split head runs one request at a time');
    this.busy = true;
    try {
      let prompt = typeof req.prompt === 'string' ? undefined : [...req.prompt];
      const generated: number[] = [];
      const timing = { serverMs: 0 };
      let restarts = 0;
      for (;;) {
        req.signal?.throwIfAborted();
        try {
          prompt ??= await this.tokenize(req.prompt as string);
          const finish = yield* this.stream(prompt, generated, req, timing);
          yield { type: 'done', finish, promptTokens: prompt.length, completionTokens: generated.length, restarts, serverMs: timing.serverMs };
          return;
        } catch (err) {
          if (req.signal?.aborted) throw err;
          if (restarts >= (this.opts.maxRestarts ?? 3)) throw new ImError('IM_SPLIT_STAGE_FAILED', `split generation failed after ${restarts} restarts: ${(err as Error).message}`, { cause: err });
          this.opts.onEvent?.({ type: 'failed', error: err as Error, generated: generated.length });
          await this.recover(err as Error);
          restarts++;
          this.restarts++;
          this.opts.onEvent?.({ type: 'replayed', promptTokens: prompt?.length ?? 0, generated: generated.length });
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * One attempt: prompt + generated so far, one token per `/completion`
   * request, until done; pushes to `generated` as tokens come.
   *
   * Why a request per token rather than llama-server's stream: its stream
   * withholds tokens that end inside a UTF-8 character and never sends their
   * ids, and replay needs every id. With `cache_prompt` the server keeps the
   * KV cache between steps, so a step evaluates only the one new token (as
   * a streamed decode would); the price is an HTTP round trip on loopback
   * per token (see docs/split-inference.md). Each step's seed is the base
   * seed + its position, so a seeded sample replays exactly too.
   */
  private async *stream(prompt: number[], generated: number[], req: CompletionRequest, timing: { serverMs: number }): AsyncGenerator<CompletionEvent, 'stop' | 'length'> {
    if (!this.running) this.running = await this.launch();
    const running = this.running;
    const ctx = this.opts.contextSize ?? 2048;
    const baseSeed = req.seed ?? Math.floor(Math.random() * 2 ** 31);
    /** Ids whose text is an incomplete UTF-8 character so far. */
    let pending: number[] = [];
    const died = new AbortController();
    void running.exited.then(() => died.abort(new ImError('IM_SPLIT_STAGE_FAILED', `llama-server exited:\n${running.tail()}`)));
    const tokenTimeoutMs = this.opts.tokenTimeoutMs ?? 60_000;
    while (generated.length < req.maxTokens) {
      if (prompt.length + generated.length >= ctx) return 'length';
      const signals = [died.signal, AbortSignal.timeout(tokenTimeoutMs), ...(req.signal ? [req.signal] : [])];
      const signal = AbortSignal.any(signals);
      const body = {
        prompt: [...prompt, ...generated],
        n_predict: 1,
        temperature: req.temperature ?? 0,
        seed: (baseSeed + generated.length) % 2 ** 31,
        n_probs: req.nProbs ?? 0,
        ignore_eos: req.ignoreEos ?? false,
        stream: false,
        return_tokens: true,
        cache_prompt: true,
        // Only temperature shapes the distribution; greedy at 0.
        repeat_penalty: 1,
        top_k: 0,
        top_p: 1,
        min_p: 0,
      };
      let step: StepResponse;
      try {
        step = (await postJson(this.http, running.port, '/completion', body, signal)) as StepResponse;
      } catch (err) {
        if (req.signal?.aborted) throw err;
        if (died.signal.aborted) throw died.signal.reason as Error;
        if ((err as Error).name === 'TimeoutError') throw new ImError('IM_SPLIT_STAGE_FAILED', `no token within ${tokenTimeoutMs} ms`, { cause: err });
        throw err;
      }
      timing.serverMs += (step.timings?.prompt_ms ?? 0) + (step.timings?.predicted_ms ?? 0);
      const id = step.tokens?.[0];
      if (id === undefined || step.stop_type === 'eos') return 'stop';
      generated.push(id);
      const token: StreamedToken = { id, text: '' };
      const p = step.completion_probabilities?.[0];
      if (p) {
        token.logprob = p.logprob;
        token.top = (p.top_logprobs ?? []).map((t) => ({ id: t.id, logprob: t.logprob }));
      }
      // The server gives U+FFFD for a piece that ends inside a character: hold it until the character completes.
      const content = step.content ?? '';
      if (pending.length === 0 && !content.includes('\uFFFD')) token.text = content;
      else {
        pending.push(id);
        const joined = await this.detokenize(pending);
        if (!joined.includes('\uFFFD') || pending.length >= 4) {
          token.text = joined;
          pending = [];
        }
      }
      yield { type: 'token', token };
    }
    return 'length';
  }

  /** Stops llama-server, finds the stages that no longer answer, replaces them, and starts again. */
  private async recover(error: Error): Promise<void> {
    if (this.running) await this.stop(this.running);
    this.running = undefined;
    // Probed together: a hung stage costs one timeout, not one per stage.
    const alive = await Promise.all(this.stages.map((endpoint) => {
      const [host, port] = endpoint.split(':');
      return probeRpc(host as string, Number(port), 3000).then(() => true, () => false);
    }));
    for (let i = 0; i < this.stages.length; i++) {
      const endpoint = this.stages[i] as string;
      if (alive[i]) continue;
      this.opts.onEvent?.({ type: 'stage-dead', index: i, endpoint });
      if (!this.opts.replaceStage) throw new ImError('IM_SPLIT_STAGE_FAILED', `stage ${i} (${endpoint}) is gone and no replacement was offered`, { cause: error });
      const next = await this.opts.replaceStage({ index: i, endpoint, error });
      this.stages[i] = next;
      this.opts.onEvent?.({ type: 'stage-replaced', index: i, endpoint: next });
    }
    this.running = await this.launch();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.running) await this.stop(this.running);
    this.running = undefined;
    this.http.destroy();
  }
}
