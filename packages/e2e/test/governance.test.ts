/**
 * Governance end to end with real processes: a bootstrapped coordinator, an
 * organisation with its own node (joined with an enrolment token) and a
 * public node; private work stays on the org's node, protected data classes
 * never cross, overflow crosses only after an approver says yes, a denial
 * keeps it home, and revoking the token takes the node out of the pool.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { loadOrCreateKey } from '@idlemesh/agent';
import { b64, example, runCli, sleep, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';

const NBODY = example('nbody/nbody.wasm');

describe('governance end to end', () => {
  it('private pools, labels, data classes, approvals and token revocation steer where tasks run', async () => {
    const dir = tempDir('governance');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--heartbeat-ms', '300'] });
    const agents: Array<ReturnType<typeof startAgentProc>> = [];
    const api = async (method: string, path: string, key: string | undefined, body?: unknown): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }> => {
      const res = await fetch(`${coord.url}${path}`, {
        method, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': body instanceof Uint8Array ? 'application/wasm' : 'application/json' } : {}) },
        ...(body !== undefined ? { body: body instanceof Uint8Array ? body : JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
    };
    const cli = async (...args: string[]): Promise<{ code: number | null; text: string }> => {
      const p = runCli('cli', ['--coordinator', coord.url, ...args]);
      return { code: await p.wait(), text: p.text };
    };
    try {
      const token = (await coord.waitFor(/idlemesh bootstrap --token (imb_\S+)/))[1]!;
      const boot = await cli('bootstrap', '--token', token, '--org', 'operator-co', '--json');
      assert.equal(boot.code, 0, boot.text);
      const admin = (JSON.parse(boot.text) as { key: string }).key;
      const acme = (await api('POST', '/v1/orgs', admin, { name: 'acme' })).body.id as string;
      const key = async (roles: string[]): Promise<string> => (await api('POST', '/v1/keys', admin, { name: roles.join('+'), roles, org: acme })).body.key as string;
      const acmeAdmin = await key(['admin']);
      const buyer = await key(['buyer']);
      const approver = await key(['approver']);

      // acme's own machine joins its pool with a one-use enrolment token; another node is public.
      const own = await loadOrCreateKey(`${dir.path}/own/node.key`);
      const enrol = await api('POST', '/v1/pools/tokens', acmeAdmin, { uses: 1 });
      assert.equal(enrol.status, 201);
      const joined = await cli('pools', 'join', enrol.body.token as string, '--key-file', `${dir.path}/own/node.key`, '--json');
      assert.equal(joined.code, 0, joined.text);
      const stranger = await loadOrCreateKey(`${dir.path}/stranger/node.key`);
      const used = await cli('pools', 'join', enrol.body.token as string, '--key-file', `${dir.path}/stranger/node.key`);
      assert.equal(used.code, 1, 'a one-use token admits one node');
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/own`, maxTasks: 2, name: 'own' }));
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/stranger`, maxTasks: 2, name: 'stranger' }));
      await waitUntil(async () => ((await api('GET', '/v1/nodes', admin)).body.nodes as Array<{ state: string }>).filter((n) => n.state === 'online').length === 2);

      writeFileSync(`${dir.path}/policy.yaml`, [
        'version: 1', 'defaultLabel: private',
        'overflow:', '  waitMs: 0', '  approval: per-job', '  approvalTimeoutMs: 600000', '  onTimeout: deny',
        'neverCross: [pii]', '',
      ].join('\n'));
      const set = await cli('policy', 'set', `${dir.path}/policy.yaml`, '--api-key', acmeAdmin, '--json');
      assert.equal(set.code, 0, set.text);
      const bad = await api('POST', '/v1/policy', acmeAdmin, { text: 'version: 1\noverflow: { waitMs: -5 }\n', format: 'yaml' });
      assert.equal(bad.body.error?.code, 'IM_VALIDATION', 'a malformed policy is refused');
      assert.equal(((await api('GET', '/v1/policy', acmeAdmin)).body.version), 1, 'and changes nothing');

      const mod = (await api('POST', '/v1/modules', buyer, new Uint8Array(NBODY))).body.hash as string;
      const submit = async (body: Record<string, unknown>): Promise<string> => {
        const r = await api('POST', '/v1/jobs', buyer, { module: mod, inputs: Array.from({ length: 12 }, (_, i) => b64(String(3000 + i))), ...body });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body.id as string;
      };
      const nodesOf = async (id: string): Promise<Set<string>> => {
        await waitUntil(async () => ((await api('GET', `/v1/jobs/${id}`, buyer)).body.state as string) === 'completed', 30_000);
        const r = (await api('GET', `/v1/jobs/${id}/results?limit=1000`, buyer)).body.results as Array<{ nodeId?: string; state: string; error?: unknown }>;
        // The agents fetch the module without credentials on a bootstrapped coordinator too.
        assert.ok(r.every((x) => x.state === 'succeeded'), JSON.stringify(r.find((x) => x.state !== 'succeeded')));
        return new Set(r.map((x) => x.nodeId ?? ''));
      };

      // private (the policy's default label): only acme's own node.
      assert.deepEqual(await nodesOf(await submit({})), new Set([own.key.publicKeyHex]));
      // Overflow with a protected data class never crosses, whatever the label.
      assert.deepEqual(await nodesOf(await submit({ label: 'overflow', dataClasses: ['PII'] })), new Set([own.key.publicKeyHex]));

      // acme's node leaves: overflow now needs to cross, and waits for an approver.
      await agents[0]!.stop();
      const over = await submit({ label: 'overflow' });
      await waitUntil(async () => ((await api('GET', '/v1/approvals', approver)).body.approvals as Array<{ jobId: string; state: string }>).some((a) => a.jobId === over && a.state === 'pending'));
      await sleep(500);
      assert.equal(((await api('GET', `/v1/jobs/${over}`, buyer)).body.counts as { succeeded: number; leased: number }).succeeded, 0, 'nothing crosses before the approval');
      assert.equal((await api('POST', `/v1/approvals/${over}`, buyer, { decision: 'approve', reason: 'me' })).status, 403, 'buyers do not approve');
      const approved = await cli('approvals', 'approve', over, '--reason', 'no secrets in it', '--api-key', approver);
      assert.equal(approved.code, 0, approved.text);
      assert.deepEqual(await nodesOf(over), new Set([stranger.key.publicKeyHex]));

      const denied = await submit({ label: 'overflow' });
      await waitUntil(async () => ((await api('GET', '/v1/approvals', approver)).body.approvals as Array<{ jobId: string }>).some((a) => a.jobId === denied));
      assert.equal((await api('POST', `/v1/approvals/${denied}`, approver, { decision: 'deny', reason: 'not today' })).status, 200);
      await sleep(800);
      assert.equal(((await api('GET', `/v1/jobs/${denied}`, buyer)).body.counts as { succeeded: number }).succeeded, 0, 'a denial keeps the work home');

      // `policy check` explains without running.
      writeFileSync(`${dir.path}/job.json`, JSON.stringify({ label: 'private' }));
      const check = await cli('policy', 'check', '--job', `${dir.path}/job.json`, '--api-key', buyer, '--json');
      assert.equal(check.code, 0, check.text);
      const decisions = (JSON.parse(check.text) as { nodes: Array<{ nodeId: string; decision: { eligible: boolean } }> }).nodes;
      assert.equal(decisions.find((d) => d.nodeId === stranger.key.publicKeyHex)?.decision.eligible, false);

      // A capacity domain: one token admits a whole site; revoking it removes every node at once.
      const site = await api('POST', '/v1/pools/tokens', acmeAdmin, { domain: 'factory-7', uses: null });
      assert.equal(site.status, 201, JSON.stringify(site.body));
      for (const n of ['d1', 'd2', 'd3']) {
        await loadOrCreateKey(`${dir.path}/${n}/node.key`);
        const r = await cli('pools', 'join', site.body.token as string, '--key-file', `${dir.path}/${n}/node.key`, '--json');
        assert.equal(r.code, 0, r.text);
        assert.equal((JSON.parse(r.text) as { domain: string }).domain, 'factory-7');
      }
      const listed = ((await api('GET', '/v1/pools/tokens', acmeAdmin)).body.tokens as Array<{ id: string; nodes: string[] }>).find((t) => t.id === site.body.id);
      assert.equal(listed?.nodes.length, 3);
      const domains = (await api('GET', '/v1/pools/domains', acmeAdmin)).body.domains as Array<{ domain: string; nodes: number; online: number }>;
      assert.deepEqual(domains.map((d) => [d.domain, d.nodes, d.online]), [['factory-7', 3, 0]], 'the site is reported as one unit');
      const gone = await cli('pools', 'revoke', site.body.id as string, '--api-key', acmeAdmin);
      assert.match(gone.text, /3 node\(s\) left the pool/);

      // Revoking the token takes acme's node out of its pool: back, it is just a public node.
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/own`, maxTasks: 2, name: 'own-again' }));
      await cli('pools', 'revoke', enrol.body.id as string, '--api-key', acmeAdmin);
      const after = await submit({});
      await sleep(1500);
      assert.equal(((await api('GET', `/v1/jobs/${after}`, buyer)).body.counts as { succeeded: number }).succeeded, 0, 'no private node is left for private work');
    } finally {
      for (const a of agents) await a.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
