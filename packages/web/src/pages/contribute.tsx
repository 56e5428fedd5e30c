/**
 * /contribute: this browser as a node. Starting creates (once) an Ed25519
 * key kept in IndexedDB, connects to the coordinator's agent socket and runs
 * metered wasm tasks in Web Workers. It pauses itself when the tab is hidden
 * or the device runs on battery, and on the owner's word.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { client, isCode } from '../api.js';
import { Badge, ErrorBox, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtFuel, fmtInt, fmtMsat, fmtRate, shortId } from '../format.js';
import { usePoll, useTitle } from '../hooks.js';
import { BrowserNode, workersFor } from '../node/agent.js';
import type { NodeSnapshot } from '../node/agent.js';

const CONSENT_KEY = 'idlemesh.contribute';
const SHARE_KEY = 'idlemesh.contribute.share';
const SHARES = [0.25, 0.5, 0.75, 1];

function stored(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* storage disabled */
  }
}

/** One node per tab, kept across page changes inside the app. */
let node: BrowserNode | undefined;

export function Contribute() {
  useTitle('Contribute');
  const [share, setShare] = useState(() => {
    const s = Number(stored(SHARE_KEY));
    return SHARES.includes(s) ? s : 0.5;
  });
  const [snap, setSnap] = useState<NodeSnapshot | undefined>(node?.snapshot);
  const shareRef = useRef(share);
  shareRef.current = share;

  useEffect(() => {
    if (node === undefined && stored(CONSENT_KEY) === 'on') {
      node = new BrowserNode({ origin: location.origin, share: shareRef.current });
      void node.start();
    }
    return node?.subscribe(setSnap);
  }, []);

  const start = (): void => {
    store(CONSENT_KEY, 'on');
    node ??= new BrowserNode({ origin: location.origin, share });
    node.subscribe(setSnap);
    void node.start();
  };
  const stop = (): void => {
    store(CONSENT_KEY, null);
    node?.stop();
  };
  const changeShare = (v: number): void => {
    setShare(v);
    store(SHARE_KEY, String(v));
    node?.setShare(v);
  };

  const running = snap !== undefined && snap.status !== 'stopped';
  const manualPause = snap?.owner?.pausedByOwner ?? false;
  const shareIndex = Math.max(0, SHARES.indexOf(share));

  return (
    <>
      <PageTitle sub="Lend this browser's idle CPU to the mesh and earn sats for verified work.">Contribute this browser</PageTitle>
      <Section title="This node" id="node">
        <div class="node-status" data-status={snap?.status ?? 'stopped'} data-node-id={snap?.nodeId ?? ''} data-pause-reason={snap?.pauseReason ?? ''} data-slots={snap?.slots ?? ''}>
          <p class="status-line" role="status" aria-live="polite">
            <Badge state={snap?.status ?? 'stopped'} />{' '}
            {statusText(snap)}
          </p>
          {snap?.nodeId && <p class="muted">Node id <code class="wrap">{snap.nodeId}</code></p>}
        </div>
        <div class="button-row">
          {!running
            ? <button type="button" onClick={start}>Start contributing</button>
            : <button type="button" class="danger" onClick={stop}>Stop</button>}
          {running && (
            <button type="button" aria-pressed={manualPause} onClick={() => node?.setPausedByOwner(!manualPause)}>{manualPause ? 'Resume' : 'Pause'}</button>
          )}
        </div>
        <div class="slider">
          <label for="cpu-share">CPU share: <strong>{Math.round(share * 100)}%</strong> ({workersFor(share)} of {navigator.hardwareConcurrency || 1} cores)</label>
          <input id="cpu-share" type="range" min={0} max={SHARES.length - 1} step={1} value={shareIndex}
            aria-valuetext={`${Math.round(share * 100)} percent, ${workersFor(share)} workers`}
            onInput={(e) => changeShare(SHARES[Number((e.currentTarget as HTMLInputElement).value)] ?? 0.5)} />
        </div>
        {snap?.lastError !== undefined && <p class="bad" role="alert">{snap.lastError}</p>}
      </Section>
      {snap !== undefined && snap.nodeId !== undefined && <Work snap={snap} />}
      <Section title="How it behaves">
        <ul>
          <li>Tasks are metered WebAssembly, run in Web Workers with the same runtime as the <code>idlemesh agent</code>: the same fuel, the same signed receipts.</li>
          <li>It takes no work while this tab is hidden, while the device runs on battery (where the browser tells), or while you pause it.</li>
          <li>Its key stays in this browser (IndexedDB, not extractable). Earnings go to the operator account of its node id.</li>
        </ul>
      </Section>
    </>
  );
}

