import { useState } from 'preact/hooks';
import { refreshWhoami } from '../api.js';
import { ErrorBox, PageTitle, Section } from '../components/ui.js';
import { useAction, useTitle } from '../hooks.js';
import { enrolPasskey, passkeysSupported, signInWithPasskey, signOut } from '../passkeys.js';
import { navigate } from '../router.js';
import { session, updateSession, useSession } from '../session.js';

export function SignIn() {
  useTitle('Sign in');
  const s = useSession();
  const signedIn = s.who !== undefined && s.who !== 'signed-out' && s.who.kind === 'key';
  const login = useAction(async () => {
    const r = await signInWithPasskey();
    navigate('/');
    return r;
  });
  const [userId, setUserId] = useState('');
  const [token, setToken] = useState('');
  const enrol = useAction(async () => {
    await enrolPasskey(userId.trim(), token.trim());
    return signInWithPasskey();
  });
  const [apiKey, setApiKey] = useState('');
  const useKey = useAction(async () => {
    updateSession({ apiKey: apiKey.trim(), csrf: undefined });
    try {
      await refreshWhoami();
      if (session().who === 'signed-out') throw new Error('the coordinator does not accept this API key');
    } catch (err) {
      updateSession({ apiKey: undefined });
      throw err;
    }
    navigate('/');
    return true;
  });
  const out = useAction(signOut);

  return (
    <>
      <PageTitle sub="People sign in with a passkey; scripts use API keys.">Sign in</PageTitle>
      {s.who !== undefined && s.who !== 'signed-out' && s.who.kind === 'open' && (
        <p class="notice" role="status">This coordinator has no admin yet: it is a local mesh, open to this machine without signing in.</p>
      )}
      {signedIn && s.who !== 'signed-out' && s.who?.kind === 'key' && (
        <Section title="Signed in">
          <p role="status" data-testid="signed-in">Signed in to organisation <code>{s.who.orgId}</code> as {s.who.roles.join(', ')}{s.who.root ? ' (the coordinator\'s own organisation)' : ''}.</p>
          <button type="button" onClick={() => void out.run()} disabled={out.busy}>Sign out</button>
          <ErrorBox error={out.error} />
        </Section>
      )}
      <Section title="Sign in with a passkey" id="passkey">
        {!passkeysSupported() && <p class="bad">This browser offers no passkeys here (they need https, or http://localhost).</p>}
        <button type="button" onClick={() => void login.run()} disabled={login.busy}>{login.busy ? 'Waiting for your passkey…' : 'Sign in with a passkey'}</button>
        <ErrorBox error={login.error} title="Not signed in" />
      </Section>
      <Section title="First time here? Register your passkey" id="enrol">
        <p>An admin creates your user and gives you its id and a one-time enrolment token.</p>
        <form class="form" onSubmit={(e) => { e.preventDefault(); void enrol.run(); }}>
          <label for="enrol-user">User id</label>
          <input id="enrol-user" required autoComplete="username" value={userId} onInput={(e) => setUserId((e.currentTarget as HTMLInputElement).value)} placeholder="usr_…" />
          <label for="enrol-token">Enrolment token</label>
          <input id="enrol-token" required autoComplete="one-time-code" value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit" disabled={enrol.busy}>Register passkey and sign in</button>
        </form>
        <ErrorBox error={enrol.error} title="The passkey was not registered" />
        {enrol.result && <p class="good" role="status">Passkey registered; you are signed in.</p>}
      </Section>
      <Section title="Use an API key" id="apikey">
        <p>Kept in this tab only, sent as <code>Authorization: Bearer …</code>.</p>
        <form class="form" onSubmit={(e) => { e.preventDefault(); void useKey.run(); }}>
          <label for="api-key">API key</label>
          <input id="api-key" type="password" required autoComplete="off" value={apiKey} onInput={(e) => setApiKey((e.currentTarget as HTMLInputElement).value)} placeholder="imk_…" />
          <button type="submit" disabled={useKey.busy}>Use this key</button>
        </form>
        <ErrorBox error={useKey.error} title="The key was refused" />
      </Section>
    </>
  );
}
