import type { Command } from 'commander';
import type { JobView } from '@idlemesh/sdk';
import { doneCount, followJob } from '../follow.js';
import { age, bytes, duration, num } from '../format.js';
import { clientFor } from '../options.js';
import { note, out, outJson } from '../output.js';
import { summaryText, writeResults } from '../results.js';

interface JobOpts { results?: boolean; out?: string; watch?: boolean; json?: boolean }

export function registerJob(program: Command): void {
  program
    .command('job')
    .description('show one job; optionally follow it and print its results')
    .argument('<id>', 'job id (job_…)')
    .option('--results', 'print every task result (readable lines, or JSON lines with --json)')
    .option('--out <file>', 'write the results as JSON lines to this file and print a summary')
    .option('--watch', 'follow progress until the job ends (exit 1 if any task failed)')
    .option('--json', 'JSON output: the job as one document; with --watch, JSON lines of progress events; with --results, JSON lines of results')
    .action(async (id: string, opts: JobOpts, cmd: Command) => {
      const client = clientFor(cmd);
      let job = await client.getJob(id);
      if (opts.watch) job = await followJob(client, job, { events: opts.json === true });
      else if (opts.json && !opts.results && opts.out === undefined) await outJson(job);
      if (!opts.json) await out(jobDetails(job));
      if (opts.results || opts.out !== undefined) {
        const summary = await writeResults(client, job.id, { json: opts.json === true, ...(opts.out === undefined ? {} : { file: opts.out }) });
        if (opts.out !== undefined) {
          if (opts.json) await outJson({ summary });
          else await out(`${summaryText(summary)}\n`);
        } else if (!opts.json) note(summaryText(summary));
      }
      if (opts.watch && (job.counts.failed > 0 || job.state === 'cancelled')) process.exitCode = 1;
    });
}

export function jobDetails(job: JobView, now = Date.now()): string {
  const c = job.counts;
  const rows: [string, string][] = [
    ['state', job.state],
    ['progress', `${num(doneCount(job))}/${num(c.total)} done: ${num(c.succeeded)} succeeded, ${num(c.failed)} failed, ${num(c.cancelled)} cancelled, ${num(c.queued)} queued, ${num(c.leased)} running`],
    ['module', `${job.module} (${job.runtime})`],
    ['limits', `fuel ${num(job.limits.fuel)}, memory ${job.limits.memoryMb} MiB, timeout ${duration(job.limits.timeoutMs)}, output ${bytes(job.limits.outputBytes)}`],
    ['attempts', `up to ${job.maxAttempts}, priority ${job.priority}, bid ${num(job.bid)} msat/EU`],
    ['fuel used', num(job.fuelUsed)],
    ['created', `${new Date(job.createdAt).toISOString()} (${age(job.createdAt, now)})`],
  ];
  if (job.finishedAt !== undefined) rows.push(['finished', `${new Date(job.finishedAt).toISOString()} (took ${duration(job.finishedAt - job.createdAt)})`]);
  const head = job.name === undefined ? job.id : `${job.id}  ${job.name}`;
  return `${head}\n${rows.map(([k, v]) => `  ${k.padEnd(10)} ${v}`).join('\n')}\n`;
}
