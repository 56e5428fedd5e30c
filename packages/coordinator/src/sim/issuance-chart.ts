/**
 * An SVG line chart of every node's share over the hours of an issuance
 * simulation, with the leaver's last active hour and its roll-off marked.
 * A plain string builder (no dependencies, no I/O): the CLI writes the file.
 */
import type { IssuanceSimReport } from './issuance.js';

export interface ChartOptions {
  readonly width?: number;
  readonly height?: number;
  readonly title?: string;
}

// Colour-blind-safe (Okabe–Ito), then greys for larger networks.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000', '#777777', '#AAAAAA'];

export function issuanceChartSvg(report: IssuanceSimReport, opts: ChartOptions = {}): string {
  const width = opts.width ?? 900;
  const height = opts.height ?? 420;
  const title = opts.title ?? `${report.formula}: share of each node per hour (${report.leaver} off after hour ${report.lastActiveHour})`;
  const m = { left: 56, right: 170, top: 40, bottom: 46 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const hours = report.hours;
  const nodeIds = hours.length === 0 ? [] : Object.keys((hours[0] as { shares: Record<string, number> }).shares);
  const h0 = hours[0]?.hour ?? 0;
  const h1 = hours[hours.length - 1]?.hour ?? 1;
  const span = Math.max(1, h1 - h0);
  let top = 0;
  for (const h of hours) for (const v of Object.values(h.shares)) top = Math.max(top, v);
  const yMax = Math.min(1, Math.max(0.1, Math.ceil(top * 10) / 10));
  const x = (hour: number): number => m.left + ((hour - h0) / span) * plotW;
  const y = (share: number): number => m.top + plotH - (share / yMax) * plotH;
  const f = (v: number): string => v.toFixed(1);

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${m.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);

  // The roll-off: from the last active hour until the window has forgotten it.
  const T = report.lastActiveHour;
  const rollEnd = Math.min(h1, T + 24);
  if (T >= h0 && T <= h1) {
    parts.push(`<rect class="rolloff" x="${f(x(T))}" y="${m.top}" width="${f(x(rollEnd) - x(T))}" height="${plotH}" fill="#f2f2f2"/>`);
  }

  // Grid and axes.
  const yStep = yMax > 0.5 ? 0.1 : 0.05;
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    const yy = f(y(v));
    parts.push(`<line x1="${m.left}" y1="${yy}" x2="${m.left + plotW}" y2="${yy}" stroke="#dddddd"/>`);
    parts.push(`<text x="${m.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${Math.round(v * 100)} %</text>`);
  }
  const xStep = niceStep(span);
  for (let h = Math.ceil(h0 / xStep) * xStep; h <= h1; h += xStep) {
    const xx = f(x(h));
    parts.push(`<line x1="${xx}" y1="${m.top + plotH}" x2="${xx}" y2="${m.top + plotH + 4}" stroke="#333333"/>`);
    parts.push(`<text x="${xx}" y="${m.top + plotH + 17}" text-anchor="middle">${h}</text>`);
  }
  parts.push(`<line class="axis" x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + plotH}" stroke="#333333"/>`);
  parts.push(`<line class="axis" x1="${m.left}" y1="${m.top + plotH}" x2="${m.left + plotW}" y2="${m.top + plotH}" stroke="#333333"/>`);
  parts.push(`<text x="${m.left + plotW / 2}" y="${height - 8}" text-anchor="middle">hour</text>`);
  parts.push(`<text transform="translate(14 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">share of the issuance</text>`);

  // One line per node.
  nodeIds.forEach((id, k) => {
    const colour = PALETTE[k % PALETTE.length] as string;
    const points = hours.map((h) => `${f(x(h.hour))},${f(y(h.shares[id] ?? 0))}`).join(' ');
    const w = id === report.leaver ? 2.5 : 1.5;
    parts.push(`<polyline class="share" data-node="${esc(id)}" fill="none" stroke="${colour}" stroke-width="${w}" points="${points}"/>`);
  });

  // The marker at the leaver's last active hour.
  if (T >= h0 && T <= h1) {
    const xx = f(x(T));
    parts.push(`<line class="marker" x1="${xx}" y1="${m.top}" x2="${xx}" y2="${m.top + plotH}" stroke="#C00000" stroke-dasharray="5,4" stroke-width="1.5"/>`);
    parts.push(`<text x="${f(x(T) + 4)}" y="${m.top + 12}" fill="#C00000">${esc(report.leaver)} off after hour ${T}</text>`);
  }

  // Legend.
  const lx = m.left + plotW + 16;
  nodeIds.forEach((id, k) => {
    const ly = m.top + 8 + k * 18;
    const colour = PALETTE[k % PALETTE.length] as string;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${colour}" stroke-width="${id === report.leaver ? 2.5 : 1.5}"/>`);
    parts.push(`<text class="legend" x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(id)}${id === report.leaver ? ' (leaves)' : ''}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** A tick step of 1, 2, 6, 12, 24, … hours giving at most about 12 ticks. */
function niceStep(span: number): number {
  for (const s of [1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720]) if (span / s <= 12) return s;
  return Math.ceil(span / 12);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
