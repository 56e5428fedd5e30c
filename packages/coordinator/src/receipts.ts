/**
 * The coordinator's half of result receipts: it countersigns the receipts it
 * accepts with a key of its own (kept in the store, so every coordinator
 * sharing it signs with the same key) and keeps each accepted batch once,
 * from which every result's self-contained receipt document is assembled.
 */
import { ImError, countersign, generateNodeKey, importNodeKey, openResults, sign } from '@idlemesh/protocol';
import type { NodeKeyPair, ReceiptBatch, SignedMessage } from '@idlemesh/protocol';
import type { ReceiptBatchRow, Store } from './store/index.js';

const KEY_ID = 'receipts';

export class ReceiptSigner {
  private key: Promise<NodeKeyPair> | undefined;

  constructor(private readonly store: Store, private readonly now: () => number) {}

  /** The hex ed25519 key receipts are countersigned with: what `idlemesh audit receipt --coordinator-key` pins. */
  async publicKey(): Promise<string> {
    return (await this.signingKey()).publicKeyHex;
  }

  /** Signs other statements of this coordinator (issuance epochs) with the same key. */
  async sign(bytes: Uint8Array): Promise<{ publicKey: string; sig: string }> {
    const key = await this.signingKey();
    return { publicKey: key.publicKeyHex, sig: await sign(key.privateKey, bytes) };
  }

  /**
   * Checks a results message's receipts against its signed head (else
   * IM_RECEIPT_MISMATCH) and countersigns the head: the batch the store keeps
   * once, with the results it accepts; each result's receipt document is
   * assembled from it when asked for (`receiptDocument`).
   */
  async batch(msg: Extract<SignedMessage, { type: 'results' }>, acceptedAt: number): Promise<ReceiptBatchRow> {
    const { receipts } = openResults(msg);
    const key = await this.signingKey();
    const sig = await countersign(key.privateKey, msg.nodeId, msg.body.root, msg.body.n, acceptedAt);
    const batch: ReceiptBatch = {
      format: 'idlemesh-receipt-batch/1',
      receipts,
      agent: { nodeId: msg.nodeId, root: msg.body.root, nonce: msg.nonce, ts: msg.ts, sig: msg.sig },
      coordinator: { publicKey: key.publicKeyHex, acceptedAt, sig },
    };
    // A nonce is used once per node: with the node, it names the batch.
    return { id: `${msg.nodeId.slice(0, 16)}.${msg.nonce}`, doc: JSON.stringify(batch) };
  }

  private signingKey(): Promise<NodeKeyPair> {
    this.key ??= this.loadOrCreate().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }

  private async loadOrCreate(): Promise<NodeKeyPair> {
    for (let i = 0; i < 2; i++) {
      const [r] = await this.store.records('key', { ids: [KEY_ID], limit: 1 });
      if (r) return importNodeKey(new Uint8Array(Buffer.from((r.doc as { pkcs8: string }).pkcs8, 'hex')));
      const k = await generateNodeKey();
      try {
        // Coordinators that start together race here; the first key stored wins and the others read it.
        await this.store.commitRecords({
          expect: [{ kind: 'key', id: KEY_ID, states: ['absent'] }],
          records: [{ kind: 'key', id: KEY_ID, state: 'active', doc: { pkcs8: Buffer.from(k.pkcs8).toString('hex'), pub: k.publicKeyHex } }],
        }, this.now());
        return k;
      } catch (err) {
        if (!(err instanceof ImError && err.code === 'IM_CONFLICT')) throw err;
      }
    }
    throw new ImError('IM_INTERNAL', 'could not create or read the receipt key');
  }
}
