/**
 * The audit log, checked here: the checkpoint's signature is verified in this
 * browser with @idlemesh/protocol (the same code `idlemesh audit verify`
 * runs), against the log key; a tree head verified before is kept, and the
 * next check proves the log only grew since (a consistency proof).
 */
import { useState } from 'preact/hooks';
import { base64ToBytes, bytesToBase64, openCheckpoint, parseVerifierKey, verifyConsistencyProof } from '@idlemesh/protocol';
import { describeError, request } from '../api.js';
import type { AuditKey, AuditStatus } from '../api.js';
import { ErrorBox, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtInt } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';

const SEEN_KEY = 'idlemesh.audit.seen';

interface Seen { verifierKey: string; size: number; root: string }

type Outcome =
  | { ok: true; size: number; root: string; origin: string; witnessed: number; grew: string }
  | { ok: false; reason: string };

function readSeen(): Seen | undefined {
  try {
    const v = JSON.parse(localStorage.getItem(SEEN_KEY) ?? 'null') as Seen | null;
    return v ?? undefined;
  } catch {
    return undefined;
  }
}

/** Fetches the key and the checkpoint afresh and checks them here; never throws. */
export async function verifyHere(): Promise<Outcome> {
  try {
    const key = await request<AuditKey>('GET', '/v1/audit/key');
    const note = await request<string>('GET', '/v1/audit/checkpoint', { text: true });
    const opened = openCheckpoint(note, { log: parseVerifierKey(key.verifierKey), origin: key.origin });
    const cp = opened.checkpoint;
    const root = bytesToBase64(cp.rootHash);
    let grew = 'not seen before by this browser: nothing to compare with yet';
    const seen = readSeen();
    if (seen && seen.verifierKey !== key.verifierKey) {
      return { ok: false, reason: `the log key changed since this browser last checked (${seen.verifierKey} → ${key.verifierKey})` };
    }
    if (seen && seen.size > cp.size) return { ok: false, reason: `the log shrank: this browser saw size ${seen.size}, the checkpoint says ${cp.size}` };
    if (seen) {
      const proof = await request<{ proof: string[] }>('GET', `/v1/audit/proof/consistency?from=${seen.size}&to=${cp.size}`);
      const consistent = verifyConsistencyProof(seen.size, cp.size, base64ToBytes(seen.root), cp.rootHash, proof.proof.map(base64ToBytes));
      if (!consistent) return { ok: false, reason: `the log at size ${cp.size} does not extend the one this browser saw at size ${seen.size}: history was rewritten` };
      grew = seen.size === cp.size ? 'unchanged since the last check' : `only appended to since size ${fmtInt(seen.size)} (consistency proof checked)`;
    }
    try {
      localStorage.setItem(SEEN_KEY, JSON.stringify({ verifierKey: key.verifierKey, size: cp.size, root } satisfies Seen));
    } catch {
      /* storage disabled */
    }
    return { ok: true, size: cp.size, root, origin: cp.origin, witnessed: opened.witnessed.length, grew };
  } catch (err) {
    return { ok: false, reason: describeError(err).message };
  }
}

export function Audit() {
  useTitle('Audit');
  const status = usePoll(() => request<AuditStatus>('GET', '/v1/audit/status'), 5000);
  const key = usePoll(() => request<AuditKey>('GET', '/v1/audit/key'), null);
  const checkpoint = usePoll(() => request<string>('GET', '/v1/audit/checkpoint', { text: true }), 5000);
  const [outcome, setOutcome] = useState<Outcome | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const verify = async (): Promise<void> => {
    setBusy(true);
    setOutcome(undefined);
    setOutcome(await verifyHere());
    setBusy(false);
  };
  return (
    <>
      <PageTitle sub="Every security-relevant event is a leaf of an append-only Merkle log; the coordinator signs its head.">Audit log</PageTitle>
      <Section title="Verify in this browser" id="verify">
        <p>Checks the signed checkpoint against the log's public key with the same code as <code>idlemesh audit verify</code>, here, without trusting this page's server.</p>
        <button type="button" onClick={() => void verify()} disabled={busy}>{busy ? 'Verifying…' : 'Verify the checkpoint'}</button>
        <div class="verify-outcome" role="status" aria-live="polite" data-verified={outcome === undefined ? '' : String(outcome.ok)}>
          {outcome?.ok === true && (
            <div class="ok-box">
              <strong>✓ Signature valid.</strong> Tree size {fmtInt(outcome.size)}, root <code class="wrap">{outcome.root}</code>, signed by {outcome.origin}
              {outcome.witnessed > 0 ? `, cosigned by ${outcome.witnessed} witnesses` : ''}. The log was {outcome.grew}.
            </div>
          )}
          {outcome?.ok === false && (
            <div class="error">
              <strong>✗ Verification failed.</strong>
              <p class="error-message">{outcome.reason}</p>
            </div>
          )}
        </div>
      </Section>
      <Section title="Log status">
        <ErrorBox error={status.error} />
        <Stats label="Audit log">
          <Stat id="audit-size" label="Entries" value={status.data ? fmtInt(status.data.size) : '…'} hint="in the latest checkpoint" />
          <Stat id="audit-witnessed" label="Witness cosignatures" value={status.data ? `${status.data.witnessed} of ${status.data.quorum} required` : '…'} hint={status.data?.flagged ? 'below the quorum' : 'agents and witnesses cosign'} />
        </Stats>
        {status.data && status.data.witnesses.length > 0 && <p class="muted wrap">Witnessed by: {status.data.witnesses.join(', ')}</p>}
      </Section>
      <Section title="Latest checkpoint">
        <ErrorBox error={checkpoint.error ?? key.error} />
        {key.data && <p>Log key: <code class="wrap">{key.data.verifierKey}</code></p>}
        {checkpoint.data !== undefined && <pre class="note" aria-label="Signed checkpoint note">{checkpoint.data}</pre>}
      </Section>
    </>
  );
}
