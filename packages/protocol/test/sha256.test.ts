import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { sha256HexSync, sha256Hex, toHex } from '../src/index.js';
import { sha256 } from '../src/sha256.js';

// FIPS 180-2, appendix B.
const VECTORS: Array<[string, string]> = [
  ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
];

describe('sha256 (one-shot in Node, noble elsewhere)', () => {
  it('gives the FIPS 180-2 digests, as bytes and as hex, sync and async', async () => {
    for (const [text, hex] of VECTORS) {
      const data = new TextEncoder().encode(text);
      assert.equal(toHex(sha256(data)), hex);
      assert.equal(sha256HexSync(data), hex);
      assert.equal(await sha256Hex(data), hex);
    }
  });

  it('agrees with the pure-JS hash on random inputs, views into larger buffers included', () => {
    for (let i = 0; i < 200; i++) {
      const whole = new Uint8Array(randomBytes(1 + (i * 37) % 300));
      const view = whole.subarray(i % 7, whole.length - (i % 5));
      assert.deepEqual(sha256(view), nobleSha256(view));
      assert.ok(sha256(view) instanceof Uint8Array);
    }
  });
});
