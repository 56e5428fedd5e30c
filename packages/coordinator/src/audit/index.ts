/**
 * The coordinator's tamper-evident audit log: security-relevant events are
 * appended as leaves of an RFC 6962 Merkle tree (the core is in
 * @idlemesh/protocol); the sweep leader signs a C2SP checkpoint every minute
 * or 1,000 entries; inclusion and consistency proofs are served from the
 * stored leaf hashes. The log key lives in the store, so every coordinator
 * sharing it signs as the same log.
 */
import { randomBytes } from 'node:crypto';
import {
  ImError, addNoteSignatures, consistencyProof, cosignatureNoteVerifier, ed25519NoteVerifier, formatCheckpoint, inclusionProof, openNote,
  parseSignatureLine, parseVerifierKey, signNote, verifierKey, verifyCosignature,
} from '@idlemesh/protocol';
import type { AuditEntry, NoteVerifier } from '@idlemesh/protocol';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Logger } from '../core.js';
import type { Store } from '../store/index.js';

export const CHECKPOINT_EVERY_MS = 60_000;
export const CHECKPOINT_EVERY_ENTRIES = 1000;

export type AuditEvent = Omit<AuditEntry, 'seq' | 'time'>;

export class AuditLog {
  private key: { priv: Uint8Array; pub: Uint8Array } | undefined;
  /** Leaf hashes are immutable: kept as read, extended on demand for proofs. */
  private readonly leaves: Uint8Array[] = [];
  private lastCheckpointAt = 0;

