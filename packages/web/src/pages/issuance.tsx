/**
 * Issuance and the leaderboard: each hour the coordinator issues part of the
 * reward pool by the rolling 24-hour formula (docs/issuance.md). The chart
 * shows every node's share hour by hour, so a provider that leaves is seen
 * rolling off over the next 24 epochs.
 */
import type { NodeView } from '@idlemesh/sdk';
import { client } from '../api.js';
import { LineChart } from '../components/chart.js';
import { Empty, ErrorBox, Loading, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtMsat, pct, shortId } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';
import { latestEpoch, windowEpochs } from '../issuance.js';
import type { EpochSummary } from '../issuance.js';

const CHART_NODES = 8;

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
          <Section title={`Epoch ${e.hour}`}>
            <Stats label="Epoch">
              <Stat id="epoch-issued" label="Issued" value={fmtMsat(e.issuedMsat)} />
              <Stat id="epoch-pool" label="Reward pool" value={e.poolMsat === undefined ? '—' : fmtMsat(e.poolMsat)} hint="at the end of the hour" />
              <Stat id="epoch-nodes" label="Nodes rewarded" value={String(e.shares.filter((s) => s.allocationMsat > 0n).length)} />
              <Stat id="epoch-hour" label="Hour" value={new Date(e.hour * 3_600_000).toISOString().slice(0, 13).replace('T', ' ') + ':00 UTC'} hint={e.formula} />
            </Stats>
          </Section>
          <Leaderboard epoch={e} nodes={byId} />
          <Section title="Share over the rolling window">
            <ErrorBox error={window.error} />
            {window.data && window.data.length > 1 ? <ShareChart epochs={window.data} /> : <p class="muted">The chart appears once two or more epochs are published.</p>}
          </Section>
        </>
      )}
    </>
  );
}

function Leaderboard({ epoch, nodes }: { epoch: EpochSummary; nodes: Map<string, NodeView> }) {
  return (
    <Section title="Leaderboard" id="leaderboard">
      <div class="table-wrap" tabIndex={0}>
        <table class="leaderboard">
          <caption>Nodes by share of epoch {epoch.hour}</caption>
          <thead><tr><th scope="col">Rank</th><th scope="col">Node</th><th scope="col">Share</th><th scope="col">Allocation</th><th scope="col">Reliability</th><th scope="col">State</th></tr></thead>
          <tbody>
            {epoch.shares.map((s, i) => {
              const n = nodes.get(s.node);
              return (
                <tr key={s.node} data-node={s.node} data-share={s.share} data-allocation={s.allocationMsat.toString()}>
                  <td>{i + 1}</td>
                  <th scope="row" class="mono">{n?.capabilities.name ?? shortId(s.node)}</th>
                  <td>{(s.share * 100).toFixed(2)}%</td>
                  <td>{fmtMsat(s.allocationMsat)}</td>
                  <td>{n && n.completed + n.failed > 0 ? pct(n.completed, n.completed + n.failed) : '—'}</td>
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

function ShareChart({ epochs }: { epochs: EpochSummary[] }) {
  const totals = new Map<string, number>();
  for (const e of epochs) for (const s of e.shares) totals.set(s.node, (totals.get(s.node) ?? 0) + s.share);
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, CHART_NODES).map(([n]) => n);
  const x = epochs.map((e) => e.hour * 3600);
  const series = top.map((node) => ({
    label: shortId(node, 8),
    values: epochs.map((e) => (e.shares.find((s) => s.node === node)?.share ?? 0) * 100),
  }));
  return <LineChart title="Share of each hour's issue, %" x={x} series={series} yLabel="%" />;
}
