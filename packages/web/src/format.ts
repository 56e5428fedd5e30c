/** Display helpers: amounts arrive as msat decimal strings (64-bit), counts as numbers. */

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(n: number): string {
  return int.format(n);
}

/** msat (decimal string) as sats with the msat remainder, e.g. "1,234.567 sats". */
export function fmtMsat(msat: string | bigint | undefined): string {
  if (msat === undefined) return '—';
  const v = typeof msat === 'bigint' ? msat : BigInt(msat);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const sats = abs / 1000n;
  const rest = abs % 1000n;
  const whole = sats.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '−' : ''}${whole}${rest === 0n ? '' : `.${rest.toString().padStart(3, '0').replace(/0+$/, '')}`} sats`;
}

/** Fuel with its effort units (1 EU = 1e9 fuel). */
export function fmtFuel(fuel: number): string {
  if (fuel >= 1e9) return `${(fuel / 1e9).toFixed(fuel >= 1e11 ? 0 : 2)} EU`;
  return `${fmtInt(fuel)} fuel`;
}

export function fmtRate(perSec: number): string {
  if (perSec >= 1e9) return `${(perSec / 1e9).toFixed(1)} G/s`;
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(1)} M/s`;
  return `${fmtInt(perSec)}/s`;
}

export function fmtTime(ms: number | undefined): string {
  if (ms === undefined) return '—';
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

export function shortId(id: string, n = 12): string {
  return id.length > n ? `${id.slice(0, n)}…` : id;
}

export function pct(part: number, whole: number): string {
  if (whole <= 0) return '0%';
  return `${Math.round((100 * part) / whole)}%`;
}

/** A task output for people: its text when it is printable UTF-8, else its base64. */
export function previewOutput(b64: string | undefined, max = 120): string {
  if (b64 === undefined) return '';
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (/[\x00-\x08\x0e-\x1f]/.test(text)) throw new Error('binary');
    return text.length > max ? `${text.slice(0, max)}…` : text;
  } catch {
    return b64.length > max ? `${b64.slice(0, max)}…` : b64;
  }
}
