import { useEffect, useState } from 'preact/hooks';
import { request } from '../api.js';
import type { Approval, PolicyView } from '../api.js';
import { Badge, Empty, ErrorBox, Loading, PageTitle, Section } from '../components/ui.js';
import { ago, fmtTime } from '../format.js';
import { useAction, usePoll, useTitle } from '../hooks.js';
import { useSession } from '../session.js';

export function Approvals() {
  useTitle('Approvals');
  const s = useSession();
  const open = s.who !== undefined && s.who !== 'signed-out' && s.who.kind === 'open';
  const list = usePoll(() => request<{ approvals: Approval[] }>('GET', '/v1/approvals'));
  const approvals = [...(list.data?.approvals ?? [])].sort((a, b) => Number(b.state === 'pending') - Number(a.state === 'pending') || b.createdAt - a.createdAt);
  const pending = approvals.filter((a) => a.state === 'pending');
  return (
    <>
      <PageTitle sub="Private work that wants to overflow to public capacity waits here for an approver.">Approvals</PageTitle>
      <Section title={`Waiting (${pending.length})`} id="pending">
        <ErrorBox error={list.error} />
        {list.loading && !list.data && <Loading what="approvals" />}
        {list.data && pending.length === 0 && <Empty>Nothing waits for a decision.</Empty>}
        <ul class="approvals">
          {pending.map((a) => <PendingApproval key={a.id} a={a} onDecided={list.reload} />)}
        </ul>
      </Section>
      {approvals.length > pending.length && (
        <Section title="Decided">
          <div class="table-wrap" tabIndex={0}>
            <table>
              <caption>Earlier decisions</caption>
              <thead><tr><th scope="col">Job</th><th scope="col">Decision</th><th scope="col">Reason</th><th scope="col">By</th><th scope="col">When</th></tr></thead>
              <tbody>
                {approvals.filter((a) => a.state !== 'pending').map((a) => (
                  <tr key={a.id}>
                    <td class="mono"><a href={`/jobs/${a.jobId}`}>{a.jobId}</a></td>
                    <td><Badge state={a.state} /></td>
                    <td>{a.reason ?? '—'}</td>
                    <td class="mono">{a.decidedBy ?? '—'}</td>
                    <td>{fmtTime(a.decidedAt ?? a.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Section>
      )}
      {open ? (
        <Section title="Policy" id="policy">
          <p class="muted">Policies belong to organisations. This coordinator has none yet: it is a local mesh where every job runs anywhere. Bootstrap it (<code>idlemesh bootstrap</code>) to set one.</p>
        </Section>
      ) : <Policy />}
    </>
  );
}

function PendingApproval({ a, onDecided }: { a: Approval; onDecided: () => void }) {
  const [reason, setReason] = useState('');
  const decide = useAction(async (decision: 'approve' | 'deny') => {
    const r = await request<Approval>('POST', `/v1/approvals/${encodeURIComponent(a.id)}`, { json: { decision, reason: reason.trim() } });
    onDecided();
    return r;
  });
  const rid = `reason-${a.id}`;
  return (
    <li class="approval card-inner" data-approval={a.id}>
      <p>Job <a class="mono" href={`/jobs/${a.jobId}`}>{a.jobId}</a> of <span class="mono">{a.orgId}</span> asks to cross to public capacity · {ago(a.createdAt)}</p>
      <form class="form" onSubmit={(e) => e.preventDefault()}>
        <label for={rid}>Reason (recorded in the audit log)</label>
        <input id={rid} value={reason} onInput={(e) => setReason((e.currentTarget as HTMLInputElement).value)} />
        <div class="button-row">
          <button type="button" onClick={() => void decide.run('approve')} disabled={decide.busy}>Approve</button>
          <button type="button" class="danger" onClick={() => void decide.run('deny')} disabled={decide.busy}>Deny</button>
        </div>
      </form>
      <ErrorBox error={decide.error} title="The decision was refused" />
    </li>
  );
}

/** The organisation's placement policy: read, edit, and see the API's complaint about a malformed one. */
function Policy() {
  const current = usePoll(() => request<PolicyView>('GET', '/v1/policy'), null);
  const [text, setText] = useState('');
  const [format, setFormat] = useState<'yaml' | 'json'>('yaml');
  useEffect(() => {
    if (current.data?.text !== undefined) setText(current.data.text);
    if (current.data?.format === 'json') setFormat('json');
  }, [current.data]);
  const save = useAction(async () => {
    const r = await request<{ org: string; version: number; hash: string }>('POST', '/v1/policy', { json: { text, format } });
    current.reload();
    return r;
  });
  return (
    <Section title="Policy" id="policy">
      {current.data && <p class="muted">{current.data.version === 0 ? current.data.note ?? 'No policy yet.' : `Version ${current.data.version} of ${current.data.org}.`}</p>}
      <ErrorBox error={current.error} title="The policy cannot be read" />
      <form class="form" onSubmit={(e) => { e.preventDefault(); void save.run(); }}>
        <label for="policy-text">Policy ({format.toUpperCase()})</label>
        <textarea id="policy-text" rows={8} class="mono" spellcheck={false} value={text} onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)} placeholder={'version: 1\ndefaultLabel: private\noverflow:\n  waitMs: 0\n  approval: per-job'} />
        <label for="policy-format">Format</label>
        <select id="policy-format" value={format} onChange={(e) => setFormat((e.currentTarget as HTMLSelectElement).value as 'yaml' | 'json')}>
          <option value="yaml">YAML</option>
          <option value="json">JSON</option>
        </select>
        <button type="submit" disabled={save.busy || text.trim() === ''}>Save policy</button>
      </form>
      <ErrorBox error={save.error} title="The policy was refused" />
      {save.result && <p class="good" role="status">Saved: version {save.result.version}.</p>}
    </Section>
  );
}
