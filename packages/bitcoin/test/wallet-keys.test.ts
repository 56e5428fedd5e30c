import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { ImError } from '@idlemesh/protocol';
import { WatchOnlyAccount, descriptorChecksum, parseNetwork, withChecksum } from '../src/wallet.js';

// BIP84's test vectors (https://github.com/bitcoin/bips/blob/master/bip-0084.mediawiki#test-vectors).
const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const ZPUB = 'zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs';
const ZPRV = 'zprvAdG4iTXWBoARxkkzNpNh8r6Qag3irQB8PzEMkAFeTRXxHpbF9z4QgEvBRmfvqWvGp42t42nvgGpNgYSJA9iefm1yYNZKEm7z6qUWCroSQnE';
const RECEIVE_0 = 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu';
const RECEIVE_1 = 'bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g';
const CHANGE_0 = 'bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el';
const MASTER_FINGERPRINT = '73c5da0a';

const MAINNET_VERSIONS = { public: 0x0488b21e, private: 0x0488ade4 };
const ZPUB_VERSIONS = { public: 0x04b24746, private: 0x04b2430c };
const TESTNET_VERSIONS = { public: 0x043587cf, private: 0x04358394 };
const VPUB_VERSIONS = { public: 0x045f1cf6, private: 0x045f18bc };

const seed = mnemonicToSeedSync(MNEMONIC);
const accountKey = (path: string, versions: { public: number; private: number }): HDKey => HDKey.fromMasterSeed(seed, versions).derive(path);

