import type { IdlemeshClient, JobView } from '@idlemesh/sdk';
import { note, outJson } from './output.js';
import { progressFor, type ProgressStream } from './progress.js';

export function doneCount(job: JobView): number {
  const c = job.counts;
  return c.succeeded + c.failed + c.cancelled;
}

/**
 * Follows a job to its end with a progress display on stderr. With `events`,
 * also writes every progress event as a JSON line to stdout. Ctrl-C stops
 * following (the job keeps running) and exits 130 with a hint.
 */
export async function followJob(
  client: IdlemeshClient,
  job: JobView,
  opts: { stream?: ProgressStream; events?: boolean; quiet?: boolean } = {},
): Promise<JobView> {
  const progress = opts.quiet ? undefined : progressFor(opts.stream ?? process.stderr);
  const ctl = new AbortController();
  const onSigint = (): void => ctl.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let pending: Promise<void> = Promise.resolve();
  const show = (j: JobView): void => {
    progress?.update({ done: doneCount(j), total: j.counts.total, failed: j.counts.failed });
    if (opts.events) {
      const line = { type: j.state === 'completed' || j.state === 'cancelled' ? 'end' : 'progress', job: j };
      pending = pending.then(() => outJson(line));
    }
  };
  try {
    show(job);
    const final = await client.waitForJob(job.id, { onProgress: show, signal: ctl.signal });
    progress?.finish();
    await pending;
    return final;
  } catch (err) {
    if (ctl.signal.aborted) {
      progress?.finish();
      note(`stopped following; ${job.id} keeps running. Follow it again with: idlemesh job ${job.id} --watch --coordinator ${client.url}`);
      process.exit(130);
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
