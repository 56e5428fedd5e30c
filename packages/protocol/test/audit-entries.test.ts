import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  AUDIT_EVENT_TYPES,
  MerkleLog,
  auditEntryBytes,
  auditEntryLeafHash,
  consistencyProof,
  inclusionProof,
  merkleLeafHash,
  merkleRoot,
  toHex,
  verifyAuditEntries,
  verifyEntryInclusion,
  verifyLogGrowth,
} from '../src/index.js';
import type { AuditEntry, TreeHead } from '../src/index.js';

const entries = (n: number): AuditEntry[] =>
  Array.from({ length: n }, (_, seq) => ({
    seq,
    time: 1_700_000_000_000 + seq,
    type: AUDIT_EVENT_TYPES[seq % AUDIT_EVENT_TYPES.length] as string,
    actor: `acct-${seq % 3}`,
    ...(seq % 2 === 0 ? { org: 'acme' } : {}),
    subject: `thing-${seq}`,
    data: { n: seq, nested: { b: [1, 'two', null], a: true } },
  }));

const head = (es: readonly AuditEntry[], size = es.length): TreeHead => ({ size, rootHash: merkleRoot(es.slice(0, size).map(auditEntryLeafHash)) });

describe('audit entries', () => {
  it('are canonical JSON: sorted keys, no whitespace, undefined dropped', () => {
    const e: AuditEntry = { type: 'key.revoked', seq: 3, time: 5, subject: 'k1', data: { z: 1, a: { y: 'é', b: [2, 1] } } };
    const text = new TextDecoder().decode(auditEntryBytes(e));
    assert.equal(text, '{"data":{"a":{"b":[2,1],"y":"é"},"z":1},"seq":3,"subject":"k1","time":5,"type":"key.revoked"}');
    const reordered = { data: { a: { b: [2, 1], y: 'é' }, z: 1 }, time: 5, subject: 'k1', seq: 3, type: 'key.revoked', actor: undefined };
    assert.equal(toHex(auditEntryLeafHash(reordered)), toHex(auditEntryLeafHash(e)));
    assert.equal(toHex(auditEntryLeafHash(e)), toHex(merkleLeafHash(new TextEncoder().encode(text))));
  });

  it('hash differently when any field changes', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(), fc.string({ maxLength: 10 }), (seq, time, actor) => {
        const e: AuditEntry = { seq, time, type: 'auth.signin', actor };
        const h = toHex(auditEntryLeafHash(e));
        assert.notEqual(toHex(auditEntryLeafHash({ ...e, seq: seq + 1 })), h);
        assert.notEqual(toHex(auditEntryLeafHash({ ...e, time: time + 1 })), h);
        assert.notEqual(toHex(auditEntryLeafHash({ ...e, actor: `${actor}x` })), h);
        assert.notEqual(toHex(auditEntryLeafHash({ ...e, type: 'auth.signout' })), h);
      }),
    );
  });

  it('refuse what the hash could not pin down', () => {
    const ok: AuditEntry = { seq: 0, time: 0, type: 'epoch' };
    const bad: unknown[] = [
      { ...ok, extra: 1 }, // unknown field: not covered by the schema, so refused
      { ...ok, seq: -1 },
      { ...ok, seq: 1.5 },
      { ...ok, type: '' },
      { ...ok, type: 'Key Created' },
      { ...ok, data: { n: Number.NaN } },
      { ...ok, data: { n: 10n } },
      { ...ok, data: { when: new Date(0) } },
      { ...ok, data: [1, 2] },
    ];
    for (const e of bad) assert.throws(() => auditEntryBytes(e as AuditEntry), { code: 'IM_VALIDATION' }, String(JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? 'bigint' : v))));
  });
});

describe('auditor checks', () => {
  const all = entries(40);

  it('verifyAuditEntries accepts the true entries and names what is wrong otherwise', () => {
    assert.deepEqual(verifyAuditEntries(all, head(all)), { ok: true });
    assert.deepEqual(verifyAuditEntries(all, head(all, 17)), { ok: true }, 'entries past the checkpoint are ignored');
    assert.deepEqual(verifyAuditEntries([], head([])), { ok: true });

    const altered = all.map((e) => (e.seq === 11 ? { ...e, actor: 'mallory' } : e));
    const r1 = verifyAuditEntries(altered, head(all));
    assert.equal(r1.ok, false);
    assert.match(!r1.ok ? r1.reason : '', /altered/);

    const dropped = all.filter((e) => e.seq !== 5);
    const r2 = verifyAuditEntries(dropped, head(all, 39));
    assert.match(!r2.ok ? r2.reason : '', /seq 6/);

    const r3 = verifyAuditEntries(all.slice(0, 10), head(all));
    assert.match(!r3.ok ? r3.reason : '', /only 10 given/);
  });

  it('verifyLogGrowth accepts appends and catches rollbacks, forks and rewritten history', () => {
    const leaves = all.map(auditEntryLeafHash);
    const log = MerkleLog.fromLeaves(leaves.slice(0, 25));
    const prev: TreeHead = { size: log.size, rootHash: log.root() };
    for (const h of leaves.slice(25)) log.append(h);
    const next: TreeHead = { size: log.size, rootHash: log.root() };
    const proof = consistencyProof(leaves, 25);
    assert.deepEqual(verifyLogGrowth(prev, next, proof), { ok: true });
    assert.deepEqual(verifyLogGrowth(next, next, []), { ok: true });

    assert.match((verifyLogGrowth(next, prev, []) as { reason: string }).reason, /shrank/);
    const fork: TreeHead = { size: 40, rootHash: head(all.map((e) => (e.seq === 39 ? { ...e, time: 1 } : e))).rootHash };
    assert.match((verifyLogGrowth(next, fork, []) as { reason: string }).reason, /forked/);

    const rewritten = all.map((e) => (e.seq === 3 ? { ...e, data: { n: -1 } } : e));
    const rLeaves = rewritten.map(auditEntryLeafHash);
    const r = verifyLogGrowth(prev, { size: 40, rootHash: merkleRoot(rLeaves) }, consistencyProof(rLeaves, 25));
    assert.match((r as { reason: string }).reason, /rewritten/);
  });

  it('verifyEntryInclusion proves one entry against a checkpoint, and only that entry', () => {
    const leaves = all.map(auditEntryLeafHash);
    const cp = head(all);
    const e = all[21] as AuditEntry;
    const proof = inclusionProof(leaves, 21);
    assert.equal(verifyEntryInclusion(e, proof, cp), true);
    assert.equal(verifyEntryInclusion({ ...e, subject: 'other' }, proof, cp), false);
    assert.equal(verifyEntryInclusion({ ...e, seq: 22 }, proof, cp), false);
    assert.equal(verifyEntryInclusion(e, proof, head(all, 39)), false);
    assert.equal(verifyEntryInclusion({ ...e, type: 'BAD TYPE' }, proof, cp), false);
  });
});
