import { useEffect, useState } from 'preact/hooks';
import type { JobView, TransferView } from '@idlemesh/sdk';
import { client } from '../api.js';
import { Badge, ErrorBox, Loading, PageTitle, Progress, Section, Stat, Stats } from '../components/ui.js';
import { fmtFuel, fmtInt, fmtMsat, fmtTime, previewOutput, shortId } from '../format.js';
import { useAction, usePoll, useTitle } from '../hooks.js';
import { done } from './jobs.js';

const TERMINAL = new Set(['completed', 'cancelled']);

/** One job, live: its event stream (server-sent events), else polling. */
export function Job({ id }: { id: string }) {
  useTitle(`Job ${shortId(id, 16)}`);
  const [job, setJob] = useState<JobView | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    const ctl = new AbortController();
    setJob(undefined);
    setError(undefined);
    client().getJob(id).then(setJob, (err: unknown) => {
      if (!ctl.signal.aborted) setError(err);
    });
    client().waitForJob(id, { signal: ctl.signal, onProgress: (j) => { setJob(j); setError(undefined); } }).then(setJob, (err: unknown) => {
      if (!ctl.signal.aborted) setError(err);
    });
    return () => ctl.abort();
  }, [id]);
  const finished = job !== undefined && TERMINAL.has(job.state);
  const results = usePoll(() => client().results(id, { limit: 200 }), finished ? null : 2000, [id, finished]);
  const charges = usePoll(async () => (job?.buyer !== undefined ? (await client().account(undefined, { limit: 1000 })).transfers.filter((t) => t.ref === id) : []), finished ? null : 3000, [id, finished, job?.buyer]);
  const cancel = useAction(async () => setJob(await client().cancelJob(id)));

  return (
    <>
      <PageTitle sub={<span class="mono wrap">{id}</span>}>{job?.name ?? 'Job'}</PageTitle>
      <ErrorBox error={error} />
      {!job && !error && <Loading what="the job" />}
      {job && (
        <>
          <Section title="Progress" actions={!finished && <button type="button" class="small danger" onClick={() => void cancel.run()} disabled={cancel.busy}>Cancel job</button>}>
            <p class="job-state" aria-live="polite">
              <Badge state={job.state} /> <span data-testid="job-progress">{fmtInt(done(job))} / {fmtInt(job.counts.total)} tasks done</span>
            </p>
            <Progress label="Job progress" done={done(job)} failed={job.counts.failed} total={job.counts.total} />
            <Stats label="Task counts">
              <Stat label="Succeeded" value={fmtInt(job.counts.succeeded)} id="succeeded" />
              <Stat label="Failed" value={fmtInt(job.counts.failed)} id="failed" />
              <Stat label="Running" value={fmtInt(job.counts.leased)} id="leased" />
              <Stat label="Queued" value={fmtInt(job.counts.queued)} id="queued" />
              <Stat label="Fuel used" value={fmtFuel(job.fuelUsed)} id="job-fuel" hint={`${fmtInt(job.fuelUsed)} fuel`} />
            </Stats>
            <ErrorBox error={cancel.error} />
          </Section>
          <Section title="Cost and verification">
            <Cost job={job} charges={charges.data} />
            <ErrorBox error={charges.error} />
          </Section>
          <Section title="Results">
            <ErrorBox error={results.error} />
            {results.data && results.data.results.length === 0 && <p class="muted">No results yet.</p>}
            {results.data && results.data.results.length > 0 && (
              <div class="table-wrap" tabIndex={0}>
                <table class="results">
                  <caption>First {results.data.results.length} results in task order</caption>
                  <thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Node</th><th scope="col">Fuel</th><th scope="col">Output or error</th></tr></thead>
                  <tbody>
                    {results.data.results.map((r) => (
                      <tr key={r.index} data-index={r.index} data-node={r.nodeId ?? ''} data-fuel={r.fuel ?? ''}>
                        <th scope="row">{r.index}</th>
                        <td><Badge state={r.state} /></td>
                        <td class="mono">{r.nodeId ? shortId(r.nodeId, 10) : '—'}</td>
                        <td>{r.fuel === undefined ? '—' : fmtInt(r.fuel)}</td>
                        <td class="output">{r.error ? <span class="bad">{r.error.code}: {r.error.message}</span> : <code>{previewOutput(r.output)}</code>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Section>
        </>
      )}
    </>
  );
}

function Cost({ job, charges }: { job: JobView; charges: TransferView[] | undefined }) {
  // What left the buyer's account for this job: posts of the escrow hold (and any single transfers).
  const total = (charges ?? [])
    .filter((t) => (t.type === 'post' || t.type === 'single') && t.debitAccount === job.buyer)
    .reduce((s, t) => s + BigInt(t.amountMsat), 0n);
  const perEu = job.fuelUsed > 0 ? Number((total * 1_000_000_000n) / BigInt(job.fuelUsed)) : 0;
  return (
    <dl class="inline-dl">
      <dt>Verification</dt><dd>{job.verification ? verificationText(job.verification) : 'coordinator default'}</dd>
      <dt>Bid</dt><dd>{job.bid > 0 ? `${fmtInt(job.bid)} msat per EU` : 'free (bid 0)'}</dd>
      {job.holdMsat !== undefined && <><dt>Escrow held at submit</dt><dd>{fmtMsat(job.holdMsat)}</dd></>}
      {job.buyer !== undefined && <><dt>Charged</dt><dd data-testid="job-charged">{fmtMsat(total)}{total > 0n && <span class="muted"> · {fmtInt(perEu)} msat per EU with fees</span>}</dd></>}
      <dt>Settled</dt><dd>{job.settledAt !== undefined ? fmtTime(job.settledAt) : job.buyer !== undefined ? 'not yet' : 'nothing to settle'}</dd>
      <dt>Limits per task</dt><dd>{fmtFuel(job.limits.fuel)} · {job.limits.memoryMb} MiB · {fmtInt(job.limits.timeoutMs)} ms</dd>
      {job.label !== undefined && <><dt>Label</dt><dd>{job.label}{job.dataClasses?.length ? ` · ${job.dataClasses.join(', ')}` : ''}</dd></>}
    </dl>
  );
}

/** A job's verification mode in words. */
function verificationText(v: NonNullable<JobView['verification']>): string {
  switch (v.mode) {
    case 'trusted': return 'trusted';
    case 'spot-check': return `spot-check, ${Math.round(v.rate * 100)}% re-executed by the referee`;
    case 'replicate': return `replicated: ${v.minQuorum} of ${v.targetResults} nodes must agree (at most ${v.maxTotalResults})`;
    case 'adaptive': return `adaptive: replicated until a node has ${v.trustStreak} valid results in a row`;
    case 'optimistic': return `optimistic: ${Math.round(v.rate * 100)}% re-executed, earnings pending ${Math.round(v.windowMs / 60_000)} min`;
  }
}
