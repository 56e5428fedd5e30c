import { useState } from 'preact/hooks';
import type { NodeView } from '@idlemesh/sdk';
import { client } from '../api.js';
import { Badge, Empty, ErrorBox, Loading, PageTitle } from '../components/ui.js';
import { ago, fmtInt, fmtMsat, fmtRate, fmtTime, pct, shortId } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';
import { latestEpoch } from '../issuance.js';

export function Nodes() {
  useTitle('Nodes');
  const nodes = usePoll(() => client().nodes());
  const epoch = usePoll((s) => latestEpoch(s), 30_000);
  const [open, setOpen] = useState<string | undefined>(undefined);
  const list = [...(nodes.data ?? [])].sort((a, b) => order(a) - order(b) || b.lastSeen - a.lastSeen);
  const shareOf = new Map(epoch.data?.shares.map((s) => [s.node, s.share]) ?? []);

  return (
    <>
      <PageTitle sub="Every agent this coordinator knows, online first.">Nodes</PageTitle>
      <ErrorBox error={nodes.error} />
      {nodes.loading && !nodes.data && <Loading what="nodes" />}
      {nodes.data && list.length === 0 && <Empty>No node has connected yet. Start one with <code>idlemesh agent</code>, or open <a href="/contribute">Contribute</a> in any browser.</Empty>}
      {list.length > 0 && (
        <div class="table-wrap" tabIndex={0}>
          <table class="nodes">
            <caption>{list.length} nodes</caption>
            <thead>
              <tr>
                <th scope="col">Node</th><th scope="col">State</th><th scope="col">Runtimes</th><th scope="col">Slots</th>
                <th scope="col">Speed</th><th scope="col">Running</th><th scope="col">Done</th><th scope="col">Reliability</th>
                <th scope="col">24 h share</th><th scope="col">Last seen</th><th scope="col"><span class="sr-only">Stake and earnings</span></th>
              </tr>
            </thead>
            <tbody>
              {list.map((n) => (
                <NodeRow key={n.id} n={n} share={shareOf.get(n.id)} open={open === n.id} toggle={() => setOpen(open === n.id ? undefined : n.id)} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function order(n: NodeView): number {
  return n.state === 'online' ? 0 : n.state === 'paused' ? 1 : n.state === 'draining' ? 2 : 3;
}

function NodeRow({ n, share, open, toggle }: { n: NodeView; share: number | undefined; open: boolean; toggle: () => void }) {
  const c = n.capabilities;
  const detailId = `node-${n.id.slice(0, 16)}`;
  return (
    <>
      <tr data-node={n.id}>
        <th scope="row">
          <span class="node-name">{c.name ?? shortId(n.id)}</span>
          {c.name !== undefined && <span class="muted mono"> {shortId(n.id, 8)}</span>}
          {n.org !== undefined && <span class="muted"> · {n.org}{n.domain ? `/${n.domain}` : ''}</span>}
        </th>
        <td><Badge state={n.state} />{n.pauseReason !== undefined && <span class="muted small-text pause-reason">{n.pauseReason}</span>}</td>
        <td>{c.runtimes.join(', ')}{c.gpus.length > 0 ? ` · ${c.gpus.length} GPU` : ''}</td>
        <td>{fmtInt(c.maxTasks)}</td>
        <td>{fmtRate(c.benchmark.fuelPerSec)}</td>
        <td>{fmtInt(n.running)}</td>
        <td>{fmtInt(n.completed)}</td>
        <td title="accepted ÷ (accepted + failed)">{n.completed + n.failed === 0 ? '—' : pct(n.completed, n.completed + n.failed)}</td>
        <td>{share === undefined ? '—' : `${(share * 100).toFixed(2)}%`}</td>
        <td title={fmtTime(n.lastSeen)}>{n.state === 'offline' ? ago(n.lastSeen) : 'now'}</td>
        <td><button type="button" class="small" aria-expanded={open} aria-controls={detailId} aria-label={`Details: stake and earnings of ${c.name ?? shortId(n.id)}`} onClick={toggle}>{open ? 'Hide' : 'Details'}</button></td>
      </tr>
      {open && (
        <tr class="detail-row" id={detailId}>
          <td colSpan={11}><NodeDetail n={n} /></td>
        </tr>
      )}
    </>
  );
}

function NodeDetail({ n }: { n: NodeView }) {
  const stakes = usePoll(() => client().stakes(n.id), 5000, [n.id]);
  const c = n.capabilities;
  return (
    <div class="node-detail">
      <p class="mono wrap">{n.id}</p>
      <p>{c.cores} cores · {fmtInt(c.memoryMb)} MiB · {c.os}/{c.arch} · agent {c.agentVersion}{c.region ? ` · ${c.region}` : ''}{c.ask ? ` · asks ${fmtInt(c.ask)} msat/EU` : ''} · first seen {fmtTime(n.firstSeen)}</p>
      <ErrorBox error={stakes.error} />
      {stakes.data && (
        <>
          <dl class="inline-dl">
            <dt>Earned (operator account)</dt><dd>{fmtMsat(stakes.data.operator.balanceMsat)} <span class="muted">({fmtMsat(stakes.data.operator.pendingMsat)} pending)</span></dd>
            <dt>Staked</dt><dd>{fmtMsat(stakes.data.stake.balanceMsat)}</dd>
          </dl>
          {stakes.data.bonds.length === 0 ? <p class="muted">No bonds: this node is not bonded for the public pool.</p> : (
            <ul>
              {stakes.data.bonds.map((b) => (
                <li key={b.id}>{fmtMsat(b.remainingMsat)} · {b.capacityUnits} capacity units · <Badge state={b.status} />{b.unlockAt ? ` · unlocks ${fmtTime(b.unlockAt)}` : ''}</li>
              ))}
            </ul>
          )}
        </>
      )}
    </div>
  );
}
