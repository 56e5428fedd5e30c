import { useRef } from 'preact/hooks';
import { client, isCode } from '../api.js';
import { LineChart } from '../components/chart.js';
import { Empty, ErrorBox, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtFuel, fmtInt, fmtMsat, fmtRate, pct } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';
import { latestEpoch } from '../issuance.js';

const HISTORY = 90;

interface Sample { t: number; completed: number }

export function Overview() {
  useTitle('Overview');
  const nodes = usePoll(() => client().nodes());
  const market = usePoll(() => client().market(), 5000);
  const jobs = usePoll(() => client().listJobs({ limit: 100 }));
  const pool = usePoll(() => client().account('reward-pool', { limit: 0 }), 5000);
  const epoch = usePoll((s) => latestEpoch(s), 30_000);

  // Throughput from the nodes' completed counters, sampled on every poll.
  const samples = useRef<Sample[]>([]);
  const list = nodes.data;
  if (list) {
    const completed = list.reduce((s, n) => s + n.completed, 0);
    const last = samples.current.at(-1);
    if (!last || Date.now() - last.t >= 1500) samples.current = [...samples.current, { t: Date.now(), completed }].slice(-HISTORY);
  }
  const rates = samples.current.slice(1).map((s, i) => {
    const prev = samples.current[i] as Sample;
    return { t: s.t / 1000, rate: Math.max(0, (s.completed - prev.completed) / ((s.t - prev.t) / 1000)) };
  });

  const online = list?.filter((n) => n.state === 'online') ?? [];
  const paused = list?.filter((n) => n.state === 'paused').length ?? 0;
  const slots = online.reduce((s, n) => s + n.capabilities.maxTasks, 0);
  // Leases beyond a node's slots are prefetched, not running: utilization counts slots in use.
  const running = online.reduce((s, n) => s + Math.min(n.running, n.capabilities.maxTasks), 0);
  const leased = online.reduce((s, n) => s + n.running, 0);
  const fuelPerSec = online.reduce((s, n) => s + n.capabilities.benchmark.fuelPerSec, 0);
  const cores = online.reduce((s, n) => s + n.capabilities.cores, 0);
  const jobList = jobs.data ?? [];
  const active = jobList.filter((j) => j.state === 'running' || j.state === 'queued').length;
  const queuedTasks = jobList.reduce((s, j) => s + j.counts.queued, 0);

  return (
    <>
      <PageTitle sub="The mesh right now; updates every 2 seconds.">Overview</PageTitle>
      <Section title="Capacity">
        <ErrorBox error={nodes.error} />
        <Stats label="Capacity">
          <Stat id="nodes-online" label="Nodes online" value={list ? fmtInt(online.length) : '…'} hint={list ? `${fmtInt(list.length)} known, ${paused} paused` : undefined} />
          <Stat id="slots" label="Task slots" value={list ? fmtInt(slots) : '…'} hint={`${fmtInt(cores)} cores`} />
          <Stat id="utilization" label="Utilization" value={list ? pct(running, slots) : '…'} hint={`${fmtInt(leased)} tasks leased`} />
          <Stat id="fuel-rate" label="Measured speed" value={list ? fmtRate(fuelPerSec) : '…'} hint="fuel per second, calibrated" />
          <Stat id="tasks-rate" label="Tasks per second" value={rates.length > 0 ? (rates.at(-1)?.rate ?? 0).toFixed(1) : '…'} hint="finished, last 2 s" />
        </Stats>
        {rates.length > 2 && (
          <LineChart title="Tasks finished per second" x={rates.map((r) => r.t)} series={[{ label: 'tasks/s', values: rates.map((r) => r.rate) }]} height={160} />
        )}
      </Section>

      <Section title="Jobs">
        <ErrorBox error={jobs.error} />
        <Stats label="Jobs">
          <Stat id="jobs-active" label="Running or queued" value={jobs.data ? fmtInt(active) : '…'} />
          <Stat id="jobs-total" label="Recent jobs" value={jobs.data ? fmtInt(jobList.length) : '…'} hint="newest 100" />
          <Stat id="tasks-queued" label="Tasks waiting" value={jobs.data ? fmtInt(queuedTasks) : '…'} />
          <Stat id="fuel-used" label="Fuel used" value={jobs.data ? fmtFuel(jobList.reduce((s, j) => s + j.fuelUsed, 0)) : '…'} hint="by recent jobs" />
        </Stats>
      </Section>

      <Section title="Market">
        <ErrorBox error={market.error} />
        {market.data && (
          <>
            <div class="table-wrap" tabIndex={0}>
              <table class="market">
                <caption>Spot prices by runtime (median clearing ask, last hour)</caption>
                <thead>
                  <tr><th scope="col">Runtime</th><th scope="col">Spot price</th><th scope="col">Paid runs</th><th scope="col">Free slots</th><th scope="col">Queued tasks</th><th scope="col">Demand</th></tr>
                </thead>
                <tbody>
                  {market.data.runtimes.map((r) => (
                    <tr key={r.runtime} data-runtime={r.runtime}>
                      <th scope="row">{r.runtime}</th>
                      <td>{r.spotMsatPerEu === null ? 'no paid work yet' : `${fmtInt(r.spotMsatPerEu)} msat/EU`}</td>
                      <td>{fmtInt(r.executions)}</td>
                      <td>{fmtInt(r.supplySlots)}</td>
                      <td>{fmtInt(r.queuedTasks)}</td>
                      <td>{r.demandEu.toFixed(2)} EU</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <p class="muted">Fees: coordinator {market.data.fees.coordinatorFeeBps / 100}%, reward pool {market.data.fees.poolFeeBps / 100}%.</p>
          </>
        )}
      </Section>

      <Section title="Rewards">
        <Stats label="Rewards">
          <Stat id="reward-pool" label="Reward pool" value={pool.data ? fmtMsat(pool.data.account.balanceMsat) : pool.error ? '—' : '…'}
            hint={pool.error ? (isCode(pool.error, 'IM_NOT_FOUND', 'IM_FORBIDDEN', 'IM_UNAUTHORIZED') ? 'visible to admins, auditors and operators' : 'unavailable') : 'fees and slashes, paid out by issuance'} />
          <Stat id="issued-hour" label="Issued this hour" value={epoch.data ? fmtMsat(epoch.data.issuedMsat) : epoch.loading ? '…' : '—'}
            hint={epoch.data ? `epoch ${epoch.data.hour}, ${epoch.data.shares.length} nodes` : 'issuance starts when the coordinator publishes epochs'} />
        </Stats>
        <ErrorBox error={epoch.error} />
        {!list && !nodes.error && <Empty>Waiting for the coordinator…</Empty>}
      </Section>
    </>
  );
}