function statusText(s: NodeSnapshot | undefined): string {
  if (s === undefined || s.status === 'stopped') return 'Not contributing.';
  switch (s.status) {
    case 'starting': return 'Creating or loading the node key, measuring this device…';
    case 'connecting': return 'Connecting to the coordinator…';
    case 'paused': return `Paused: ${s.pauseReason ?? 'by the owner'}. No new work is taken.`;
    case 'active': return `Contributing with ${s.workers} worker${s.workers === 1 ? '' : 's'}: at most ${s.slots ?? s.workers} task${(s.slots ?? s.workers) === 1 ? '' : 's'} leased at once.`;
  }
}

function Work({ snap }: { snap: NodeSnapshot }) {
  const id = snap.nodeId as string;
  const earnings = usePoll(() => client().account(`operator:${id}`, { limit: 0 }), 3000, [id]);
  return (
    <Section title="Work done" id="work">
      <Stats label="Work done">
        <Stat id="tasks-done" label="Tasks done" value={<span data-value={snap.accepted}>{fmtInt(snap.accepted)}</span>} hint={snap.failed > 0 ? `${fmtInt(snap.failed)} failed` : 'accepted by the coordinator'} />
        <Stat id="running" label="Running" value={<span data-value={snap.running}>{fmtInt(snap.running)}</span>} hint={`${fmtInt(snap.leased)} leased so far`} />
        <Stat id="slots" label="Slots" value={<span data-value={snap.slots ?? ''}>{snap.slots === undefined ? '—' : fmtInt(snap.slots)}</span>} hint="tasks at once, as the coordinator was told" />
        <Stat id="effort" label="Effort" value={<span data-value={snap.fuel}>{fmtFuel(snap.fuel)}</span>} hint={`${fmtInt(snap.fuel)} fuel`} />
        <Stat id="speed" label="Speed" value={snap.fuelPerSec > 0 ? fmtRate(snap.fuelPerSec) : '…'} hint="fuel per second per worker" />
        <Stat id="earnings" label="Earnings" value={earnings.data ? fmtMsat(earnings.data.account.balanceMsat) : earnings.error ? '—' : '…'}
          hint={earnings.data ? `${fmtMsat(earnings.data.account.pendingMsat)} pending` : earnings.error && isCode(earnings.error, 'IM_NOT_FOUND', 'IM_FORBIDDEN', 'IM_UNAUTHORIZED') ? 'sign in as an operator to see them' : undefined} />
      </Stats>
      {earnings.error !== undefined && !isCode(earnings.error, 'IM_NOT_FOUND', 'IM_FORBIDDEN', 'IM_UNAUTHORIZED') && <ErrorBox error={earnings.error} />}
      {snap.recent.length > 0 && (
        <div class="table-wrap" tabIndex={0}>
          <table class="recent">
            <caption>Latest tasks</caption>
            <thead><tr><th scope="col">Task</th><th scope="col">Result</th><th scope="col">Fuel</th><th scope="col">Time</th><th scope="col">Coordinator</th></tr></thead>
            <tbody>
              {snap.recent.map((t) => (
                <tr key={t.taskId} data-task={t.taskId} data-fuel={t.fuel}>
                  <td class="mono">{shortId(t.taskId, 24)}</td>
                  <td>{t.ok ? 'ok' : <span class="bad">failed</span>}</td>
                  <td>{fmtInt(t.fuel)}</td>
                  <td>{fmtInt(t.ms)} ms</td>
                  <td>{t.status}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
