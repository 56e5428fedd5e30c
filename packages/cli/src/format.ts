/** Small text formatters shared by the commands' human-readable output. */

const nf = new Intl.NumberFormat('en-US');
export function num(n: number): string {
  return nf.format(Math.round(n));
}

/** 950 ms → "950ms", 61 s → "1m1s", 3 h → "3h0m", 2 d → "2d3h". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${m % 60}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}

export function age(ms: number, now = Date.now()): string {
  return `${duration(Math.max(0, now - ms))} ago`;
}

export function megabytes(mb: number): string {
  return mb >= 1024 ? `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)} GiB` : `${mb} MiB`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** One line of text, at most `max` characters, with control characters escaped. */
export function preview(text: string, max = 60): string {
  let t = text.replace(/\n$/, '');
  if (/[\u0000-\u001f\u007f]/.test(t)) t = JSON.stringify(t).slice(1, -1);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Left-aligned columns separated by two spaces; a header row first. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  // Code points, not UTF-16 units, so an emoji counts once.
  const len = (s: string): number => [...s].length;
  const widths = header.map((h, i) => Math.max(len(h), ...rows.map((r) => len(r[i] ?? ''))));
  const pad = (c: string, w: number): string => c + ' '.repeat(Math.max(0, w - len(c)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : pad(c, widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