function rejects(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImError, `expected an ImError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

describe('WatchOnlyAccount: BIP84 test vectors', () => {
  it('derives the zpub from the mnemonic and the BIP84 addresses from the zpub', () => {
    assert.equal(accountKey("m/84'/0'/0'", ZPUB_VERSIONS).publicExtendedKey, ZPUB);
    const account = WatchOnlyAccount.parse(ZPUB, 'mainnet');
    assert.equal(account.receive(0).address, RECEIVE_0);
    assert.equal(account.receive(1).address, RECEIVE_1);
    assert.equal(account.change(0).address, CHANGE_0);
    const first = account.receive(0);
    assert.equal(first.branch, 0);
    assert.equal(first.index, 0);
    assert.equal(first.path, '0/0');
    assert.equal(first.publicKey.length, 33);
    assert.deepEqual([...first.script.slice(0, 2)], [0x00, 0x14]);
  });

  it('gives the same addresses for the same key as xpub, and re-serializes zpub as xpub', () => {
    const xpub = accountKey("m/84'/0'/0'", MAINNET_VERSIONS).publicExtendedKey;
    assert.match(xpub, /^xpub/);
    const fromXpub = WatchOnlyAccount.parse(xpub, 'mainnet');
    assert.equal(fromXpub.receive(0).address, RECEIVE_0);
    assert.equal(fromXpub.change(0).address, CHANGE_0);
    assert.equal(WatchOnlyAccount.parse(ZPUB, 'mainnet').xpub, xpub);
  });

  it('reads tpub and vpub (m/84\'/1\'/0\') on regtest, testnet and signet', () => {
    const tpub = accountKey("m/84'/1'/0'", TESTNET_VERSIONS).publicExtendedKey;
    const vpub = accountKey("m/84'/1'/0'", VPUB_VERSIONS).publicExtendedKey;
    assert.match(tpub, /^tpub/);
    assert.match(vpub, /^vpub/);
    const regtest = WatchOnlyAccount.parse(tpub, 'regtest');
    assert.match(regtest.receive(0).address, /^bcrt1q/);
    assert.equal(WatchOnlyAccount.parse(vpub, 'regtest').receive(7).address, regtest.receive(7).address);
    // Same key, same witness program; only the address prefix differs.
    const testnet = WatchOnlyAccount.parse(vpub, 'testnet').receive(0);
    assert.match(testnet.address, /^tb1q/);
    assert.deepEqual(testnet.script, regtest.receive(0).script);
    assert.equal(WatchOnlyAccount.parse(tpub, 'signet').receive(0).address, testnet.address);
    // The regtest key derives what the mnemonic derives at m/84'/1'/0'/0/0.
    const direct = HDKey.fromMasterSeed(seed).derive("m/84'/1'/0'/0/0").publicKey!;
    assert.deepEqual(regtest.receive(0).publicKey, direct);
  });

  it('keeps the key origin for full paths and PSBT derivations; accepts h and \'', () => {
    const withOrigin = WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/84'/0'/0']${ZPUB}`, 'mainnet');
    assert.deepEqual(withOrigin.origin, { fingerprint: MASTER_FINGERPRINT, path: "m/84'/0'/0'" });
    assert.equal(withOrigin.fingerprint, MASTER_FINGERPRINT);
    assert.equal(withOrigin.receive(0).address, RECEIVE_0);
    assert.equal(withOrigin.change(3).path, "m/84'/0'/0'/1/3");
    const d = withOrigin.derivation(1, 3);
    assert.equal(d.fingerprint, 0x73c5da0a);
    assert.deepEqual(d.path, [0x80000054, 0x80000000, 0x80000000, 1, 3]);
    assert.deepEqual(withOrigin.fromDerivation(d), { branch: 1, index: 3 });
    assert.equal(withOrigin.fromDerivation({ fingerprint: 1, path: d.path }), undefined);
    const h = WatchOnlyAccount.parse(`[73C5DA0A/84h/0h/0h]${ZPUB}`, 'mainnet');
    assert.equal(h.change(3).path, "m/84'/0'/0'/1/3");
    // Without an origin the account key is the derivation root, as Bitcoin Core does for bare xpubs.
    const bare = WatchOnlyAccount.parse(ZPUB, 'mainnet');
    assert.equal(bare.origin, undefined);
    assert.deepEqual(bare.derivation(0, 5).path, [0, 5]);
    assert.notEqual(bare.fingerprint, MASTER_FINGERPRINT);
  });

  it('writes importable descriptors with BIP380 checksums', () => {
    // Bitcoin Core's own examples (doc/descriptors.md, wallet tests).
    assert.equal(descriptorChecksum('raw(deadbeef)'), '89f8spxm');
    assert.equal(
      withChecksum('wpkh([d34db33f/84h/0h/0h]xpub6DJ2dNUysrn5Vt36jH2KLBT2i1auw1tTSSomg8PhqNiUtx8QX2SvC9nrHu81fT41fvDUnhMjEzQgXnQjKEu3oaqMSzhSrHMxyyoEAmUHQbY/0/*)'),
      'wpkh([d34db33f/84h/0h/0h]xpub6DJ2dNUysrn5Vt36jH2KLBT2i1auw1tTSSomg8PhqNiUtx8QX2SvC9nrHu81fT41fvDUnhMjEzQgXnQjKEu3oaqMSzhSrHMxyyoEAmUHQbY/0/*)#cjjspncu',
    );
    const account = WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/84'/0'/0']${ZPUB}`, 'mainnet');
    const { receive, change } = account.descriptors();
    assert.match(receive, new RegExp(`^wpkh\\(\\[${MASTER_FINGERPRINT}/84h/0h/0h\\]xpub[1-9A-HJ-NP-Za-km-z]+/0/\\*\\)#[a-z0-9]{8}$`));
    assert.equal(receive, withChecksum(receive.slice(0, -9)));
    assert.equal(change, withChecksum(`${receive.slice(0, -9).replace('/0/*', '/1/*')}`));
    assert.equal(account.descriptor(), withChecksum(receive.slice(0, -9).replace('/0/*', '/<0;1>/*')));
    assert.doesNotMatch(WatchOnlyAccount.parse(ZPUB, 'mainnet').descriptors().receive, /\[/);
  });

  it('locates an address or script within a gap window on either branch', () => {
    const account = WatchOnlyAccount.parse(ZPUB, 'mainnet');
    assert.deepEqual(account.locate(RECEIVE_1, 20)?.index, 1);
    assert.equal(account.locate(CHANGE_0, 20)?.branch, 1);
    assert.equal(account.locate(account.change(15).script, 20)?.index, 15);
    assert.equal(account.locate(account.change(15).script, 10), undefined);
    assert.equal(account.locate(account.change(15).script, 20, [0]), undefined);
    assert.equal(account.owns(RECEIVE_0, 5), true);
    assert.equal(account.owns('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 50), false);
    rejects(() => account.locate('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 5), 'IM_BTC_WRONG_NETWORK');
  });
});

describe('WatchOnlyAccount: refusals', () => {
  it('refuses private keys and says never to give one', () => {
    rejects(() => WatchOnlyAccount.parse(ZPRV, 'mainnet'), 'IM_BTC_INVALID_KEY', /never give the coordinator a private key/);
    rejects(() => WatchOnlyAccount.parse(accountKey("m/84'/0'/0'", MAINNET_VERSIONS).privateExtendedKey, 'mainnet'), 'IM_BTC_INVALID_KEY', /private key/);
    rejects(() => WatchOnlyAccount.parse(accountKey("m/84'/1'/0'", TESTNET_VERSIONS).privateExtendedKey, 'regtest'), 'IM_BTC_INVALID_KEY', /private key/);
    // Even on the wrong network, and the message does not echo the key.
    assert.throws(() => WatchOnlyAccount.parse(ZPRV, 'regtest'), (e: unknown) => e instanceof ImError && e.code === 'IM_BTC_INVALID_KEY' && !e.message.includes(ZPRV));
  });

  it('refuses keys of the other network family', () => {
    rejects(() => WatchOnlyAccount.parse(ZPUB, 'regtest'), 'IM_BTC_WRONG_NETWORK');
    rejects(() => WatchOnlyAccount.parse(ZPUB, 'testnet'), 'IM_BTC_WRONG_NETWORK');
    rejects(() => WatchOnlyAccount.parse(accountKey("m/84'/1'/0'", TESTNET_VERSIONS).publicExtendedKey, 'mainnet'), 'IM_BTC_WRONG_NETWORK');
    // An origin whose coin type is another network's.
    rejects(() => WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/84'/1'/0']${ZPUB}`, 'mainnet'), 'IM_BTC_WRONG_NETWORK');
  });

  it('refuses keys that are not account-level BIP84 keys', () => {
    rejects(() => WatchOnlyAccount.parse(HDKey.fromMasterSeed(seed).publicExtendedKey, 'mainnet'), 'IM_BTC_INVALID_KEY', /depth 0/);
    rejects(() => WatchOnlyAccount.parse(accountKey("m/84'/0'/0'/0", ZPUB_VERSIONS).publicExtendedKey, 'mainnet'), 'IM_BTC_INVALID_KEY', /depth 4/);
    rejects(() => WatchOnlyAccount.parse(accountKey("m/84'/0'", ZPUB_VERSIONS).publicExtendedKey, 'mainnet'), 'IM_BTC_INVALID_KEY', /depth 2/);
    // ypub: a BIP49 (nested segwit) account.
    rejects(() => WatchOnlyAccount.parse(accountKey("m/49'/0'/0'", { public: 0x049d7cb2, private: 0x049d7878 }).publicExtendedKey, 'mainnet'), 'IM_BTC_INVALID_KEY');
    rejects(() => WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/49'/0'/0']${ZPUB}`, 'mainnet'), 'IM_BTC_INVALID_KEY', /BIP84/);
    rejects(() => WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/84'/0'/1']${ZPUB}`, 'mainnet'), 'IM_BTC_INVALID_KEY', /account index/);
    rejects(() => WatchOnlyAccount.parse(`[${MASTER_FINGERPRINT}/84'/0']${ZPUB}`, 'mainnet'), 'IM_BTC_INVALID_KEY');
  });

  it('refuses garbage and corrupted keys', () => {
    rejects(() => WatchOnlyAccount.parse('', 'mainnet'), 'IM_BTC_INVALID_KEY');
    rejects(() => WatchOnlyAccount.parse('not a key at all', 'mainnet'), 'IM_BTC_INVALID_KEY');
    rejects(() => WatchOnlyAccount.parse(`${ZPUB}/0/*`, 'mainnet'), 'IM_BTC_INVALID_KEY');
    // One character changed: the base58check checksum fails.
    const corrupted = ZPUB.slice(0, 40) + (ZPUB[40] === 'a' ? 'b' : 'a') + ZPUB.slice(41);
    rejects(() => WatchOnlyAccount.parse(corrupted, 'mainnet'), 'IM_BTC_INVALID_KEY');
  });

  it('refuses out-of-range address indexes', () => {
    const account = WatchOnlyAccount.parse(ZPUB, 'mainnet');
    rejects(() => account.receive(-1), 'IM_VALIDATION');
    rejects(() => account.receive(1.5), 'IM_VALIDATION');
    rejects(() => account.change(2 ** 31), 'IM_VALIDATION');
  });
});

describe('parseNetwork', () => {
  it('reads the four networks and refuses anything else', () => {
    assert.equal(parseNetwork('mainnet'), 'mainnet');
    assert.equal(parseNetwork(' Regtest '), 'regtest');
    assert.equal(parseNetwork('signet'), 'signet');
    assert.equal(parseNetwork('test'), 'testnet');
    rejects(() => parseNetwork('litecoin'), 'IM_VALIDATION');
  });
});
