import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { refreshWhoami } from './api.js';
import { ErrorBox } from './components/ui.js';
import { Approvals } from './pages/approvals.js';
import { Audit } from './pages/audit.js';
import { Contribute } from './pages/contribute.js';
import { Issuance } from './pages/issuance.js';
import { Job } from './pages/job.js';
import { Jobs } from './pages/jobs.js';
import { Nodes } from './pages/nodes.js';
import { Overview } from './pages/overview.js';
import { SignIn } from './pages/signin.js';
import { Wallet } from './pages/wallet.js';
import { match, usePath } from './router.js';
import { useSession } from './session.js';
import type { SessionState } from './session.js';

const NAV: Array<{ href: string; label: string }> = [
  { href: '/', label: 'Overview' },
  { href: '/nodes', label: 'Nodes' },
  { href: '/jobs', label: 'Jobs' },
  { href: '/wallet', label: 'Wallet' },
  { href: '/issuance', label: 'Issuance' },
  { href: '/approvals', label: 'Approvals' },
  { href: '/audit', label: 'Audit' },
  { href: '/contribute', label: 'Contribute' },
];

/** Pages anyone may open without signing in (their API routes are public or node-signed). */
const PUBLIC = new Set(['/audit', '/contribute', '/signin']);

function page(path: string): ComponentChildren {
  if (path === '/' || path === '/overview') return <Overview />;
  if (path === '/nodes') return <Nodes />;
  if (path === '/jobs') return <Jobs />;
  const job = match('/jobs/:id', path);
  if (job?.id) return <Job id={job.id} />;
  if (path === '/wallet') return <Wallet />;
  if (path === '/issuance' || path === '/leaderboard') return <Issuance />;
  if (path === '/approvals') return <Approvals />;
  if (path === '/audit') return <Audit />;
  if (path === '/contribute') return <Contribute />;
  if (path === '/signin') return <SignIn />;
  return (
    <>
      <h1 tabIndex={-1}>Not found</h1>
      <p>There is no page at <code>{path}</code>. <a href="/">Go to the overview</a>.</p>
    </>
  );
}

export function App() {
  const path = usePath();
  const s = useSession();
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    refreshWhoami().then(() => setError(undefined), setError);
  }, [s.apiKey, s.csrf]);
  const needsSignIn = s.who === 'signed-out' && !PUBLIC.has(path);
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a href="/" class="brand" aria-label="idlemesh overview">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <span>idlemesh</span>
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.href}>
                <a href={n.href} aria-current={isCurrent(n.href, path) ? 'page' : undefined}>{n.label}</a>
              </li>
            ))}
          </ul>
        </nav>
        <Who s={s} path={path} />
      </header>
      <main id="main">
        <ErrorBox error={error} title="Cannot reach the coordinator" />
        {needsSignIn ? (
          <>
            <h1 tabIndex={-1}>Sign in to continue</h1>
            <p>This coordinator has organisations: its pages need you to sign in. <a href="/signin">Sign in with a passkey or an API key</a>.</p>
            <p>Anyone may still <a href="/audit">check the audit log</a> or <a href="/contribute">contribute this browser</a>.</p>
          </>
        ) : page(path)}
      </main>
      <footer class="foot">
        idlemesh · the same data as the <a href="/openapi.json">HTTP API</a> · pages update live
      </footer>
    </div>
  );
}

function isCurrent(href: string, path: string): boolean {
  if (href === '/') return path === '/' || path === '/overview';
  return path === href || path.startsWith(`${href}/`);
}

function Who({ s, path }: { s: SessionState; path: string }) {
  const current = path === '/signin' ? 'page' : undefined;
  if (s.who === undefined) return <span class="who muted">…</span>;
  if (s.who === 'signed-out') return <a class="who" href="/signin" aria-current={current}>Sign in</a>;
  if (s.who.kind === 'open') return <a class="who" href="/signin" aria-current={current} title="No admin yet: open to this machine">Local mesh</a>;
  return <a class="who" href="/signin" aria-current={current}>{s.who.roles.join(', ')}</a>;
}
