import { useState } from 'preact/hooks';
import type { JobView } from '@idlemesh/sdk';
import { client } from '../api.js';
import { Badge, Empty, ErrorBox, Loading, PageTitle, Progress, Section } from '../components/ui.js';
import { ago, fmtFuel, fmtInt, fmtMsat, shortId } from '../format.js';
import { useAction, usePoll, useTitle } from '../hooks.js';
import { navigate } from '../router.js';

export function Jobs() {
  useTitle('Jobs');
  const jobs = usePoll(() => client().listJobs({ limit: 100 }));
  return (
    <>
      <PageTitle sub="Newest first; progress updates every 2 seconds.">Jobs</PageTitle>
      <ErrorBox error={jobs.error} />
      {jobs.loading && !jobs.data && <Loading what="jobs" />}
      {jobs.data && jobs.data.length === 0 && <Empty>No jobs yet. Submit one below, or with <code>idlemesh submit module.wasm --inputs inputs.jsonl</code>.</Empty>}
      {jobs.data && jobs.data.length > 0 && (
        <ul class="job-list" aria-label="Jobs">
          {jobs.data.map((j) => <JobItem key={j.id} job={j} />)}
        </ul>
      )}
      <SubmitForm onSubmitted={(id) => { jobs.reload(); navigate(`/jobs/${id}`); }} />
    </>
  );
}

export function done(j: JobView): number {
  return j.counts.succeeded + j.counts.failed + j.counts.cancelled;
}

function JobItem({ job: j }: { job: JobView }) {
  return (
    <li class="job" data-job={j.id} data-state={j.state}>
      <div class="job-head">
        <a href={`/jobs/${j.id}`} class="job-name">{j.name ?? shortId(j.id, 18)}</a>
        <Badge state={j.state} />
      </div>
      <Progress label={`Progress of ${j.name ?? j.id}`} done={done(j)} failed={j.counts.failed} total={j.counts.total} />
      <p class="job-meta">
        <span class="job-count">{fmtInt(done(j))} / {fmtInt(j.counts.total)} tasks</span>
        {j.counts.failed > 0 && <span class="bad"> · {fmtInt(j.counts.failed)} failed</span>}
        <span> · {fmtFuel(j.fuelUsed)}</span>
        {j.holdMsat !== undefined && <span> · max cost {fmtMsat(j.holdMsat)}</span>}
        {j.bid > 0 && <span> · bid {fmtInt(j.bid)} msat/EU</span>}
        <span class="muted"> · {ago(j.createdAt)}</span>
      </p>
    </li>
  );
}

/** Upload a module and run it once per input line (what `idlemesh submit` does). */
function SubmitForm({ onSubmitted }: { onSubmitted: (id: string) => void }) {
  const [file, setFile] = useState<File | undefined>(undefined);
  const [inputs, setInputs] = useState('');
  const [bid, setBid] = useState('0');
  const [fuel, setFuel] = useState('');
  const submit = useAction(async () => {
    if (file === undefined) throw new Error('choose a WebAssembly module (.wasm) first');
    const lines = inputs.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
    if (lines.length === 0) throw new Error('give at least one input line: each line is one task');
    const mod = await client().uploadModule(new Uint8Array(await file.arrayBuffer()));
    const enc = new TextEncoder();
    const job = await client().submitJob({
      module: mod.hash,
      inputs: lines.map((l) => toBase64(enc.encode(l))),
      ...(bid.trim() !== '' ? { bid: Number(bid) } : {}),
      ...(fuel.trim() !== '' ? { limits: { fuel: Number(fuel) } } : {}),
      name: file.name.replace(/\.wasm$/, ''),
    });
    onSubmitted(job.id);
    return job;
  });
  return (
    <Section title="Submit a job">
      <form class="form" onSubmit={(e) => { e.preventDefault(); void submit.run(); }}>
        <label for="job-module">Module (.wasm)</label>
        <input id="job-module" type="file" accept=".wasm,application/wasm" onChange={(e) => setFile((e.currentTarget as HTMLInputElement).files?.[0])} />
        <label for="job-inputs">Inputs, one task per line</label>
        <textarea id="job-inputs" rows={4} value={inputs} onInput={(e) => setInputs((e.currentTarget as HTMLTextAreaElement).value)} placeholder={'1000\n2000'} />
        <div class="form-row">
          <div>
            <label for="job-bid">Bid (msat per EU)</label>
            <input id="job-bid" inputMode="numeric" value={bid} onInput={(e) => setBid((e.currentTarget as HTMLInputElement).value)} />
          </div>
          <div>
            <label for="job-fuel">Fuel per task (optional)</label>
            <input id="job-fuel" inputMode="numeric" value={fuel} onInput={(e) => setFuel((e.currentTarget as HTMLInputElement).value)} />
          </div>
        </div>
        <button type="submit" disabled={submit.busy}>{submit.busy ? 'Submitting…' : 'Submit'}</button>
        <ErrorBox error={submit.error} title="The job was not submitted" />
      </form>
    </Section>
  );
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
