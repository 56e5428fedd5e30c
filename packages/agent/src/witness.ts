/**
 * The agent as a witness of its coordinator's audit log: it keeps the log key
 * it first saw (trust on first use, in its data directory) and the last
 * checkpoint it cosigned; every new checkpoint must verify under that key and
 * be consistent with the last (a consistency proof), or the agent refuses to
 * cosign and says so loudly — a split view. Cosignatures (C2SP
 * cosignature/v1) are made with the node key, named `node-<node id>`, so the
 * coordinator can check them against the node's own public key.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cosign, openCheckpoint, parseVerifierKey, verifyLogGrowth } from '@idlemesh/protocol';
import type { NodeKeyPair } from '@idlemesh/protocol';
import type { Logger } from './log.js';

export const WITNESS_EVERY_MS = 60_000;
const RETRY_MS = 5_000;

export class Witness {
  private last = 0;
  private running = false;

  constructor(private readonly dataDir: string, private readonly key: NodeKeyPair, private readonly log: Logger, private readonly everyMs = WITNESS_EVERY_MS) {}

  /** At most once a minute; failures are logged, never fatal (the log may be empty, the coordinator old). */
  async maybeWitness(baseUrl: string, now = Date.now()): Promise<void> {
    if (this.everyMs === 0 || this.running || now - this.last < this.everyMs) return;
    this.running = true;
    this.last = now;
    try {
      await this.witness(baseUrl);
    } catch (err) {
      // Nothing to witness yet (an empty log) or the coordinator is busy: try again soon, not in a minute.
      this.last = now - this.everyMs + Math.min(RETRY_MS, this.everyMs);
      this.log.debug('audit witness skipped', { err: (err as Error).message });
    } finally {
      this.running = false;
    }
  }

  async witness(baseUrl: string): Promise<'cosigned' | 'unchanged' | 'split-view'> {
    const keyFile = join(this.dataDir, 'audit-log.vkey');
    const lastFile = join(this.dataDir, 'audit-log.checkpoint');
    const get = async (path: string): Promise<Response> => fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    let vkey: string;
    if (existsSync(keyFile)) vkey = (await readFile(keyFile, 'utf8')).trim();
    else {
      const r = await get('/v1/audit/key');
      if (!r.ok) throw new Error(`no audit log key (HTTP ${r.status})`);
      vkey = ((await r.json()) as { verifierKey: string }).verifierKey;
      await writeFile(keyFile, `${vkey}\n`, { mode: 0o600 });
      this.log.info('pinned the coordinator audit log key', { vkey });
    }
    const verifier = parseVerifierKey(vkey);
    const res = await get('/v1/audit/checkpoint');
    if (!res.ok) throw new Error(`no checkpoint (HTTP ${res.status})`);
    const note = await res.text();
    const opened = openCheckpoint(note, { log: verifier });
    if (existsSync(lastFile)) {
      const prev = openCheckpoint(await readFile(lastFile, 'utf8'), { log: verifier }).checkpoint;
      if (prev.size === opened.checkpoint.size && Buffer.from(prev.rootHash).equals(Buffer.from(opened.checkpoint.rootHash))) return 'unchanged';
      const pr = await get(`/v1/audit/proof/consistency?from=${prev.size}&to=${opened.checkpoint.size}`);
      const proof = pr.ok ? ((await pr.json()) as { proof: string[] }).proof.map((b) => new Uint8Array(Buffer.from(b, 'base64'))) : [];
      const grown = verifyLogGrowth(prev, opened.checkpoint, proof);
      if (!grown.ok) {
        this.log.error('SPLIT VIEW: the coordinator audit log is not consistent with the checkpoint this node saw before; not cosigning', { reason: grown.reason });
        return 'split-view';
      }
    }
    // An Ed25519 PKCS#8 key ends with its 32-byte seed.
    const seed = this.key.pkcs8.slice(this.key.pkcs8.length - 32);
    const line = cosign(opened.body, { name: `node-${this.key.publicKeyHex}`, privateKey32: seed }, Math.floor(Date.now() / 1000));
    const post = await fetch(`${baseUrl}/v1/audit/cosign`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ size: opened.checkpoint.size, line }), signal: AbortSignal.timeout(10_000),
    });
    if (!post.ok) throw new Error(`cosignature refused (HTTP ${post.status})`);
    await writeFile(lastFile, note);
    return 'cosigned';
  }
}
