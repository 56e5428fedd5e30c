import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Polled<T> {
  data: T | undefined;
  /** The last failure; cleared by the next success. Earlier data stays shown. */
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads now and every `ms` (live pages poll every 2 s where there is no
 * event stream). Pauses while the tab is hidden; one request at a time.
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, ms: number | null = 2000, deps: readonly unknown[] = []): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const run = async (): Promise<void> => {
      if (stopped) return;
      if (document.visibilityState === 'hidden' && ms !== null) {
        timer = setTimeout(() => void run(), ms);
        return;
      }
      try {
        const v = await loadRef.current(ctl.signal);
        if (stopped) return;
        setData(v);
        setError(undefined);
      } catch (err) {
        if (stopped) return;
        setError(err);
      } finally {
        if (!stopped) setLoading(false);
      }
      if (ms !== null && !stopped) timer = setTimeout(() => void run(), ms);
    };
    void run();
    return () => {
      stopped = true;
      ctl.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [ms, tick, ...deps]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** A form action: runs once per submit, keeps its result or error for display. */
export function useAction<A extends unknown[], T>(fn: (...args: A) => Promise<T>): {
  run: (...args: A) => Promise<T | undefined>;
  busy: boolean;
  error: unknown;
  result: T | undefined;
  reset: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [result, setResult] = useState<T | undefined>(undefined);
  const run = async (...args: A): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      const r = await fn(...args);
      setResult(r);
      return r;
    } catch (err) {
      setError(err);
      setResult(undefined);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, result, reset: () => { setError(undefined); setResult(undefined); } };
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · idlemesh`;
  }, [title]);
}
