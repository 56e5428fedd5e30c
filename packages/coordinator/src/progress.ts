import type { JobRecord } from './store/index.js';

type Listener = (job: JobRecord, final: boolean) => void;

interface Watch {
  listener: Listener;
  /** Called only with the final state (a `?wait=` request): changes that cannot end the job skip it. */
  finalOnly: boolean;
}

/**
 * Pushes job progress to watchers (SSE streams). Progress is throttled per
 * job; the final state is always delivered at once.
 */
export class ProgressHub {
  private readonly listeners = new Map<string, Set<Watch>>();
  private readonly lastSent = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly load: (id: string) => Promise<JobRecord | undefined>, private readonly intervalMs = 100) {}

  watch(jobId: string, listener: Listener, opts: { finalOnly?: boolean } = {}): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    const w: Watch = { listener, finalOnly: opts.finalOnly === true };
    set.add(w);
    return () => {
      set.delete(w);
      if (set.size === 0) {
        this.listeners.delete(jobId);
        this.lastSent.delete(jobId);
        const t = this.timers.get(jobId);
        if (t) clearTimeout(t);
        this.timers.delete(jobId);
      }
    };
  }

  /** `running`: the change cannot have ended these jobs, so a job watched only for its end is not read again. */
  notify(jobIds: Iterable<string>, running = false): void {
    for (const id of jobIds) {
      const set = this.listeners.get(id);
      if (set === undefined || (running && !wantsProgress(set))) continue;
      void this.emit(id);
    }
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.listeners.clear();
  }

  private async emit(id: string): Promise<void> {
    const job = await this.load(id).catch(() => undefined);
    const set = this.listeners.get(id);
    if (!job || !set) return;
    const final = job.state === 'completed' || job.state === 'cancelled';
    const now = Date.now();
    const last = this.lastSent.get(id) ?? 0;
    if (!final && now - last < this.intervalMs) {
      if (!this.timers.has(id)) {
        this.timers.set(id, setTimeout(() => {
          this.timers.delete(id);
          void this.emit(id);
        }, this.intervalMs - (now - last)));
      }
      return;
    }
    this.lastSent.set(id, now);
    for (const w of [...set]) if (final || !w.finalOnly) w.listener(job, final);
  }
}

function wantsProgress(set: ReadonlySet<Watch>): boolean {
  for (const w of set) if (!w.finalOnly) return true;
  return false;
}
