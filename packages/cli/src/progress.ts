/**
 * Progress display for a job: a redrawn bar on a terminal, or a plain line
 * every few seconds when stderr is a file or a pipe (CI logs stay readable).
 */
import { duration, num } from './format.js';

export interface ProgressState { done: number; total: number; failed?: number }

export interface Progress {
  update(state: ProgressState): void;
  /** Draws the final state and ends the line. */
  finish(): void;
}

export interface ProgressStream { write(text: string): unknown; isTTY?: boolean; columns?: number }

/** `[=====>    ] 512/1000 51% 1,234 tasks/s eta 3s` */
export function renderBar(p: { done: number; total: number; ratePerSec?: number; width?: number; failed?: number }): string {
  const width = p.width ?? 30;
  const frac = p.total > 0 ? Math.min(1, Math.max(0, p.done / p.total)) : 0;
  const filled = Math.floor(frac * width);
  const bar = frac >= 1 ? '='.repeat(width) : `${'='.repeat(filled)}>${' '.repeat(Math.max(0, width - filled - 1))}`;
  let text = `[${bar}] ${num(p.done)}/${num(p.total)} ${Math.floor(frac * 100)}%`;
  if (p.failed) text += ` ${num(p.failed)} failed`;
  if (p.ratePerSec !== undefined && p.ratePerSec > 0) {
    text += ` ${num(p.ratePerSec)} tasks/s`;
    if (p.done < p.total) text += ` eta ${duration(Math.ceil((p.total - p.done) / p.ratePerSec) * 1000)}`;
  }
  return text;
}

export class ProgressBar implements Progress {
  readonly #stream: ProgressStream;
  readonly #now: () => number;
  readonly #minIntervalMs: number;
  #state: ProgressState = { done: 0, total: 0 };
  #start: { t: number; done: number } | undefined;
  #lastDraw = -Infinity;
  #lastLen = 0;

  constructor(opts: { stream: ProgressStream; now?: () => number; minIntervalMs?: number }) {
    this.#stream = opts.stream;
    this.#now = opts.now ?? Date.now;
    this.#minIntervalMs = opts.minIntervalMs ?? 100;
  }

  update(state: ProgressState): void {
    const t = this.#now();
    this.#start ??= { t, done: state.done };
    this.#state = state;
    if (t - this.#lastDraw < this.#minIntervalMs) return; // ~10 redraws a second at most
    this.#draw(t);
  }

  finish(): void {
    if (this.#start === undefined) return;
    this.#draw(this.#now());
    this.#stream.write('\n');
  }

  #draw(t: number): void {
    this.#lastDraw = t;
    const start = this.#start ?? { t, done: this.#state.done };
    const elapsed = (t - start.t) / 1000;
    const progressed = this.#state.done - start.done;
    const bar: Parameters<typeof renderBar>[0] = { ...this.#state, width: Math.max(10, Math.min(30, (this.#stream.columns || 80) - 50)) };
    if (elapsed >= 0.2 && progressed > 0) bar.ratePerSec = progressed / elapsed;
    const text = renderBar(bar);
    // Pad over the previous, possibly longer, line instead of relying on terminal escapes.
    this.#stream.write(`\r${text.padEnd(this.#lastLen)}`);
    this.#lastLen = text.length;
  }
}

/** For a non-terminal: `progress 512/1000 (51%)` at most every `intervalMs`, and once at the end. */
export class ProgressLines implements Progress {
  readonly #stream: ProgressStream;
  readonly #now: () => number;
  readonly #intervalMs: number;
  #state: ProgressState | undefined;
  #lastLine = -Infinity;
  #lastText = '';

  constructor(opts: { stream: ProgressStream; now?: () => number; intervalMs?: number; label?: string }) {
    this.#stream = opts.stream;
    this.#now = opts.now ?? Date.now;
    this.#intervalMs = opts.intervalMs ?? 5000;
  }

  update(state: ProgressState): void {
    this.#state = state;
    const t = this.#now();
    if (t - this.#lastLine < this.#intervalMs) return;
    this.#lastLine = t;
    this.#print();
  }

  finish(): void {
    if (this.#state !== undefined) this.#print();
  }

  #print(): void {
    const s = this.#state;
    if (s === undefined) return;
    const pct = s.total > 0 ? Math.floor((s.done / s.total) * 100) : 0;
    const text = `progress ${num(s.done)}/${num(s.total)} (${pct}%)${s.failed ? ` ${num(s.failed)} failed` : ''}`;
    if (text === this.#lastText) return;
    this.#lastText = text;
    this.#stream.write(`${text}\n`);
  }
}

export function progressFor(stream: ProgressStream): Progress {
  return stream.isTTY ? new ProgressBar({ stream }) : new ProgressLines({ stream });
}
