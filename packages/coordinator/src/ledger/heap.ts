// A binary min-heap of pending timeouts ordered by (at, seq), so expiries are
// recorded in a deterministic order whatever order the pendings arrived in.
import type { TimeoutEntry } from './types.js';

function less(a: TimeoutEntry, b: TimeoutEntry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export function heapPush(h: TimeoutEntry[], e: TimeoutEntry): void {
  h.push(e);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    const pe = h[p]!;
    if (!less(e, pe)) break;
    h[i] = pe;
    i = p;
  }
  h[i] = e;
}

export function heapPeek(h: readonly TimeoutEntry[]): TimeoutEntry | undefined {
  return h[0];
}

export function heapPop(h: TimeoutEntry[]): TimeoutEntry | undefined {
  const top = h[0];
  const last = h.pop();
  if (top === undefined || last === undefined || h.length === 0) return top;
  let i = 0;
  const n = h.length;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && less(h[r]!, h[l]!) ? r : l;
    if (!less(h[c]!, last)) break;
    h[i] = h[c]!;
    i = c;
  }
  h[i] = last;
  return top;
}
