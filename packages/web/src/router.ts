/**
 * A small history router: the coordinator answers every client path with
 * index.html, and links change pages without reloading. After a change,
 * focus goes to the new page's heading so keyboard and screen-reader users
 * land where the content is.
 */
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

export function currentPath(): string {
  return location.pathname.replace(/\/+$/, '') || '/';
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
  window.scrollTo(0, 0);
  // After the new page rendered: focus its heading.
  setTimeout(() => document.querySelector<HTMLElement>('main h1')?.focus(), 0);
}

addEventListener('popstate', () => {
  for (const l of listeners) l();
});

export function usePath(): string {
  const [path, set] = useState(currentPath());
  useEffect(() => {
    const l = (): void => set(currentPath());
    listeners.add(l);
    return () => {
      listeners.delete(l);
    };
  }, []);
  return path;
}

/** Matches `/jobs/:id`-style patterns; returns the parameters or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return undefined;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const seg = p[i] as string;
    const val = s[i] as string;
    if (seg.startsWith(':')) {
      if (val === '') return undefined;
      out[seg.slice(1)] = decodeURIComponent(val);
    } else if (seg !== val) return undefined;
  }
  return out;
}

/** Intercepts plain left clicks on same-origin links. */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest('a');
  if (!a || a.target !== '' || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
}
