/**
 * The audit log end to end: security events become Merkle leaves, the
 * coordinator signs C2SP checkpoints, `idlemesh audit verify` checks the
 * signature against the pinned key, that the log only grew, and (with an
 * auditor key) every entry; a rewritten entry in the database is caught.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import {
  auditEntryLeafHash, formatCheckpoint, merkleLeafHash, openCheckpoint, parseVerifierKey, signNote, utf8, verifyInclusionProof,
} from '@idlemesh/protocol';
import type { AuditEntry } from '@idlemesh/protocol';
import { runCli, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';

describe('audit log end to end', () => {
  it('records, checkpoints, proves inclusion and growth, and catches a rewritten entry', async (t) => {
    if (process.env.IDLEMESH_TEST_STORE === 'postgres') {
      t.skip('tampering is shown on the SQLite file; the log itself runs on PostgreSQL in the governance suite');
      return;
    }
    const dir = tempDir('audit');
    // A witness makes its key first; the coordinator is told to count its cosignatures (quorum 1).
    const wkey = `${dir.path}/witness.key`;
    const printed = runCli('witness', ['audit', 'witness', '--key-file', wkey, '--print-key']);
    assert.equal(await printed.wait(), 0, printed.text);
    const witnessKey = printed.text.trim().split('\n').pop()!;
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--audit-witness', witnessKey, '--audit-quorum', '1'] });
    const api = async (method: string, path: string, key?: string, body?: unknown): Promise<{ status: number; text: string; json: () => Record<string, unknown> }> => {
      const res = await fetch(`${coord.url}${path}`, {
        method, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
    };
    const cli = async (...args: string[]): Promise<{ code: number | null; text: string }> => {
      const p = runCli('cli', ['--coordinator', coord.url, ...args]);
      return { code: await p.wait(), text: p.text };
    };
    try {
      const token = (await coord.waitFor(/idlemesh bootstrap --token (imb_\S+)/))[1]!;
      const admin = (await api('POST', '/v1/bootstrap', undefined, { token, org: 'ops' })).json().key as string;
      const auditor = (await api('POST', '/v1/keys', admin, { name: 'auditor', roles: ['auditor'] })).json().key as string;
      const spare = (await api('POST', '/v1/keys', admin, { name: 'spare', roles: ['buyer'] })).json().id as string;
      await api('POST', `/v1/keys/${spare}/revoke`, admin);

      const vkey = (await api('GET', '/v1/audit/key')).json().verifierKey as string;
      const verifier = parseVerifierKey(vkey);
      const first = await api('POST', '/v1/audit/checkpoint', admin);
      assert.equal(first.status, 200, first.text);
      const cp1 = openCheckpoint(first.text, { log: verifier }).checkpoint;
      const entries = (await api('GET', '/v1/audit/entries', auditor)).json().entries as AuditEntry[];
      assert.deepEqual(entries.map((e) => e.type), ['org.created', 'key.created', 'key.created', 'key.created', 'key.revoked']);
      assert.equal(cp1.size, entries.length);
      // Inclusion of the revocation in the signed tree.
      const proof = (await api('GET', `/v1/audit/proof/inclusion?index=4&size=${cp1.size}`)).json().proof as string[];
      assert.ok(verifyInclusionProof(auditEntryLeafHash(entries[4]!), 4, cp1.size, proof.map((b) => new Uint8Array(Buffer.from(b, 'base64'))), cp1.rootHash));
      assert.ok(!verifyInclusionProof(merkleLeafHash(utf8('forged')), 4, cp1.size, proof.map((b) => new Uint8Array(Buffer.from(b, 'base64'))), cp1.rootHash));

      // Not enough witnesses yet: flagged. The witness checks and cosigns; then it is not.
      assert.equal((await api('GET', '/v1/audit/status')).json().flagged, true);
      const w1 = await cli('audit', 'witness', '--key-file', wkey, '--log-key', vkey);
      assert.equal(w1.code, 0, w1.text);
      const status = (await api('GET', '/v1/audit/status')).json();
      assert.deepEqual([status.witnessed, status.flagged], [1, false]);
      assert.equal((await api('POST', '/v1/audit/cosign', undefined, { size: cp1.size, line: '— impostor AAAAAAAA\n' })).status >= 400, true);

      // An agent witnesses too: it pins the log key, checks consistency, cosigns with its node key.
      const agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, name: 'agent', env: { IDLEMESH_AGENT_WITNESS_MS: '300', IDLEMESH_LOG_LEVEL: 'debug' } });
      await waitUntil(async () => ((await api('GET', '/v1/audit/status')).json().witnesses as string[]).some((n) => n.startsWith('node-')), 20_000, () => agent.text);

      const saved = `${dir.path}/checkpoint.txt`;
      const v1 = await cli('audit', 'verify', '--key', vkey, '--save', saved, '--api-key', auditor, '--json');
      assert.equal(v1.code, 0, v1.text);
      // More events, a new checkpoint: the log only grew.
      await api('POST', '/v1/orgs', admin, { name: 'acme' });
      await api('POST', '/v1/audit/checkpoint', admin);
      const v2 = await cli('audit', 'verify', '--key', vkey, '--since', saved, '--api-key', auditor, '--json');
      assert.equal(v2.code, 0, v2.text);
      assert.equal((JSON.parse(v2.text) as { grewFrom: number }).grewFrom, cp1.size);
      // A wrong pinned key fails.
      const other = `${verifier.name}+00000000+${Buffer.from([1, ...new Uint8Array(32)]).toString('base64')}`;
      assert.equal((await cli('audit', 'verify', '--key', other)).code, 1);

      // The log is forked (its tree head rewritten): the witness sees a split view and refuses.
      const w2 = await cli('audit', 'witness', '--key-file', wkey, '--log-key', vkey);
      assert.equal(w2.code, 0, w2.text);
      // A dishonest log shows a checkpoint for another tree (signed with its own key, read from its database).
      await api('POST', '/v1/orgs', admin, { name: 'after-fork' });
      const forked = new Database(`${dir.path}/coord/idlemesh.db`);
      const keyDoc = JSON.parse((forked.prepare("SELECT doc FROM records WHERE kind = 'key' AND id = 'audit-log'").get() as { doc: string }).doc) as { priv: string };
      const size = (forked.prepare('SELECT size FROM audit_head').get() as { size: number }).size;
      const fake = signNote(formatCheckpoint({ origin: verifier.name, size, rootHash: new Uint8Array(32).fill(7) }), { name: verifier.name, privateKey32: new Uint8Array(Buffer.from(keyDoc.priv, 'hex')) });
      forked.prepare('INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)').run(size, fake, Date.now());
      forked.close();
      const w3 = await cli('audit', 'witness', '--key-file', wkey, '--log-key', vkey);
      assert.equal(w3.code, 1, w3.text);
      assert.match(w3.text, /SPLIT VIEW/);
      await agent.waitFor(/SPLIT VIEW/, 20_000);
      await agent.stop();
      // Remove the forgery again: the entry check below is about a rewritten entry.
      const clean = new Database(`${dir.path}/coord/idlemesh.db`);
      clean.prepare('DELETE FROM audit_checkpoints WHERE size = ?').run(size);
      clean.close();

      // Someone with database access rewrites history (the trigger has to go first): caught.
      const db = new Database(`${dir.path}/coord/idlemesh.db`);
      db.exec('DROP TRIGGER audit_entries_immutable');
      const row = db.prepare('SELECT entry FROM audit_entries WHERE seq = 4').get() as { entry: string };
      db.prepare('UPDATE audit_entries SET entry = ? WHERE seq = 4').run(row.entry.replace('key.revoked', 'key.created'));
      db.close();
      const v3 = await cli('audit', 'verify', '--key', vkey, '--since', saved, '--api-key', auditor);
      assert.equal(v3.code, 1, v3.text);
      assert.match(v3.text, /IM_BAD_SIGNATURE/);
    } finally {
      await coord.stop();
      dir.remove();
    }
  });
});
