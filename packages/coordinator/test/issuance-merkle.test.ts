import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, inclusionProof, merkleEmptyRoot, merkleLeafHash, toHex, utf8, verifyInclusionProof } from '@idlemesh/protocol';
import { hourRowLeaf, hourRowsInLeafOrder, hourRowsRoot, hourRowsRootHex } from '../src/issuance/index.js';
import type { HourRow, HourTable } from '../src/issuance/index.js';

const r = (node: string, paid: bigint): HourRow => ({ node, paidMsat: paid, availSec: 3600n, capMeasured: 12n, busySec: 5n, slotSec: 7200n });
const table: HourTable = { hour: 490_000, bonds: new Map(), rows: [r('node-b', 2n), r('node-c', 3n), r('node-a', 1n)] };

describe('issuance: Merkle root of an hour\'s rows', () => {
  it('a leaf is the RFC 6962 leaf hash of the row\'s canonical JSON, amounts as decimal strings', () => {
    const json = '{"availSec":"3600","busySec":"5","capMeasured":"12","node":"node-a","paidMsat":"1","slotSec":"7200"}';
    assert.equal(canonicalJson({ node: 'node-a', paidMsat: '1', availSec: '3600', capMeasured: '12', busySec: '5', slotSec: '7200' }), json);
    assert.deepEqual(hourRowLeaf(r('node-a', 1n)), merkleLeafHash(utf8(json)));
  });

  it('does not depend on the order rows are given in, and changes with any value', () => {
    const root = hourRowsRootHex(table);
    assert.equal(hourRowsRootHex({ ...table, rows: [...table.rows].reverse() }), root);
    assert.notEqual(hourRowsRootHex({ ...table, rows: [r('node-b', 2n), r('node-c', 3n), r('node-a', 2n)] }), root);
    assert.equal(toHex(hourRowsRoot({ ...table, rows: [] })), toHex(merkleEmptyRoot()));
  });

  it('a node can check its own row against the root with an inclusion proof', () => {
    const leaves = hourRowsInLeafOrder(table).map(hourRowLeaf);
    const index = hourRowsInLeafOrder(table).findIndex((x) => x.node === 'node-c');
    const proof = inclusionProof(leaves, index);
    assert.ok(verifyInclusionProof(hourRowLeaf(r('node-c', 3n)), index, leaves.length, proof, hourRowsRoot(table)));
    assert.ok(!verifyInclusionProof(hourRowLeaf(r('node-c', 4n)), index, leaves.length, proof, hourRowsRoot(table)));
  });
});
