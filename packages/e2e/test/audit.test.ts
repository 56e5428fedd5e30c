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
  auditEntryLeafHash, merkleLeafHash, openCheckpoint, parseVerifierKey, utf8, verifyInclusionProof,
} from '@idlemesh/protocol';
import type { AuditEntry } from '@idlemesh/protocol';
import { runCli, startCoordinatorProc, tempDir } from './helpers.js';

describe('audit log end to end', () => {
  it('records, checkpoints, proves inclusion and growth, and catches a rewritten entry', async (t) => {
    if (process.env.IDLEMESH_TEST_STORE === 'postgres') {
      t.skip('tampering is shown on the SQLite file; the log itself runs on PostgreSQL in the governance suite');
      return;
    }
    const dir = tempDir('audit');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
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
