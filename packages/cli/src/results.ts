import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { ImError } from '@idlemesh/protocol';
import { decodeOutput, decodeUtf8, type IdlemeshClient, type TaskResultView } from '@idlemesh/sdk';
import { num, preview } from './format.js';
import { out, outJson } from './output.js';

/** One result as a JSON line: the same keys on every line, null where absent. */
export interface ResultLine {
  index: number;
  state: TaskResultView['state'];
  /** base64 */
  output: string | null;
  /** the output as UTF-8 text, or null when absent or not valid UTF-8 */
  outputText: string | null;
  fuel: number | null;
  error: NonNullable<TaskResultView['error']> | null;
}

export function resultLine(r: TaskResultView): ResultLine {
  return {
    index: r.index,
    state: r.state,
    output: r.output ?? null,
    outputText: r.output === undefined ? null : decodeUtf8(r.output),
    fuel: r.fuel ?? null,
    error: r.error ?? null,
  };
}

/** `#3 succeeded 9f86d08… (1,234 fuel)` or `#4 failed IM_TRAP: unreachable (12 fuel)` */
export function readableResult(r: TaskResultView): string {
  let what: string;
  if (r.error !== undefined) what = `${r.error.code}: ${preview(r.error.message, 200)}`;
  else if (r.output !== undefined) what = preview(decodeOutput(r.output), 200);
  else what = '-';
  const fuel = r.fuel === undefined ? '' : ` (${num(r.fuel)} fuel)`;
  return `#${r.index} ${r.state} ${what}${fuel}`;
}

export interface ResultsSummary { count: number; succeeded: number; failed: number; other: number; fuel: number; file?: string }

/**
 * Streams every result of a job: to `file` as JSON lines (then a summary is
 * the caller's to print), else to stdout as JSON lines or readable lines.
 */
export async function writeResults(client: IdlemeshClient, jobId: string, opts: { json: boolean; file?: string }): Promise<ResultsSummary> {
  const summary: ResultsSummary = { count: 0, succeeded: 0, failed: 0, other: 0, fuel: 0 };
  const file = opts.file === undefined ? undefined : createWriteStream(opts.file);
  if (file !== undefined && opts.file !== undefined) {
    summary.file = opts.file;
    const opened = await Promise.race([once(file, 'open').then(() => undefined), once(file, 'error').then(([e]) => e as Error)]);
    if (opened instanceof Error) throw new ImError('IM_CONFIG_INVALID', `cannot write ${opts.file}: ${opened.message}`);
  }
  try {
    for await (const r of client.allResults(jobId)) {
      summary.count++;
      if (r.state === 'succeeded') summary.succeeded++;
      else if (r.state === 'failed') summary.failed++;
      else summary.other++;
      summary.fuel += r.fuel ?? 0;
      if (file !== undefined) {
        if (!file.write(`${JSON.stringify(resultLine(r))}\n`)) await once(file, 'drain');
      } else if (opts.json) {
        await outJson(resultLine(r));
      } else {
        await out(`${readableResult(r)}\n`);
      }
    }
  } finally {
    if (file !== undefined) {
      file.end();
      await once(file, 'close');
    }
  }
  return summary;
}

export function summaryText(s: ResultsSummary): string {
  const parts = [`${num(s.succeeded)} succeeded`, `${num(s.failed)} failed`];
  if (s.other > 0) parts.push(`${num(s.other)} not run`);
  const head = s.file === undefined ? `${num(s.count)} results` : `wrote ${num(s.count)} results to ${s.file}`;
  return `${head}: ${parts.join(', ')}, ${num(s.fuel)} fuel`;
}
