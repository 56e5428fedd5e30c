import type { Command } from 'commander';
import { ImError } from '@idlemesh/protocol';
import { age, table } from '../format.js';
import { apiKey, coordinatorUrl } from '../options.js';
import { out, outJson } from '../output.js';

/** Identity calls go straight over HTTP: they are admin plumbing, not part of the buyer SDK. */
async function call(cmd: Command, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const key = apiKey(cmd);
  let res: Response;
  try {
    res = await fetch(`${coordinatorUrl(cmd)}${path}`, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new ImError('IM_CONNECTION_FAILED', `cannot reach ${coordinatorUrl(cmd)}: ${(err as Error).message}`);
  }
  const json = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string; retryable: boolean } };
  if (!res.ok) throw ImError.fromWire(json.error ?? { code: 'IM_INTERNAL', message: `HTTP ${res.status}`, retryable: false }, res.status);
  return json;
}

interface KeyView { id: string; orgId: string; name: string; roles: string[]; state: string; createdAt: number; lastUsedAt?: number; key?: string }

export function registerIdentity(program: Command): void {
  program
    .command('bootstrap')
    .description('create the first admin with the one-time token the coordinator printed at start; API keys are required from then on')
    .requiredOption('--token <token>', 'the bootstrap token from the coordinator\'s log')
    .requiredOption('--org <name>', 'the name of the coordinator\'s own organisation')
    .option('--json', 'print {org, keyId, key} as one JSON document')
    .action(async (opts: { token: string; org: string; json?: boolean }, cmd: Command) => {
      const r = (await call(cmd, 'POST', '/v1/bootstrap', { token: opts.token, org: opts.org })) as { org: { id: string; name: string }; key: string };
      if (opts.json) return outJson(r);
      await out(`organisation ${r.org.name} (${r.org.id}) with its first admin key — shown once, keep it:\n  export IDLEMESH_API_KEY=${r.key}\n`);
    });

  program
    .command('whoami')
    .description('the organisation and roles of the API key in use')
    .option('--json', 'print it as one JSON document')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = (await call(cmd, 'GET', '/v1/whoami')) as { kind: string; keyId?: string; orgId?: string; roles?: string[]; root?: boolean };
      if (opts.json) return outJson(r);
      await out(r.kind === 'key' ? `key ${r.keyId} of ${r.orgId}${r.root ? ' (coordinator org)' : ''}: ${r.roles?.join(', ')}\n` : `${r.kind} (no organisation has been bootstrapped)\n`);
    });

  const orgs = program.command('orgs').description('organisations (root admins create them)');
  orgs.command('list').option('--json', 'print {"orgs":[…]}').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/orgs')) as { orgs: Array<{ id: string; name: string; root: boolean; createdAt: number }> };
    if (opts.json) return outJson(r);
    await out(table(['ID', 'NAME', 'ROOT', 'CREATED'], r.orgs.map((o) => [o.id, o.name, o.root ? 'yes' : '', age(o.createdAt)])));
  });
  orgs.command('create').argument('<name>').option('--json', 'print the organisation').action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'POST', '/v1/orgs', { name })) as { id: string; name: string };
    if (opts.json) return outJson(r);
    await out(`organisation ${r.name}: ${r.id}\n`);
  });

  const users = program.command('users').description('people who sign in with passkeys');
  users.command('add')
    .requiredOption('--name <name>', 'who')
    .requiredOption('--roles <list>', 'comma-separated: admin, approver, buyer, operator, auditor')
    .option('--org <id>', 'another organisation (root admins only)')
    .option('--json', 'print the user with the enrolment token')
    .action(async (opts: { name: string; roles: string; org?: string; json?: boolean }, cmd: Command) => {
      const r = (await call(cmd, 'POST', '/v1/users', { name: opts.name, roles: opts.roles.split(',').map((x) => x.trim()).filter(Boolean), ...(opts.org ? { org: opts.org } : {}) })) as { id: string; enrolToken: string; roles: string[] };
      if (opts.json) return outJson(r);
      await out(`user ${r.id} (${r.roles.join(', ')}). Give them this one-time enrolment token to register a passkey (24 h):\n  ${r.enrolToken}\n`);
    });

  const keys = program.command('keys').description('API keys: shown once, stored hashed, scoped by role and organisation, revocable');
  keys.command('create')
    .requiredOption('--name <name>', 'what the key is for')
    .requiredOption('--roles <list>', 'comma-separated: admin, approver, buyer, operator, auditor')
    .option('--org <id>', 'another organisation (root admins only)')
    .option('--json', 'print the key record with the secret')
    .action(async (opts: { name: string; roles: string; org?: string; json?: boolean }, cmd: Command) => {
      const r = (await call(cmd, 'POST', '/v1/keys', { name: opts.name, roles: opts.roles.split(',').map((x) => x.trim()).filter(Boolean), ...(opts.org ? { org: opts.org } : {}) })) as KeyView;
      if (opts.json) return outJson(r);
      await out(`key ${r.id} (${r.roles.join(', ')}) for ${r.orgId} — shown once:\n  ${r.key}\n`);
    });
  keys.command('list').option('--json', 'print {"keys":[…]}').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/keys')) as { keys: KeyView[] };
    if (opts.json) return outJson(r);
    await out(table(['ID', 'ORG', 'NAME', 'ROLES', 'STATE', 'CREATED', 'LAST USED'],
      r.keys.map((k) => [k.id, k.orgId, k.name, k.roles.join(','), k.state, age(k.createdAt), k.lastUsedAt ? age(k.lastUsedAt) : 'never'])));
  });
  keys.command('revoke').argument('<id>').option('--json', 'print the key record').action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'POST', `/v1/keys/${encodeURIComponent(id)}/revoke`)) as KeyView;
    if (opts.json) return outJson(r);
    await out(`key ${r.id} revoked\n`);
  });
}
