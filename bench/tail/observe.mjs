// Loaded with --import into every process of `bench/tail.mjs`: times each GC pause and
// each event-loop stall (a 1 ms interval firing over 2.5 ms late) on the wall clock,
// and writes them to $BENCH_TAIL_DIR/<pid>.json at exit, with the process's role.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';

const dir = process.env.BENCH_TAIL_DIR;
if (dir) {
  const KINDS = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
  const gc = [];
  const stalls = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.push([performance.timeOrigin + e.startTime, e.duration, KINDS[e.detail?.kind] ?? 'other']);
  }).observe({ entryTypes: ['gc'] });
  let last = performance.now();
  setInterval(() => {
    const t = performance.now();
    if (t - last > 2.5) stalls.push([performance.timeOrigin + last, t - last]);
    last = t;
  }, 1).unref();
  const role = process.argv.includes('coordinator') ? 'coordinator' : process.argv.includes('agent') ? 'agent' : 'client';
  const dump = () => writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify({ pid: process.pid, role, gc, stalls }));
  process.on('exit', dump);
  for (const s of ['SIGTERM', 'SIGINT']) process.prependListener(s, dump);
}
