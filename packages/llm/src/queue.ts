import { ImError } from '@idlemesh/protocol';

interface Waiter {
  grant: (release: () => void) => void;
}

interface Lane {
  busy: boolean;
  waiting: Waiter[];
}

/**
 * One request at a time per model, first come first served. A loaded model
 * has one context sequence, and running requests one after the other keeps
 * each one deterministic and at full speed; interleaving them would only
 * slow every one down. Past `maxWaiting` queued requests the caller is told
 * to come back (IM_RATE_LIMITED, which the server turns into 429 with
 * Retry-After) instead of waiting without bound.
 */
export class ModelQueue {
  private readonly lanes = new Map<string, Lane>();

  constructor(readonly maxWaiting: number, readonly retryAfterMs = 1000) {}

  /** Resolves with `release` once it is this caller's turn; a signal aborted while waiting leaves the queue and rejects with its reason. */
  acquire(key: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { busy: false, waiting: [] };
      this.lanes.set(key, lane);
    }
    const l = lane;
    if (!l.busy) {
      l.busy = true;
      return Promise.resolve(this.releaser(key, l));
    }
    if (l.waiting.length >= this.maxWaiting) {
      return Promise.reject(new ImError('IM_RATE_LIMITED', `model ${key} is busy and ${l.waiting.length} requests are already waiting for it; retry shortly`, { retryAfterMs: this.retryAfterMs }));
    }
    return new Promise<() => void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = l.waiting.indexOf(waiter);
        if (i >= 0) l.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      l.waiting.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Requests waiting (not counting the one running) for a model. */
  waiting(key: string): number {
    return this.lanes.get(key)?.waiting.length ?? 0;
  }

  private releaser(key: string, lane: Lane): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = lane.waiting.shift();
      if (next) next.grant(this.releaser(key, lane));
      else {
        lane.busy = false;
        this.lanes.delete(key);
      }
    };
  }
}
