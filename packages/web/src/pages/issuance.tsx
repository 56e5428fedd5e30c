/**
 * Issuance and the leaderboard: each hour the coordinator issues part of the
 * reward pool by the rolling 24-hour formula (docs/issuance.md). The chart
 * shows every node's share hour by hour, so a provider that leaves is seen
 * rolling off over the next 24 epochs.
 */
import { useState } from 'preact/hooks';
import type { NodeView } from '@idlemesh/sdk';
import { client, request } from '../api.js';
import { LineChart } from '../components/chart.js';
import { Empty, ErrorBox, Loading, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtInt, fmtMsat, shortId } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';
import { latestEpoch, verifyEpoch, windowEpochs } from '../issuance.js';
import type { EpochCheck, EpochSummary } from '../issuance.js';

const CHART_NODES = 8;
const HOUR_MS = 3_600_000;

export function Issuance() {
  useTitle('Issuance');
  const latest = usePoll((s) => latestEpoch(s), 30_000);
  const hour = latest.data?.hour;
  const window = usePoll((s) => (hour === undefined ? Promise.resolve([]) : windowEpochs(hour, 24, s)), null, [hour]);
  const nodes = usePoll(() => client().nodes(), 10_000);
  const byId = new Map((nodes.data ?? []).map((n) => [n.id, n]));
  const e = latest.data;
  return (
    <>
      <PageTitle sub="Rewards follow current, reliable contribution: every hour, from the last 24 hours.">Issuance and leaderboard</PageTitle>
      <ErrorBox error={latest.error} />
      {latest.loading && !e && <Loading what="the latest epoch" />}
      {!latest.loading && !e && !latest.error && (
        <Empty>
          <p><strong>Issuance starts when the coordinator publishes epochs.</strong></p>
          <p>Each hour closes into a table of what every node did; the epoch issues part of the reward pool by the <code>rolling-24h/1</code> formula. Nothing has been published yet.</p>
        </Empty>
      )}
      {e && (
        <>
          <Section title={`Epoch ${e.hour}`} id="epoch">
            <div data-epoch={e.hour}>
              <Stats label="Epoch">
                <Stat id="epoch-issued" label="Issued" value={fmtMsat(e.issuedMsat)} hint={<span data-msat={e.issuedMsat.toString()}>{fmtInt(e.shares.length)} nodes in the window</span>} />
                <Stat id="epoch-pool" label="Reward pool" value={fmtMsat(e.poolMsat)} hint="at the end of the hour" />
                <Stat id="epoch-nodes" label="Nodes rewarded" value={String(e.shares.filter((s) => s.allocationMsat > 0n).length)} />
                <Stat id="epoch-hour" label="Hour" value={hourLabel(e)} hint={e.hourMs === HOUR_MS ? e.formula : `${e.formula}, hours of ${fmtInt(e.hourMs / 1000)} s`} />
              </Stats>
            </div>
          </Section>
          <Leaderboard epoch={e} nodes={byId} />
          <VerifyEpoch epoch={e} />
          <Section title="Share over the rolling window">
            <ErrorBox error={window.error} />
            {window.data && window.data.length > 1 ? <ShareChart epochs={window.data} /> : <p class="muted">The chart appears once two or more epochs are published.</p>}
          </Section>
        </>
      )}
    </>
  );
}

/** When the epoch's hour began (hours are `hourMs` long; shortened ones show seconds). */
function hourLabel(e: EpochSummary): string {
  const iso = new Date(e.hour * e.hourMs).toISOString();
  return e.hourMs === HOUR_MS ? `${iso.slice(0, 13).replace('T', ' ')}:00 UTC` : `${iso.slice(0, 19).replace('T', ' ')} UTC`;
}

function Leaderboard({ epoch, nodes }: { epoch: EpochSummary; nodes: Map<string, NodeView> }) {
  return (
    <Section title="Leaderboard" id="leaderboard">
      <div class="table-wrap" tabIndex={0}>
        <table class="leaderboard">
          <caption>Nodes by allocation in epoch {epoch.hour}; uptime and reliability over its window</caption>
          <thead><tr><th scope="col">Rank</th><th scope="col">Node</th><th scope="col">Share</th><th scope="col">Allocation</th><th scope="col">Uptime</th><th scope="col">Reliability</th><th scope="col">State</th></tr></thead>
          <tbody>
            {epoch.shares.map((s, i) => {
              const n = nodes.get(s.node);
              const outcomes = s.accepted + s.failed;
              return (
                <tr key={s.node} data-node={s.node} data-share={s.share} data-allocation={s.allocationMsat.toString()}>
                  <td>{i + 1}</td>
                  <th scope="row" class="mono">{n?.capabilities.name ?? shortId(s.node)}</th>
                  <td>{(s.share * 100).toFixed(2)}%</td>
                  <td>{fmtMsat(s.allocationMsat)}</td>
                  <td>{(s.uptime * 100).toFixed(1)}%</td>
                  <td title={`${s.accepted} accepted, ${s.failed} failed`}>{outcomes === 0n ? '—' : `${(Number((s.accepted * 1000n) / outcomes) / 10).toFixed(1)}%`}</td>
                  <td>{n?.state ?? 'unknown'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Section>
  );
}

type Checked = EpochCheck & { hour: number };

/** Checks the epoch shown, here: the hour roots, the sums and the coordinator's signature. */
function VerifyEpoch({ epoch }: { epoch: EpochSummary }) {
  const [outcome, setOutcome] = useState<Checked | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const run = async (): Promise<void> => {
    setBusy(true);
    setOutcome(undefined);
    let r: EpochCheck;
    try {
      const key = await request<{ publicKey: string }>('GET', '/v1/receipts/key');
      r = await verifyEpoch(epoch.record, key.publicKey);
    } catch (err) {
      r = { ok: false, reason: (err as Error).message };
    }
    setOutcome({ ...r, hour: epoch.hour });
    setBusy(false);
  };
  return (
    <Section title="Verify in this browser" id="verify-epoch">
      <p>Checks that the rows of every hour hash to the roots the epoch lists, that the allocations add up to what was issued, and that the coordinator's key signed the document and the roots. <code>idlemesh audit issuance</code> also recomputes the allocations.</p>
      <button type="button" onClick={() => void run()} disabled={busy}>{busy ? 'Verifying…' : 'Verify the epoch'}</button>
      <div class="verify-outcome" role="status" aria-live="polite" data-verified={outcome === undefined ? '' : String(outcome.ok)} data-hour={outcome?.hour ?? ''}>
        {outcome?.ok === true && (
          <div class="ok-box">
            <strong>✓ Signature valid.</strong> Epoch {outcome.hour}: {fmtInt(outcome.rows)} rows over {fmtInt(outcome.hours)} hours match their roots, signed by <code class="wrap">{outcome.publicKey}</code>, the coordinator's receipt key.
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
  );
}

function ShareChart({ epochs }: { epochs: EpochSummary[] }) {
  const totals = new Map<string, number>();
  for (const e of epochs) for (const s of e.shares) totals.set(s.node, (totals.get(s.node) ?? 0) + s.share);
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, CHART_NODES).map(([n]) => n);
  // uPlot's time axis is in seconds.
  const x = epochs.map((e) => (e.hour * e.hourMs) / 1000);
  const series = top.map((node) => ({
    label: shortId(node, 8),
    values: epochs.map((e) => (e.shares.find((s) => s.node === node)?.share ?? 0) * 100),
  }));
  return <LineChart title="Share of each hour's issue, %" x={x} series={series} yLabel="%" />;
}
