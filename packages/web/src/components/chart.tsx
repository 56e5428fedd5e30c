/**
 * A uPlot line chart, loaded on first use so pages without charts do not pay
 * for it. `series` share the x values (seconds since 1970, or any number).
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type uPlotType from 'uplot';

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
}

function fmtTick(sec: number): string {
  const d = new Date(sec * 1000);
  return sec % 3600 === 0 ? d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit' }) : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

const COLORS = ['#1f5fbf', '#c2410c', '#15803d', '#7e22ce', '#b91c1c', '#0f766e', '#a16207', '#be185d'];

export function LineChart({ x, series, title, height = 220, yLabel, xTime = true }: {
  x: number[];
  series: ChartSeries[];
  title: string;
  height?: number;
  yLabel?: string;
  xTime?: boolean;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlotType | null>(null);
  const [failed, setFailed] = useState<string | undefined>(undefined);

  useEffect(() => {
    let cancelled = false;
    const el = box.current;
    if (!el) return;
    void Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([{ default: uPlot }]) => {
      if (cancelled) return;
      plot.current?.destroy();
      const width = Math.max(260, el.clientWidth);
      const opts: uPlotType.Options = {
        width,
        height,
        scales: { x: { time: xTime } },
        axes: [
          {
            stroke: '#374151',
            space: 90,
            // Whole seconds or hours, local time: short ranges otherwise get millisecond ticks.
            ...(xTime ? { incrs: [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400], values: (_u: uPlotType, splits: number[]) => splits.map(fmtTick) } : {}),
          },
          { stroke: '#374151', ...(yLabel ? { label: yLabel } : {}) },
        ],
        legend: { show: series.length > 1 },
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length] as string, width: 2, spanGaps: false }))],
      };
      plot.current = new uPlot(opts, [x, ...series.map((s) => s.values)] as uPlotType.AlignedData, el);
    }).catch((err: unknown) => setFailed((err as Error).message));
    return () => {
      cancelled = true;
    };
  }, [x, series, height, yLabel, xTime]);

  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(260, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [height]);

  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: line chart of ${series.map((s) => s.label).join(', ')}`} />
      {failed !== undefined && <p class="error-message">Cannot draw the chart: {failed}</p>}
    </figure>
  );
}
