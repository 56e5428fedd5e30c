import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { extname, join } from 'node:path';
import type { Command } from 'commander';
import { ImError, signRequest } from '@idlemesh/protocol';
import { intArg } from '../options.js';
import { age, table } from '../format.js';
import { apiKey, coordinatorUrl } from '../options.js';
import { note, out, outJson } from '../output.js';

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

  const policy = program.command('policy').description("your organisation's policy: labels, overflow to public capacity, approvals, data classes (docs/policy.md)");
  policy.command('set')
    .description('replace the policy with a YAML or JSON document (checked first; a bad one changes nothing)')
    .argument('<file>', 'policy.yaml or policy.json')
    .option('--json', 'print {org, version, hash}')
    .action(async (file: string, opts: { json?: boolean }, cmd: Command) => {
      const text = await readFile(file, 'utf8');
      const r = (await call(cmd, 'POST', '/v1/policy', { text, format: extname(file).toLowerCase() === '.json' ? 'json' : 'yaml' })) as { org: string; version: number; hash: string };
      if (opts.json) return outJson(r);
      await out(`policy version ${r.version} of ${r.org} (${r.hash.slice(0, 16)})\n`);
    });
  policy.command('show').option('--json', 'print the policy record').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/policy')) as { version: number; text?: string; note?: string };
    if (opts.json) return outJson(r);
    await out(r.text !== undefined ? `# version ${r.version}\n${r.text}${r.text.endsWith('\n') ? '' : '\n'}` : `${r.note ?? 'no policy'}\n`);
  });
  policy.command('check')
    .description('explain, for a job, which nodes are eligible and why — without running it')
    .requiredOption('--job <file.json>', '{"label":"overflow","dataClasses":["pii"],"runtime":"wasm"}')
    .option('--json', 'print the decisions')
    .action(async (opts: { job: string; json?: boolean }, cmd: Command) => {
      const job = JSON.parse(await readFile(opts.job, 'utf8')) as Record<string, unknown>;
      const r = (await call(cmd, 'POST', '/v1/policy/check', { job: { label: job.label, dataClasses: job.dataClasses, runtime: job.runtime ?? 'wasm' } })) as { label: string; nodes: Array<{ nodeId: string; decision: { eligible: boolean; pool: string; reasons: string[]; needsApproval?: boolean } }> };
      if (opts.json) return outJson(r);
      const lines = [`label ${r.label}`];
      for (const n of r.nodes) {
        lines.push(`${n.decision.eligible ? 'ELIGIBLE' : 'no      '} ${n.nodeId.slice(0, 12)} (${n.decision.pool})${n.decision.needsApproval ? ' needs approval' : ''}`);
        for (const why of n.decision.reasons) lines.push(`    ${why}`);
      }
      await out(`${lines.join('\n')}\n`);
    });

  const pools = program.command('pools').description('private pools: nodes join with an enrolment token (or a capacity domain token)');
  pools.command('token')
    .description('an enrolment token: limited uses, expiring, bound to each node key on first use, revocable')
    .option('--uses <n>', 'nodes it may admit (default 1)', intArg(1, 1_000_000))
    .option('--domain <name>', 'a capacity domain: any number of nodes of one site, revoked as one')
    .option('--ttl-hours <h>', 'valid for (default 24)', intArg(1, 24 * 365))
    .option('--public', 'the organisation operates these nodes in the public pool too (they take other organisations\' public work)')
    .option('--json', 'print the token record')
    .action(async (opts: { uses?: number; domain?: string; ttlHours?: number; public?: boolean; json?: boolean }, cmd: Command) => {
      const r = (await call(cmd, 'POST', '/v1/pools/tokens', {
        uses: opts.domain !== undefined && opts.uses === undefined ? null : (opts.uses ?? 1), ...(opts.domain ? { domain: opts.domain } : {}),
        ...(opts.public ? { public: true } : {}),
        ...(opts.ttlHours ? { ttlMs: opts.ttlHours * 3_600_000 } : {}),
      })) as { id: string; token: string };
      if (opts.json) return outJson(r);
      await out(`token ${r.id} — shown once; on each node: idlemesh pools join ${r.token}\n`);
    });
  pools.command('tokens').option('--json', 'print {"tokens":[…]}').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/pools/tokens')) as { tokens: Array<{ id: string; orgId: string; state: string; usesLeft: number | null; nodes: string[]; domain?: string; expiresAt: number }> };
    if (opts.json) return outJson(r);
    await out(table(['ID', 'ORG', 'STATE', 'USES LEFT', 'NODES', 'DOMAIN'], r.tokens.map((t) => [t.id, t.orgId, t.state, t.usesLeft === null ? 'any' : String(t.usesLeft), String(t.nodes.length), t.domain ?? ''])));
  });
  pools.command('revoke').argument('<id>').description('revoke a token: every node it admitted leaves the pool').action(async (id: string, _o: unknown, cmd: Command) => {
    const r = (await call(cmd, 'POST', `/v1/pools/tokens/${encodeURIComponent(id)}/revoke`)) as { removed: string[] };
    await out(`revoked; ${r.removed.length} node(s) left the pool\n`);
  });
  pools.command('ask')
    .description("this node asks to join an organisation's pool; an admin of it admits it (idlemesh pools admit)")
    .argument('<org-id>')
    .option('--key-file <file>', 'the node key (default ~/.idlemesh/agent/node.key)')
    .option('--note <text>', 'who you are, for the admin')
    .action(async (org: string, opts: { keyFile?: string; note?: string }, cmd: Command) => {
      const { loadOrCreateKey } = await import('@idlemesh/agent');
      const file = opts.keyFile ?? join(homedir(), '.idlemesh', 'agent', 'node.key');
      if (!existsSync(file)) throw new ImError('IM_CONFIG_INVALID', `no node key at ${file}; run the agent once or pass --key-file`);
      const { key } = await loadOrCreateKey(file);
      const r = (await call(cmd, 'POST', '/v1/pools/requests', await signRequest(key, 'join', { org, ...(opts.note ? { note: opts.note } : {}) }, Date.now()))) as { state: string };
      await out(`node ${key.publicKeyHex.slice(0, 12)} asked to join ${org}: ${r.state}\n`);
    });
  pools.command('requests').option('--json', 'print {"requests":[…]}').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/pools/requests')) as { requests: Array<{ nodeId: string; orgId: string; note: string; state: string; at: number }> };
    if (opts.json) return outJson(r);
    await out(table(['NODE', 'ORG', 'STATE', 'ASKED', 'NOTE'], r.requests.map((q) => [q.nodeId.slice(0, 12), q.orgId, q.state, age(q.at), q.note])));
  });
  for (const verb of ['admit', 'refuse'] as const) {
    pools.command(verb).argument('<node-id>').action(async (nodeId: string, _o: unknown, cmd: Command) => {
      const r = (await call(cmd, 'POST', `/v1/pools/requests/${encodeURIComponent(nodeId)}`, { decision: verb })) as { state: string };
      await out(`${nodeId.slice(0, 12)}: ${r.state}\n`);
    });
  }
  pools.command('join')
    .description("this node joins the organisation's private pool (signed with the node key)")
    .argument('<token>')
    .option('--key-file <file>', 'the node key (default ~/.idlemesh/agent/node.key)')
    .option('--json', 'print the membership')
    .action(async (tok: string, opts: { keyFile?: string; json?: boolean }, cmd: Command) => {
      const { loadOrCreateKey } = await import('@idlemesh/agent');
      const file = opts.keyFile ?? join(homedir(), '.idlemesh', 'agent', 'node.key');
      if (!existsSync(file)) throw new ImError('IM_CONFIG_INVALID', `no node key at ${file}; run the agent once or pass --key-file`);
      const { key } = await loadOrCreateKey(file);
      const r = (await call(cmd, 'POST', '/v1/pools/join', await signRequest(key, 'join', { token: tok }, Date.now()))) as { orgId: string; domain?: string };
      if (opts.json) return outJson(r);
      await out(`node ${key.publicKeyHex.slice(0, 12)} joined ${r.orgId}${r.domain ? ` (domain ${r.domain})` : ''}\n`);
    });

  const approvals = program.command('approvals').description('crossings to public capacity waiting for a human');
  approvals.command('list', { isDefault: true }).option('--json', 'print {"approvals":[…]}').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/approvals')) as { approvals: Array<{ id: string; jobId: string; state: string; createdAt: number; reason?: string }> };
    if (opts.json) return outJson(r);
    if (r.approvals.length === 0) return out('nothing waits for approval\n');
    await out(table(['ID', 'JOB', 'STATE', 'ASKED', 'REASON'], r.approvals.map((a) => [a.id, a.jobId, a.state, age(a.createdAt), a.reason ?? ''])));
  });
  for (const verb of ['approve', 'deny'] as const) {
    approvals.command(verb).argument('<id>').requiredOption('--reason <text>', 'kept with the decision').action(async (id: string, opts: { reason: string }, cmd: Command) => {
      const r = (await call(cmd, 'POST', `/v1/approvals/${encodeURIComponent(id)}`, { decision: verb, reason: opts.reason })) as { state: string };
      await out(`${id}: ${r.state}\n`);
    });
  }

  const audit = program.command('audit').description('the tamper-evident audit log: RFC 6962 Merkle tree, signed C2SP checkpoints');
  audit.command('verify')
    .description('check the latest checkpoint\'s signature, that the log only grew since --since, and (with an auditor key) that every entry is in it; exits 1 otherwise')
    .option('--key <vkey>', 'the log\'s verifier key you pinned (GET /v1/audit/key once); without it the coordinator\'s word is taken')
    .option('--since <file>', 'a checkpoint saved earlier: the log must be consistent with it')
    .option('--save <file>', 'save the verified checkpoint here (use it as --since next time)')
    .option('--json', 'print the result as one JSON document')
    .action(async (opts: { key?: string; since?: string; save?: string; json?: boolean }, cmd: Command) => {
      const p = await import('@idlemesh/protocol');
      const vkey = opts.key ?? ((await call(cmd, 'GET', '/v1/audit/key')) as { verifierKey: string }).verifierKey;
      if (opts.key === undefined && !opts.json) note(`log key ${vkey} (not pinned: pass --key to check against the one you trust)`);
      const verifier = p.parseVerifierKey(vkey);
      const fail = (reason: string): never => { throw new ImError('IM_BAD_SIGNATURE', reason); };
      const res = await fetch(`${coordinatorUrl(cmd)}/v1/audit/checkpoint`, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) fail(`no checkpoint: HTTP ${res.status}`);
      const noteText = await res.text();
      const latest = p.openCheckpoint(noteText, { log: verifier }).checkpoint;
      const report: Record<string, unknown> = { ok: true, origin: latest.origin, size: latest.size, root: Buffer.from(latest.rootHash).toString('hex') };
      if (opts.since !== undefined) {
        const prev = p.openCheckpoint(await readFile(opts.since, 'utf8'), { log: verifier }).checkpoint;
        const proof = ((await call(cmd, 'GET', `/v1/audit/proof/consistency?from=${prev.size}&to=${latest.size}`)) as { proof: string[] }).proof.map((b) => new Uint8Array(Buffer.from(b, 'base64')));
        const grown = p.verifyLogGrowth(prev, latest, proof);
        if (!grown.ok) fail(grown.reason);
        report.grewFrom = prev.size;
      }
      if (apiKey(cmd) !== undefined) {
        const entries: import('@idlemesh/protocol').AuditEntry[] = [];
        while (entries.length < latest.size) {
          const page = ((await call(cmd, 'GET', `/v1/audit/entries?from=${entries.length}&limit=10000`)) as { entries: import('@idlemesh/protocol').AuditEntry[] }).entries;
          if (page.length === 0) break;
          entries.push(...page);
        }
        const all = p.verifyAuditEntries(entries, latest);
        if (!all.ok) fail(all.reason);
        report.entries = latest.size;
      }
      if (opts.save !== undefined) await writeFile(opts.save, noteText);
      if (opts.json) return outJson(report);
      await out(`ok: ${latest.origin} at size ${latest.size}${report.grewFrom !== undefined ? `, grew from ${String(report.grewFrom)}` : ''}${report.entries !== undefined ? ', every entry checked' : ' (signature and growth only; an auditor key checks the entries too)'}\n`);
    });

  audit.command('receipt')
    .description('check a result receipt offline: the receipt is the leaf the agent signed, the agent and coordinator signatures hold; exits 1 otherwise')
    .argument('[file]', 'a receipt document saved earlier (JSON)')
    .option('--task <job/index>', 'fetch the receipt of this task from the coordinator instead (e.g. job_…/0)')
    .option('--save <file>', 'with --task: keep the fetched document here')
    .option('--coordinator-key <hex>', 'the receipt key you pinned (GET /v1/receipts/key once); without it any countersigning key is taken')
    .option('--json', 'print the checks as one JSON document')
    .action(async (file: string | undefined, opts: { task?: string; save?: string; coordinatorKey?: string; json?: boolean }, cmd: Command) => {
      const p = await import('@idlemesh/protocol');
      if ((file === undefined) === (opts.task === undefined)) throw new ImError('IM_CLI_USAGE', 'give a receipt file or --task <job/index>, not both');
      let doc: unknown;
      if (opts.task !== undefined) {
        const m = /^(job_[0-9a-z]+)\/(\d+)$/.exec(opts.task);
        if (!m) throw new ImError('IM_CLI_USAGE', `--task must look like job_…/<index>, not ${opts.task}`);
        doc = await call(cmd, 'GET', `/v1/jobs/${m[1]}/tasks/${m[2]}/receipt`);
        if (opts.save !== undefined) await writeFile(opts.save, `${JSON.stringify(doc, null, 2)}\n`);
      } else {
        const text = await readFile(file as string, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new ImError('IM_CLI_USAGE', `cannot read ${file}: ${err.code ?? err.message}`);
        });
        try {
          doc = JSON.parse(text);
        } catch {
          throw new ImError('IM_RECEIPT_INVALID', `${file} is not JSON`);
        }
      }
      const r = await p.verifyReceiptDocument(doc, opts.coordinatorKey === undefined ? {} : { coordinatorKey: opts.coordinatorKey });
      const receipt = (doc as { receipt?: { task?: string; node?: string; fuel?: number; outputHash?: string | null } }).receipt;
      if (opts.json) await outJson({ ok: r.ok, checks: r.checks, ...(receipt ? { task: receipt.task, node: receipt.node, fuel: receipt.fuel, outputHash: receipt.outputHash } : {}) });
      else {
        await out(r.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.detail !== undefined ? `: ${c.detail}` : ''}\n`).join(''));
        if (r.ok && receipt) await out(`receipt of ${String(receipt.task)} by node ${String(receipt.node).slice(0, 16)}…: fuel ${String(receipt.fuel)}, output ${String(receipt.outputHash)}\n`);
        if (r.ok && opts.coordinatorKey === undefined) note('the coordinator key is not pinned: pass --coordinator-key to check it is the one you trust');
      }
      if (!r.ok) {
        if (!opts.json) throw new ImError('IM_RECEIPT_INVALID', r.checks.filter((c) => !c.ok).map((c) => c.name).join(', '));
        process.exitCode = 1;
      }
    });

  audit.command('issuance')
    .description('recompute an issuance epoch from its published inputs: signature, hourly roots against the frozen hour tables, and every node\'s score and allocation; exits 1 on any difference')
    .requiredOption('--epoch <hour>', 'the epoch hour, or latest')
    .option('--key <hex>', 'the coordinator key you pinned (GET /v1/receipts/key once); without it the published key is taken')
    .option('--json', 'print the checks as one JSON document')
    .action(async (opts: { epoch: string; key?: string; json?: boolean }, cmd: Command) => {
      const p = await import('@idlemesh/protocol');
      const c = await import('@idlemesh/coordinator');
      if (opts.epoch !== 'latest' && !/^\d+$/.test(opts.epoch)) throw new ImError('IM_CLI_USAGE', '--epoch is an hour number or latest');
      const e = (await call(cmd, 'GET', `/v1/issuance/epochs/${opts.epoch}`)) as import('@idlemesh/coordinator').EpochRecord;
      const problems: string[] = [];
      const sigOk = await p.verify(e.publicKey, e.sig, c.epochSigningBytes(e.document, e.hourRoots));
      if (!sigOk) problems.push('signature: does not verify against the published key');
      if (opts.key !== undefined && opts.key.toLowerCase() !== e.publicKey) problems.push(`key: signed by ${e.publicKey}, not the pinned ${opts.key}`);
      const parsed = c.issuance.parseEpochDocument(e.document);
      // Each hour of the document: its rows must hash to the signed root, and equal the frozen table the coordinator serves.
      const lastOperator = new Map<string, string>();
      for (const h of [...parsed.input.hours].sort((x, y) => x.hour - y.hour)) {
        const signed = e.hourRoots.find((x) => x.hour === h.hour)?.root;
        const root = c.issuance.hourRowsRootHex(h);
        if (root !== signed) problems.push(`hour ${h.hour}: rows hash to ${root}, the signed root is ${String(signed)}`);
        const frozen = (await call(cmd, 'GET', `/v1/issuance/hours/${h.hour}`)) as import('@idlemesh/coordinator').HourDoc;
        if (frozen.root !== signed) problems.push(`hour ${h.hour}: the frozen table's root ${frozen.root} is not the signed ${String(signed)}`);
        const table = { hour: frozen.hour, bonds: new Map(Object.entries(frozen.bonds).map(([k, v]) => [k, BigInt(v)])), rows: frozen.rows.map((r) => ({ node: r.node, paidMsat: BigInt(r.paidMsat), availSec: BigInt(r.availSec), capMeasured: BigInt(r.capMeasured), busySec: BigInt(r.busySec), slotSec: BigInt(r.slotSec) })) };
        if (c.issuance.hourRowsRootHex(table) !== frozen.root) problems.push(`hour ${h.hour}: the frozen table's rows do not hash to its root`);
        // The inputs outside the rows (signed with the epoch): operator bonds, and each node's operator as the hour published it.
        const bondsOf = (m: ReadonlyMap<string, bigint>): string => JSON.stringify([...m].map(([k, v]) => [k, v.toString()]).sort());
        if (bondsOf(h.bonds) !== bondsOf(table.bonds)) problems.push(`hour ${h.hour}: the frozen table's bonds differ from the epoch's`);
        for (const [node, op] of Object.entries(frozen.operators ?? {})) lastOperator.set(node, op);
      }
      for (const n of parsed.input.nodes) {
        const published = lastOperator.get(n.id);
        if (published !== undefined && published !== n.operator) problems.push(`node ${n.id.slice(0, 16)}…: operator ${n.operator} in the epoch, ${published} in its latest hour`);
      }
      const result = c.issuance.computeEpoch(parsed.input);
      const expected = parsed.expected;
      const nodes = parsed.input.nodes.map((n) => {
        const score = result.scores.get(n.id) ?? 0n;
        const alloc = result.allocations.get(n.id) ?? 0n;
        const agree = expected !== undefined && expected.scores.get(n.id) === score && expected.allocations.get(n.id) === alloc;
        if (!agree) problems.push(`node ${n.id.slice(0, 16)}…: published ${String(expected?.allocations.get(n.id))} msat, recomputed ${alloc}`);
        return { node: n.id, agree, allocationMsat: alloc.toString(), publishedMsat: expected?.allocations.get(n.id)?.toString() ?? null, score: score.toString() };
      });
      if (expected?.issuedMsat !== result.issuedMsat) problems.push(`issued: published ${String(expected?.issuedMsat)} msat, recomputed ${result.issuedMsat}`);
      const ok = problems.length === 0;
      if (opts.json) await outJson({ ok, epoch: parsed.input.epochHour, formula: c.issuance.FORMULA, issuedMsat: result.issuedMsat.toString(), hours: parsed.input.hours.length, nodes, problems });
      else {
        await out(`epoch ${parsed.input.epochHour} (${c.issuance.FORMULA}, ${parsed.input.hours.length} hours, pool ${parsed.input.poolMsat} msat, issued ${result.issuedMsat} msat)\n`);
        await out(table(['NODE', 'ALLOCATION MSAT', 'SCORE', ''], nodes.map((n) => [`${n.node.slice(0, 16)}…`, n.allocationMsat, n.score, n.agree ? 'agree' : 'DISAGREE'])));
        for (const x of problems) await out(`FAIL ${x}\n`);
      }
      if (!ok) {
        if (!opts.json) throw new ImError('IM_ISSUANCE_MISMATCH', `${problems.length} difference(s)`);
        process.exitCode = 1;
      }
    });

  audit.command('status').description('the latest checkpoint and how many witnesses cosigned it').option('--json', 'print it').action(async (opts: { json?: boolean }, cmd: Command) => {
    const r = (await call(cmd, 'GET', '/v1/audit/status')) as { size: number; witnessed: number; quorum: number; flagged: boolean };
    if (opts.json) return outJson(r);
    await out(`checkpoint at size ${r.size}: ${r.witnessed}/${r.quorum} witnesses${r.flagged ? ' — FLAGGED: not enough witnesses' : ''}\n`);
  });

  audit.command('witness')
    .description("cosign the log's latest checkpoint as a witness, after checking it is consistent with the last one this witness saw (a split view is refused)")
    .requiredOption('--key-file <file>', 'the witness key (32 bytes, hex; created mode 0600 if missing)')
    .option('--name <name>', 'the witness name in its verifier key', 'witness.idlemesh')
    .option('--print-key', 'print the verifier key to give the coordinator (--audit-witness) and exit')
    .option('--log-key <vkey>', "the log's verifier key (pinned)")
    .option('--state <file>', 'where the last cosigned checkpoint is kept (default: <key-file>.last)')
    .action(async (opts: { keyFile: string; name: string; printKey?: boolean; logKey?: string; state?: string }, cmd: Command) => {
      const p = await import('@idlemesh/protocol');
      const { ed25519 } = await import('@noble/curves/ed25519.js');
      const { randomBytes } = await import('node:crypto');
      if (!existsSync(opts.keyFile)) await writeFile(opts.keyFile, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
      const priv = new Uint8Array(Buffer.from((await readFile(opts.keyFile, 'utf8')).trim(), 'hex'));
      if (priv.length !== 32) throw new ImError('IM_CONFIG_INVALID', `${opts.keyFile} must hold 32 bytes of hex`);
      const vkey = p.verifierKey(opts.name, ed25519.getPublicKey(priv), p.SIG_TYPE_COSIGNATURE_V1);
      if (opts.printKey) return out(`${vkey}\n`);
      if (opts.logKey === undefined) throw new ImError('IM_CLI_USAGE', 'pass --log-key: a witness checks the log signature against the key it pinned');
      const res = await fetch(`${coordinatorUrl(cmd)}/v1/audit/checkpoint`, { signal: AbortSignal.timeout(30_000) });
      if (!res.ok) throw new ImError('IM_NOT_FOUND', `no checkpoint: HTTP ${res.status}`);
      const noteText = await res.text();
      const verifier = p.parseVerifierKey(opts.logKey);
      const opened = p.openCheckpoint(noteText, { log: verifier });
      const statePath = opts.state ?? `${opts.keyFile}.last`;
      if (existsSync(statePath)) {
        const prev = p.openCheckpoint(await readFile(statePath, 'utf8'), { log: verifier }).checkpoint;
        const proof = ((await call(cmd, 'GET', `/v1/audit/proof/consistency?from=${prev.size}&to=${opened.checkpoint.size}`).catch(() => ({ proof: [] }))) as { proof: string[] }).proof
          .map((b) => new Uint8Array(Buffer.from(b, 'base64')));
        const grown = p.verifyLogGrowth(prev, opened.checkpoint, proof);
        if (!grown.ok) throw new ImError('IM_BAD_SIGNATURE', `SPLIT VIEW: ${grown.reason}; not cosigning`);
      }
      const line = p.cosign(opened.body, { name: opts.name, privateKey32: priv }, Math.floor(Date.now() / 1000));
      await call(cmd, 'POST', '/v1/audit/cosign', { size: opened.checkpoint.size, line });
      await writeFile(statePath, noteText);
      await out(`cosigned ${opened.checkpoint.origin} at size ${opened.checkpoint.size}\n`);
    });
}
