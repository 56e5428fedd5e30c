/**
 * Choosing the next token from logits: greedy at temperature 0 (ties go to
 * the lowest id), otherwise a draw from softmax(logits / T), optionally over
 * the top-k only, with a seeded RNG so a run can be repeated exactly.
 */
import type { Rng } from './rng.js';

export interface SamplingOptions {
  /** 0 (default): greedy. */
  temperature?: number;
  /** Only the k most likely tokens are drawn from; 0 (default): all. */
  topK?: number;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  let ids = Array.from(logits.keys());
  if (opts.topK && opts.topK > 0 && opts.topK < ids.length) {
    ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
    ids = ids.slice(0, opts.topK);
  }
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]!);
  const weights = ids.map((i) => Math.exp((logits[i]! - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let r = rng.next() * total;
  for (let k = 0; k < ids.length; k++) {
    r -= weights[k]!;
    if (r < 0) return ids[k]!;
  }
  return ids[ids.length - 1]!;
}
