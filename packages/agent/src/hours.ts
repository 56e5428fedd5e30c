/**
 * The owner's `--hours` window: "22-07" (22:00–06:59, wraps midnight),
 * "9-17", "08:30-12:00", or several joined by commas ("7-9,18-23").
 * Times are the machine's local time; the end is exclusive.
 */

/** A window as minutes after local midnight, [start, end). end may be < start (wraps). */
export interface HourWindow {
  readonly start: number;
  readonly end: number;
}

const PART = /^(\d{1,2})(?::(\d{2}))?$/;

function parseTime(text: string, isEnd: boolean): number | undefined {
  const m = PART.exec(text.trim());
  if (m === null) return undefined;
  const h = Number(m[1]);
  const min = m[2] === undefined ? 0 : Number(m[2]);
  if (min > 59) return undefined;
  if (h > 24 || (h === 24 && (min !== 0 || !isEnd))) return undefined;
  return h * 60 + min;
}

/** Parses an hours spec; returns an error message instead of throwing so the config schema can use it. */
export function parseHours(spec: string): HourWindow[] | string {
  const parts = spec.split(',');
  const windows: HourWindow[] = [];
  for (const part of parts) {
    const dash = part.split('-');
    if (dash.length !== 2) return `"${part.trim()}" is not a range like 22-07 or 09:00-17:30`;
    const start = parseTime(dash[0] ?? '', false);
    const end = parseTime(dash[1] ?? '', true);
    if (start === undefined || end === undefined) return `"${part.trim()}" is not a range like 22-07 or 09:00-17:30 (hours 0-24, minutes 00-59)`;
    if (start === end % (24 * 60) && !(start === 0 && end === 24 * 60)) return `"${part.trim()}" is empty; use 0-24 for all day`;
    windows.push({ start, end });
  }
  return windows;
}

/** Whether a local time (minutes after midnight) falls in any window. */
export function inWindows(windows: readonly HourWindow[], minuteOfDay: number): boolean {
  return windows.some((w) => (w.start < w.end ? minuteOfDay >= w.start && minuteOfDay < w.end : minuteOfDay >= w.start || minuteOfDay < w.end));
}

/** Local minute of the day for an epoch-ms instant. */
export function localMinuteOfDay(epochMs: number): number {
  const d = new Date(epochMs);
  return d.getHours() * 60 + d.getMinutes();
}
