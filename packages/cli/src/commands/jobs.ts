import { Option, type Command } from 'commander';
import { JobState } from '@idlemesh/protocol';
import type { JobView } from '@idlemesh/sdk';
import { doneCount } from '../follow.js';
import { age, num, table } from '../format.js';
import { clientFor, intArg } from '../options.js';
import { out, outJson } from '../output.js';

export function registerJobs(program: Command): void {
  program
    .command('jobs')
    .description('list jobs, newest first')
    .addOption(new Option('--state <state>', 'only jobs in this state').choices(JobState.options))
    .option('--limit <n>', 'at most this many jobs (1-1000, default 100)', intArg(1, 1000))
    .option('--json', 'print {"jobs":[JobView…]} as one JSON document')
    .action(async (opts: { state?: JobState; limit?: number; json?: boolean }, cmd: Command) => {
      const q: { state?: JobState; limit?: number } = {};
      if (opts.state !== undefined) q.state = opts.state;
      if (opts.limit !== undefined) q.limit = opts.limit;
      const jobs = await clientFor(cmd).listJobs(q);
      if (opts.json) {
        await outJson({ jobs });
        return;
      }
      if (jobs.length === 0) {
        await out('no jobs\n');
        return;
      }
      await out(jobsTable(jobs));
    });
}

export function jobsTable(jobs: readonly JobView[], now = Date.now()): string {
  return table(
    ['ID', 'STATE', 'DONE/TOTAL', 'FAILED', 'AGE', 'NAME'],
    jobs.map((j) => [j.id, j.state, `${num(doneCount(j))}/${num(j.counts.total)}`, num(j.counts.failed), age(j.createdAt, now), j.name ?? '']),
  );
}
