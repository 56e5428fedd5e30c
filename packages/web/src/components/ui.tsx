/** Small building blocks shared by the pages. */
import type { ComponentChildren } from 'preact';
import { describeError } from '../api.js';

/** The API's error message, announced to screen readers. Never a blank page. */
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (error === undefined || error === null) return null;
  const e = describeError(error);
  return (
    <div class="error" role="alert">
      <strong>{title ?? 'The coordinator refused'}</strong>
      <p class="error-message">{e.message}</p>
      <p class="error-code">{e.code}</p>
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <p class="muted" role="status">Loading {what}…</p>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Stat({ label, value, hint, id }: { label: string; value: ComponentChildren; hint?: ComponentChildren; id?: string }) {
  return (
    <div class="stat" {...(id ? { 'data-stat': id } : {})}>
      <dt>{label}</dt>
      <dd>
        <span class="stat-value">{value}</span>
        {hint !== undefined && <span class="stat-hint">{hint}</span>}
      </dd>
    </div>
  );
}

export function Stats({ children, label }: { children: ComponentChildren; label: string }) {
  return <dl class="stats" aria-label={label}>{children}</dl>;
}

/** A labelled progress bar: done of total, with failures marked. */
export function Progress({ done, failed = 0, total, label }: { done: number; failed?: number; total: number; label: string }) {
  const ok = total > 0 ? (100 * (done - failed)) / total : 0;
  const bad = total > 0 ? (100 * failed) / total : 0;
  return (
    <div class="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={total} aria-valuenow={done} aria-valuetext={`${done} of ${total} tasks done${failed > 0 ? `, ${failed} failed` : ''}`}>
      <span class="progress-ok" style={{ width: `${ok}%` }} />
      <span class="progress-bad" style={{ width: `${bad}%` }} />
    </div>
  );
}

export function Section({ title, children, id, actions }: { title: string; children: ComponentChildren; id?: string; actions?: ComponentChildren }) {
  const hid = `${id ?? title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-h`;
  return (
    <section class="card" aria-labelledby={hid} {...(id ? { id } : {})}>
      <div class="card-head">
        <h2 id={hid}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function Badge({ state }: { state: string }) {
  return <span class={`badge badge-${state.replace(/[^a-z-]/g, '')}`}>{state}</span>;
}

export function PageTitle({ children, sub }: { children: ComponentChildren; sub?: ComponentChildren }) {
  return (
    <header class="page-head">
      <h1 tabIndex={-1}>{children}</h1>
      {sub !== undefined && <p class="muted">{sub}</p>}
    </header>
  );
}

/** A value people copy (addresses, invoices, ids): monospace, wraps, with a copy button. */
export function Copyable({ value, label }: { value: string; label: string }) {
  const copy = (): void => {
    void navigator.clipboard?.writeText(value).catch(() => undefined);
  };
  return (
    <div class="copyable">
      <code aria-label={label}>{value}</code>
      <button type="button" class="small" onClick={copy} aria-label={`Copy ${label}`}>Copy</button>
    </div>
  );
}
