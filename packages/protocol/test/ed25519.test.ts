import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { KeyObject, sign as nodeSign, verify as nodeVerify, createPublicKey } from 'node:crypto';
import { ed25519Backend, fromHex, generateNodeKey, importNodeKey, randomHex, sign, toHex, utf8, verify } from '../src/index.js';

// RFC 8032, section 7.1, tests 1 and 2.
const RFC8032 = [
  {
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
];
const PKCS8_ED25519_PREFIX = '302e020100300506032b657004220420';

const dist = new URL('../src/index.js', import.meta.url).href;

/** Signs in a child process with the backend the environment picks; returns [backend, signature hex]. */
function signElsewhere(env: Record<string, string>, pkcs8Hex: string, messageHex: string): [string, string] {
  const code = `const p = await import(${JSON.stringify(dist)});
    const k = await p.importNodeKey(p.fromHex(${JSON.stringify(pkcs8Hex)}));
    console.log(p.ed25519Backend(), await p.sign(k.privateKey, p.fromHex(${JSON.stringify(messageHex)})));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [backend, sig] = r.stdout.trim().split(' ');
  return [backend ?? '', sig ?? ''];
}

describe('ed25519 (libsodium in Node where installed, else node:crypto)', () => {
  it('uses libsodium in Node unless told to keep OpenSSL', () => {
    assert.equal(ed25519Backend(), process.env.IDLEMESH_ED25519 === 'openssl' ? 'openssl' : 'libsodium');
  });

  it('signs and verifies the RFC 8032 vectors', async () => {
    for (const v of RFC8032) {
      const key = await importNodeKey(fromHex(PKCS8_ED25519_PREFIX + v.secret));
      assert.equal(key.publicKeyHex, v.public);
      assert.equal(await sign(key.privateKey, fromHex(v.message)), v.signature);
      assert.equal(await verify(v.public, v.signature, fromHex(v.message)), true);
      assert.equal(await verify(v.public, v.signature, fromHex(`${v.message}00`)), false, 'another message');
    }
  });

  it('gives the same signature bytes as OpenSSL, and each verifies the other', async () => {
    const key = await generateNodeKey();
    const data = utf8(JSON.stringify({ root: 'ab'.repeat(32), n: 3 }));
    const ours = await sign(key.privateKey, data);
    const openssl = toHex(nodeSign(null, data, KeyObject.from(key.privateKey)));
    assert.equal(ours, openssl);
    const spki = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(key.publicKeyHex, 'hex')]), format: 'der', type: 'spki' });
    assert.equal(nodeVerify(null, data, spki, Buffer.from(ours, 'hex')), true);
    assert.equal(await verify(key.publicKeyHex, openssl, data), true);
  });

  it('refuses a changed message, a changed signature, another key and malformed hex', async () => {
    const key = await generateNodeKey();
    const other = await generateNodeKey();
    const data = utf8('results head');
    const sig = await sign(key.privateKey, data);
    assert.equal(await verify(key.publicKeyHex, sig, data), true);
    assert.equal(await verify(key.publicKeyHex, sig, utf8('results heae')), false);
    const flipped = (sig.startsWith('0') ? '1' : '0') + sig.slice(1);
    assert.equal(await verify(key.publicKeyHex, flipped, data), false);
    assert.equal(await verify(other.publicKeyHex, sig, data), false);
    assert.equal(await verify(key.publicKeyHex.toUpperCase(), sig, data), false);
    assert.equal(await verify(key.publicKeyHex, sig.slice(2), data), false);
    // An all-zero key is a small-order point: refused, not an exception.
    assert.equal(await verify('00'.repeat(32), sig, data), false);
  });

  it('signs the same bytes with IDLEMESH_ED25519=openssl in another process', async () => {
    const v = RFC8032[1] as (typeof RFC8032)[number];
    const pkcs8 = PKCS8_ED25519_PREFIX + v.secret;
    const [a, sigA] = signElsewhere({ IDLEMESH_ED25519: 'openssl' }, pkcs8, v.message);
    const [b, sigB] = signElsewhere({ IDLEMESH_ED25519: '' }, pkcs8, v.message);
    assert.equal(a, 'openssl');
    assert.equal(b, 'libsodium');
    assert.equal(sigA, v.signature);
    assert.equal(sigB, v.signature);
  });
});

describe('randomHex (drawn from a pool)', () => {
  it('gives lowercase hex of the length asked, never the same twice across pool refills', () => {
    const seen = new Set<string>();
    // 16 bytes at a time: 1,000 draws empty the 4 KiB pool about four times.
    for (let i = 0; i < 1000; i++) {
      const h = randomHex(16);
      assert.match(h, /^[0-9a-f]{32}$/);
      seen.add(h);
    }
    assert.equal(seen.size, 1000);
    for (const n of [1, 10, 255, 256, 257, 1000]) assert.match(randomHex(n), new RegExp(`^[0-9a-f]{${2 * n}}$`));
  });

  it('is not biased towards zero (the pool wipes bytes it hands out, never bytes it has not)', () => {
    let zeros = 0;
    const draws = 2000;
    for (let i = 0; i < draws; i++) zeros += (randomHex(10).match(/../g) ?? []).filter((b) => b === '00').length;
    // 10 bytes a draw; a zero byte is 1 in 256 of them: expect about 78, and far fewer than a wiped pool would give.
    assert.ok(zeros < 200, `${zeros} zero bytes in ${draws * 10}`);
  });
});
