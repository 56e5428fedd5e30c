import type { Command } from 'commander';
import { num } from '../format.js';
import { clientFor } from '../options.js';
import { out, outJson } from '../output.js';

export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description('cancel a job: its queued and running tasks are cancelled; finished results stay')
    .argument('<id>', 'job id (job_…)')
    .option('--json', 'print the cancelled job (JobView) as JSON')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const job = await clientFor(cmd).cancelJob(id);
      if (opts.json) {
        await outJson(job);
        return;
      }
      const c = job.counts;
      await out(`${job.id} ${job.state}: ${num(c.cancelled)} tasks cancelled, ${num(c.succeeded)} succeeded, ${num(c.failed)} failed\n`);
    });
}