  private readonly witnesses: Array<ReturnType<typeof parseVerifierKey>>;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly now: () => number,
    readonly origin: string,
    witnesses: readonly string[] = [],
    readonly quorum = 0,
  ) {
    this.witnesses = witnesses.map((w) => parseVerifierKey(w));
  }

  /** A witness's cosignature of a checkpoint: kept with it if it verifies under a configured witness key. */
  async cosign(size: number, line: string): Promise<{ size: number; witnessed: number }> {
    const c = await this.store.auditCheckpoint(size);
    if (!c) throw new ImError('IM_NOT_FOUND', `no checkpoint at size ${size}`);
    const sig = parseSignatureLine(line.endsWith('\n') ? line : `${line}\n`);
    const w = this.witnesses.find((x) => x.name === sig.name && x.keyId === sig.keyId) ?? (await this.nodeWitness(sig.name));
    if (!w) throw new ImError('IM_UNAUTHORIZED', `${sig.name} is not a witness of this log`);
    const opened = openNote(c.note, []);
    if (!verifyCosignature(opened.body, line, { name: w.name, publicKey: w.publicKey }).verified) throw new ImError('IM_BAD_SIGNATURE', 'the cosignature does not verify for this checkpoint');
    const already = opened.signatures.some((x) => x.name === sig.name && x.keyId === sig.keyId);
    if (!already) await this.store.auditReplaceCheckpoint(size, addNoteSignatures(c.note, [line.endsWith('\n') ? line : `${line}\n`]));
    this.log.info({ size, witness: sig.name }, 'checkpoint cosigned');
    return { size, witnessed: (await this.status(size)).witnessed };
  }

  /** Agents witness too: `node-<node id>`, whose key is the node id itself; only nodes this coordinator knows. */
  private async nodeWitness(name: string): Promise<{ name: string; publicKey: Uint8Array } | undefined> {
    const m = /^node-([0-9a-f]{64})$/.exec(name);
    if (!m) return undefined;
    const known = (await this.store.listNodes()).some((n) => n.id === m[1]);
    return known ? { name, publicKey: new Uint8Array(Buffer.from(m[1]!, 'hex')) } : undefined;
  }

  /** How many witnesses (configured ones and known nodes) cosigned a checkpoint; flagged when fewer than the quorum. */
  async status(size?: number): Promise<{ size: number; witnessed: number; quorum: number; flagged: boolean; witnesses: string[] }> {
    const c = await this.store.auditCheckpoint(size);
    if (!c) return { size: 0, witnessed: 0, quorum: this.quorum, flagged: this.quorum > 0, witnesses: [] };
    const nodeVerifiers = openNote(c.note, []).signatures
      .map((s) => /^node-([0-9a-f]{64})$/.exec(s.name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => cosignatureNoteVerifier(m[0], new Uint8Array(Buffer.from(m[1]!, 'hex'))));
    const verifiers = [...this.witnesses.map((w) => cosignatureNoteVerifier(w.name, w.publicKey)), ...nodeVerifiers];
    const opened = openNote(c.note, verifiers);
    const names = [...new Set(opened.signatures.filter((x) => x.verified && verifiers.some((v) => v.name === x.name && v.keyId === x.keyId)).map((x) => x.name))];
    return { size: c.size, witnessed: names.length, quorum: this.quorum, flagged: names.length < this.quorum, witnesses: names };
  }

  /** Appends events; a failure is logged loudly but does not undo what they record (it already happened). */
  async record(...events: AuditEvent[]): Promise<void> {
    const time = this.now();
    try {
      await this.store.auditAppend(events.map((e) => ({ ...e, time })));
    } catch (err) {
      this.log.error({ err, events: events.map((e) => e.type) }, 'AUDIT: could not append to the audit log');
    }
  }

  private async signingKey(): Promise<{ priv: Uint8Array; pub: Uint8Array }> {
    if (this.key) return this.key;
    for (let i = 0; i < 2; i++) {
      const [r] = await this.store.records('key', { ids: ['audit-log'], limit: 1 });
      if (r) {
        const d = r.doc as { priv: string; pub: string };
        return (this.key = { priv: new Uint8Array(Buffer.from(d.priv, 'hex')), pub: new Uint8Array(Buffer.from(d.pub, 'hex')) });
      }
      const priv = new Uint8Array(randomBytes(32));
      const pub = ed25519.getPublicKey(priv);
      try {
        await this.store.commitRecords({ expect: [{ kind: 'key', id: 'audit-log', states: ['absent'] }], records: [{ kind: 'key', id: 'audit-log', state: 'active', doc: { priv: Buffer.from(priv).toString('hex'), pub: Buffer.from(pub).toString('hex'), origin: this.origin } }] }, this.now());
        return (this.key = { priv, pub });
      } catch (err) {
        if (!(err instanceof ImError && err.code === 'IM_CONFLICT')) throw err;
      }
    }
    throw new ImError('IM_INTERNAL', 'could not create or read the audit log key');
  }

  /** `<origin>+<key id>+<base64 key>`: what auditors and witnesses pin. */
  async verifierKey(): Promise<string> {
    return verifierKey(this.origin, (await this.signingKey()).pub);
  }

  async verifier(): Promise<NoteVerifier> {
    return ed25519NoteVerifier(this.origin, (await this.signingKey()).pub);
  }

  /** Leader work: a signed checkpoint when a minute has passed or 1,000 entries came since the last. */
  async checkpointIfDue(force = false): Promise<{ size: number } | undefined> {
    const head = await this.store.auditHead();
    const last = await this.store.auditCheckpoint();
    if (last && last.size >= head.size) return undefined;
    const grown = head.size - (last?.size ?? 0);
    if (!force && grown < CHECKPOINT_EVERY_ENTRIES && this.now() - this.lastCheckpointAt < CHECKPOINT_EVERY_MS && last !== undefined) return undefined;
    const key = await this.signingKey();
    const note = signNote(formatCheckpoint({ origin: this.origin, size: head.size, rootHash: head.root }), { name: this.origin, privateKey32: key.priv });
    await this.store.auditPutCheckpoint(head.size, note, this.now());
    this.lastCheckpointAt = this.now();
    return { size: head.size };
  }

  async checkpoint(size?: number): Promise<string> {
    if (size === undefined) await this.checkpointIfDue(false);
    const c = await this.store.auditCheckpoint(size);
    if (!c) throw new ImError('IM_NOT_FOUND', size === undefined ? 'no checkpoint yet: the log is empty' : `no checkpoint at size ${size}`);
    return c.note;
  }

  private async leavesUpTo(size: number): Promise<Uint8Array[]> {
    if (this.leaves.length < size) this.leaves.push(...(await this.store.auditLeafHashes(this.leaves.length, size)));
    if (this.leaves.length < size) throw new ImError('IM_NOT_FOUND', `the log has fewer than ${size} entries`);
    return this.leaves.slice(0, size);
  }

  async inclusion(index: number, size: number): Promise<string[]> {
    if (!(index >= 0 && index < size)) throw new ImError('IM_VALIDATION', `index ${index} is not below size ${size}`);
    return inclusionProof(await this.leavesUpTo(size), index, size).map((h) => Buffer.from(h).toString('base64'));
  }

  async consistency(from: number, to: number): Promise<string[]> {
    if (!(from >= 0 && from <= to)) throw new ImError('IM_VALIDATION', `need 0 ≤ from ≤ to, got ${from}, ${to}`);
    return consistencyProof(await this.leavesUpTo(to), from, to).map((h) => Buffer.from(h).toString('base64'));
  }
}
