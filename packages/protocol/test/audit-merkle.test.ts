import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  MerkleLog,
  consistencyProof,
  consistencyProofRanges,
  fromHex,
  inclusionProof,
  inclusionProofRanges,
  merkleEmptyRoot,
  merkleLeafHash,
  merkleNodeHash,
  merkleRoot,
  toHex,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '../src/index.js';

// Reference data of certificate-transparency-go and github.com/transparency-dev/merkle
// (proof/verify_test.go): eight leaves, the root at every size 0..8, and proofs.
const LEAF_DATA = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(fromHex);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const LEAVES = LEAF_DATA.map(merkleLeafHash);
const root = (n: number): Uint8Array => fromHex(ROOTS[n] as string);

// transparency-dev/merkle's vectors use 1-based leaf numbers; these are 0-based indices.
const INCLUSION = [
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { index: 1, size: 5, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];
const CONSISTENCY = [
  { from: 1, to: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { from: 6, to: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { from: 2, to: 5, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
  { from: 6, to: 7, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];

const flip = (h: Uint8Array, bit = 0): Uint8Array => {
  const c = h.slice();
  c[0] = (c[0] ?? 0) ^ (1 << bit);
  return c;
};
const leafOf = (n: number): Uint8Array => merkleLeafHash(new TextEncoder().encode(`entry ${n}`));
const tree = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => leafOf(i));

describe('RFC 6962 reference vectors', () => {
  it('hashes the empty tree, the empty leaf and a node as published', () => {
    assert.equal(toHex(merkleEmptyRoot()), ROOTS[0]);
    assert.equal(toHex(merkleLeafHash(new Uint8Array(0))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    assert.equal(toHex(merkleLeafHash(new Uint8Array([0]))), '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7');
    assert.equal(toHex(merkleNodeHash(LEAVES[0] as Uint8Array, LEAVES[1] as Uint8Array)), ROOTS[2]);
  });

  it('gives the published root at every size 0..8, from arrays and from a leaf function', () => {
    for (let n = 0; n <= 8; n++) {
      assert.equal(toHex(merkleRoot(LEAVES.slice(0, n))), ROOTS[n], `size ${n}`);
      assert.equal(toHex(merkleRoot((i) => LEAVES[i] as Uint8Array, n)), ROOTS[n], `size ${n} (function)`);
    }
  });

  it('produces and verifies the published inclusion proofs', () => {
    for (const v of INCLUSION) {
      const proof = inclusionProof(LEAVES, v.index, v.size);
      assert.deepEqual(proof.map(toHex), v.proof, `leaf ${v.index} of ${v.size}`);
      assert.ok(verifyInclusionProof(LEAVES[v.index] as Uint8Array, v.index, v.size, proof, root(v.size)));
    }
    assert.deepEqual(inclusionProof(LEAVES, 0, 1), []);
    assert.ok(verifyInclusionProof(LEAVES[0] as Uint8Array, 0, 1, [], root(1)));
  });

  it('produces and verifies the published consistency proofs', () => {
    for (const v of CONSISTENCY) {
      const proof = consistencyProof(LEAVES, v.from, v.to);
      assert.deepEqual(proof.map(toHex), v.proof, `${v.from} -> ${v.to}`);
      assert.ok(verifyConsistencyProof(v.from, v.to, root(v.from), root(v.to), proof));
    }
  });

  it('rejects the corruptions transparency-dev/merkle probes for', () => {
    const some = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456');
    for (const v of INCLUSION) {
      const proof = v.proof.map(fromHex);
      const leaf = LEAVES[v.index] as Uint8Array;
      const r = root(v.size);
      const probes: [number, number, Uint8Array, Uint8Array[], Uint8Array][] = [
        [v.index - 1, v.size, leaf, proof, r],
        [v.index + 1, v.size, leaf, proof, r],
        [v.index ^ 2, v.size, leaf, proof, r],
        [v.index, v.size * 2, leaf, proof, r],
        [v.index, Math.floor(v.size / 2), leaf, proof, r],
        [v.index, v.size, flip(leaf), proof, r],
        [v.index, v.size, leaf, proof, root(0)],
        [v.index, v.size, leaf, proof, some],
        [v.index, v.size, leaf, [...proof, r], r],
        [v.index, v.size, leaf, [r, ...proof], r],
        [v.index, v.size, leaf, proof.slice(0, -1), r],
        ...proof.map((_, i): [number, number, Uint8Array, Uint8Array[], Uint8Array] => [v.index, v.size, leaf, proof.map((p, j) => (i === j ? flip(p, 3) : p)), r]),
      ];
      for (const [i, n, l, p, rt] of probes) assert.equal(verifyInclusionProof(l, i, n, p, rt), false, `inclusion probe ${i}/${n}`);
    }
    for (const v of CONSISTENCY) {
      const proof = v.proof.map(fromHex);
      const [r1, r2] = [root(v.from), root(v.to)];
      const probes: [number, number, Uint8Array, Uint8Array, Uint8Array[]][] = [
        [v.from - 1, v.to, r1, r2, proof],
        [v.from + 1, v.to, r1, r2, proof],
        [v.from ^ 2, v.to, r1, r2, proof],
        [v.from, v.to * 2, r1, r2, proof],
        [v.from, Math.floor(v.to / 2), r1, r2, proof],
        [v.from, v.to, some, r2, proof],
        [v.from, v.to, r1, some, proof],
        [v.from, v.to, r2, r1, proof],
        [v.from, v.to, r1, r2, []],
        [v.from, v.to, r1, r2, [...proof, r1]],
        [v.from, v.to, r1, r2, [...proof, r2]],
        [v.from, v.to, r1, r2, [r1, ...proof]],
        [v.from, v.to, r1, r2, [r2, ...proof]],
        [v.from, v.to, r1, r2, [proof[0] as Uint8Array, ...proof]],
        [v.from, v.to, r1, r2, proof.slice(0, -1)],
        ...proof.map((_, i): [number, number, Uint8Array, Uint8Array, Uint8Array[]] => [v.from, v.to, r1, r2, proof.map((p, j) => (i === j ? flip(p, 4) : p))]),
      ];
      for (const [a, b, x, y, p] of probes) assert.equal(verifyConsistencyProof(a, b, x, y, p), false, `consistency probe ${a}->${b}`);
    }
  });

  it('handles the edge sizes: from empty, equal sizes, shrinking', () => {
    assert.ok(verifyConsistencyProof(0, 8, root(0), root(8), []));
    assert.equal(verifyConsistencyProof(0, 8, root(1), root(8), []), false, 'the empty tree has only one root');
    assert.equal(verifyConsistencyProof(0, 8, root(0), root(8), [root(0)]), false);
    assert.ok(verifyConsistencyProof(5, 5, root(5), root(5), []));
    assert.equal(verifyConsistencyProof(5, 5, root(5), root(6), []), false);
    assert.equal(verifyConsistencyProof(6, 5, root(6), root(5), []), false);
    assert.equal(verifyInclusionProof(LEAVES[0] as Uint8Array, 0, 0, [], root(0)), false);
    assert.throws(() => inclusionProof(LEAVES, 8, 8), { code: 'IM_VALIDATION' });
    assert.throws(() => consistencyProof(LEAVES, 9, 8), { code: 'IM_VALIDATION' });
    assert.throws(() => merkleRoot(LEAVES, 9), { code: 'IM_VALIDATION' });
  });
});

describe('Merkle properties over random trees', () => {
  it('every inclusion proof verifies, and not for another index, leaf, size or root', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1))), ([n, i]) => {
        const leaves = tree(n);
        const r = merkleRoot(leaves);
        const proof = inclusionProof(leaves, i);
        const leaf = leaves[i] as Uint8Array;
        assert.ok(verifyInclusionProof(leaf, i, n, proof, r));
        if (n > 1) assert.equal(verifyInclusionProof(leaf, (i + 1) % n, n, proof, r), false, 'wrong index');
        assert.equal(verifyInclusionProof(flip(leaf), i, n, proof, r), false, 'wrong leaf');
        // Not n + 1: for some (index, size) pairs the proof has the same shape at n and
        // n + 1, and the root, not the size, is what it binds. Doubling changes the shape.
        assert.equal(verifyInclusionProof(leaf, i, n * 2, proof, r), false, 'wrong size');
        assert.equal(verifyInclusionProof(leaf, i, n, proof, flip(r)), false, 'wrong root');
        assert.equal(verifyInclusionProof(leaf, i, n, proof, merkleRoot(tree(n + 1))), false, 'root of a bigger tree');
      }),
      { numRuns: 300 },
    );
  });

  it('every consistency proof verifies, and not when tampered with or when an old leaf was rewritten', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n }), fc.nat(n - 1), fc.nat(7))),
        ([n, m, k, bit]) => {
          const leaves = tree(n);
          const oldRoot = merkleRoot(leaves, m);
          const newRoot = merkleRoot(leaves);
          const proof = consistencyProof(leaves, m);
          assert.ok(verifyConsistencyProof(m, n, oldRoot, newRoot, proof));
          if (proof.length > 0) {
            const j = k % proof.length;
            const bad = proof.map((p, x) => (x === j ? flip(p, bit) : p));
            assert.equal(verifyConsistencyProof(m, n, oldRoot, newRoot, bad), false, 'tampered proof');
            assert.equal(verifyConsistencyProof(m, n, oldRoot, newRoot, proof.slice(1)), false, 'dropped element');
          }
          // The log rewrites leaf k < m after publishing the old root, then proves from its new history.
          const w = k % m;
          const rewritten = leaves.map((h, x) => (x === w ? leafOf(1000 + x) : h));
          const forgedRoot = merkleRoot(rewritten);
          const forgedProof = consistencyProof(rewritten, m);
          assert.equal(verifyConsistencyProof(m, n, oldRoot, forgedRoot, forgedProof), false, 'rewritten history');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('proof ranges name exactly the subtrees the proofs hash', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }).chain((n) => fc.tuple(fc.constant(n), fc.nat(n - 1), fc.integer({ min: 0, max: n }))), ([n, i, m]) => {
        const leaves = tree(n);
        const viaRanges = (rs: readonly (readonly [number, number])[]): string[] => rs.map(([s, e]) => toHex(merkleRoot(leaves.slice(s, e))));
        assert.deepEqual(viaRanges(inclusionProofRanges(i, n)), inclusionProof(leaves, i).map(toHex));
        assert.deepEqual(viaRanges(consistencyProofRanges(m, n)), consistencyProof(leaves, m).map(toHex));
      }),
    );
  });

  it('MerkleLog: the incremental root equals merkleRoot at every size, and survives a restore', () => {
    const leaves = tree(300);
    const log = new MerkleLog();
    assert.equal(toHex(log.root()), ROOTS[0]);
    for (let n = 1; n <= leaves.length; n++) {
      assert.equal(log.append(leaves[n - 1] as Uint8Array), n - 1);
      assert.equal(toHex(log.root()), toHex(merkleRoot(leaves, n)), `size ${n}`);
      if (n % 37 === 0) {
        const back = MerkleLog.restore(log.size, log.frontier());
        assert.equal(toHex(back.root()), toHex(log.root()));
        back.append(leafOf(99999));
        assert.equal(toHex(back.root()), toHex(merkleRoot([...leaves.slice(0, n), leafOf(99999)])));
      }
    }
    const get = (i: number): Uint8Array => leaves[i] as Uint8Array;
    assert.equal(toHex(log.rootAt(100, get)), toHex(merkleRoot(leaves, 100)));
    assert.ok(verifyInclusionProof(get(123), 123, 300, log.inclusionProof(123, get), log.root()));
    assert.ok(verifyConsistencyProof(77, 300, merkleRoot(leaves, 77), log.root(), log.consistencyProof(77, get)));
    assert.throws(() => log.inclusionProof(0, get, 301), { code: 'IM_VALIDATION' });
    assert.throws(() => MerkleLog.restore(5, [leafOf(0)]), { code: 'IM_VALIDATION' }, 'size 5 needs two frontier hashes');
    assert.throws(() => log.append(new Uint8Array(31)), { code: 'IM_VALIDATION' });
  });

  it('MerkleLog matches the reference roots', () => {
    const log = MerkleLog.fromLeaves(LEAVES);
    assert.equal(toHex(log.root()), ROOTS[8]);
    assert.equal(log.frontier().length, 1);
  });
});
