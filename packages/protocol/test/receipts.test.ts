import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ImError, countersign, generateNodeKey, openResults, receiptLeafHash, receiptOf, receiptTree, sha256HexSync, signResults,
  verifyInclusionProof, merkleRoot, verifyReceiptDocument, bytesToBase64, toHex, receiptDocument, receiptJson, canonicalJson,
} from '../src/index.js';
import type { NodeKeyPair, Receipt, ReceiptBatch, ReceiptDocument, TaskOutcome } from '../src/index.js';

function outcome(i: number, over: Partial<TaskOutcome> = {}): TaskOutcome {
  return {
    taskId: `job_0000000000000000000${i % 10}x/${i}`, attempt: 1, ok: true, output: bytesToBase64(new Uint8Array([i, i + 1])), fuel: 100 + i,
    startedAt: 1000, endedAt: 1001, inputHash: sha256HexSync(new Uint8Array([i])), runtime: 'wasm', runtimeVersion: 'v-test', ...over,
  };
}

/** What the coordinator keeps for result `index` of a batch (see coordinator/src/receipts.ts). */
async function documentFor(agent: NodeKeyPair, coord: NodeKeyPair, results: TaskOutcome[], index: number): Promise<ReceiptDocument> {
  const msg = await signResults(agent, results, 5000);
  const { receipts } = openResults(msg);
  const acceptedAt = 5001;
  const sig = await countersign(coord.privateKey, msg.nodeId, msg.body.root, msg.body.n, acceptedAt);
  // Kept once per batch; each result's document is assembled from it.
  const batch: ReceiptBatch = {
    format: 'idlemesh-receipt-batch/1',
    receipts,
    agent: { nodeId: msg.nodeId, root: msg.body.root, nonce: msg.nonce, ts: msg.ts, sig: msg.sig },
    coordinator: { publicKey: coord.publicKeyHex, acceptedAt, sig },
  };
  return receiptDocument(JSON.parse(JSON.stringify(batch)) as ReceiptBatch, index);
}

describe('result receipts', () => {
  it('hashes the same bytes as canonical JSON, the fast way', () => {
    const node = 'a'.repeat(64);
    const cases = [outcome(0), outcome(1, { ok: false, output: undefined, error: { code: 'IM_WASM_TRAP', message: 'x' } }), outcome(7, { taskId: 'job_"quoted"\\x/7', runtime: 'wasm\u2028', fuel: 2 ** 52 })];
    for (const o of cases) {
      const r = receiptOf(node, o);
      assert.equal(receiptJson(r), canonicalJson(r));
    }
    // A receipt with a field missing or one too many is written the generic way.
    const r = receiptOf(node, outcome(3));
    const extra = { ...r, zz: 1 } as unknown as Receipt;
    assert.equal(receiptJson(extra), canonicalJson(extra));
    const missing = { ...r, runtime: undefined } as unknown as Receipt;
    assert.equal(receiptJson(missing), canonicalJson(missing));
  });

  it('gives every leaf an RFC 6962 inclusion path to the same head', () => {
    for (const n of [1, 2, 3, 5, 8, 13, 64, 100]) {
      const leaves = Array.from({ length: n }, (_, i) => receiptLeafHash(receiptOf('a'.repeat(64), outcome(i))));
      const { root, paths } = receiptTree(leaves);
      assert.deepEqual(root, merkleRoot(leaves), `root, n=${n}`);
      leaves.forEach((leaf, i) => assert.ok(verifyInclusionProof(leaf, i, n, paths[i]!, root), `path ${i} of ${n}`));
    }
  });

  it('verifies a genuine receipt offline, and pins the coordinator key', async () => {
    const [agent, coord] = [await generateNodeKey(), await generateNodeKey()];
    const results = [outcome(0), outcome(1), outcome(2, { ok: false, output: undefined, error: { code: 'IM_WASM_TRAP', message: 'x' } })];
    for (let i = 0; i < results.length; i++) {
      const doc = await documentFor(agent, coord, results, i);
      const r = await verifyReceiptDocument(JSON.parse(JSON.stringify(doc)), { coordinatorKey: coord.publicKeyHex });
      assert.ok(r.ok, JSON.stringify(r.checks));
    }
    const failed = await documentFor(agent, coord, results, 2);
    assert.equal(failed.receipt.outputHash, null);
    assert.equal(failed.receipt.error, 'IM_WASM_TRAP');
    const other = await generateNodeKey();
    const pinned = await verifyReceiptDocument(failed, { coordinatorKey: other.publicKeyHex });
    assert.equal(pinned.ok, false);
    assert.deepEqual(pinned.checks.filter((c) => !c.ok).map((c) => c.name), ['coordinator key']);
  });

  it('refuses a forged receipt: changed fields, a re-signed head, a foreign proof', async () => {
    const [agent, coord, mallory] = [await generateNodeKey(), await generateNodeKey(), await generateNodeKey()];
    const results = [outcome(0), outcome(1), outcome(2)];
    const doc = await documentFor(agent, coord, results, 1);
    const failing = async (d: unknown): Promise<string[]> => (await verifyReceiptDocument(d)).checks.filter((c) => !c.ok).map((c) => c.name);

    // Inflated effort or another output: no longer the leaf the agent signed.
    assert.deepEqual(await failing({ ...doc, receipt: { ...doc.receipt, fuel: doc.receipt.fuel * 10 } }), ['inclusion']);
    assert.deepEqual(await failing({ ...doc, receipt: { ...doc.receipt, outputHash: sha256HexSync(new Uint8Array([7])) } }), ['inclusion']);
    // Re-signed by another key, claiming to be the agent: the receipt names the original node.
    const resigned = await documentFor(mallory, coord, results, 1);
    assert.deepEqual(await failing({ ...resigned, receipt: doc.receipt }), ['signer', 'inclusion']);
    // Re-signed head under the agent's name, signature by someone else.
    assert.deepEqual(await failing({ ...doc, agent: { ...doc.agent, sig: resigned.agent.sig } }), ['agent signature']);
    // A coordinator countersignature lifted from another batch.
    const other = await documentFor(agent, coord, [outcome(5)], 0);
    assert.deepEqual(await failing({ ...doc, coordinator: other.coordinator }), ['coordinator countersignature']);
    // Not a receipt at all.
    assert.deepEqual(await failing({ hello: 1 }), ['format']);
  });

  it('refuses a results message whose signed head is not the tree of its results', async () => {
    const agent = await generateNodeKey();
    const msg = await signResults(agent, [outcome(0), outcome(1)], 1);
    assert.equal(openResults(msg).receipts.length, 2);
    const swapped = { ...msg, results: [outcome(0), outcome(1, { fuel: 999_999 })] };
    assert.throws(() => openResults(swapped), (e: unknown) => e instanceof ImError && e.code === 'IM_RECEIPT_MISMATCH');
    assert.throws(() => openResults({ ...msg, results: [outcome(0)] }), (e: unknown) => e instanceof ImError && e.code === 'IM_RECEIPT_MISMATCH');
    assert.equal(toHex(receiptTree([receiptLeafHash(receiptOf(agent.publicKeyHex, outcome(0)))]).root).length, 64);
  });
});
