import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bech32m, hex } from '@scure/base';
import { address as bjsAddress, networks } from 'bitcoinjs-lib';
import { ImError } from '@idlemesh/protocol';
import { dustLimitSats, outputVbytes, parseAddress, scriptToAddress, scriptType } from '../src/wallet.js';
import type { AddressType } from '../src/wallet.js';

// bitcoinjs-lib wants an ECC library for taproot, which is not installed; its bech32m decoder does not.
function bjsScript(address: string): Uint8Array {
  if (!address.startsWith('bc1p')) return bjsAddress.toOutputScript(address, networks.bitcoin);
  const { version, data } = bjsAddress.fromBech32(address);
  return Uint8Array.from([0x50 + version, data.length, ...data]);
}

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ImError && e.code === code);
}

// BIP173, BIP350/BIP86 and BIP44/49 (abandon… about) vectors.
const MAINNET: Array<[string, AddressType, string]> = [
  ['bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'p2wpkh', '0014751e76e8199196d454941c45d1b3a323f1433bd6'],
  ['bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3', 'p2wsh', '00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262'],
  ['bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr', 'p2tr', '5120a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c'],
  ['1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA', 'p2pkh', ''],
  ['37VucYSaXLCAsxYyAPfbSi9eh4iEcbShgf', 'p2sh', ''],
];

describe('parseAddress', () => {
  it('reads every payout type with the right script, as bitcoinjs-lib does', () => {
    for (const [address, type, script] of MAINNET) {
      const parsed = parseAddress(address, 'mainnet');
      assert.equal(parsed.type, type);
      assert.equal(parsed.address, address);
      if (script !== '') assert.equal(hex.encode(parsed.script), script);
      assert.equal(hex.encode(parsed.script), hex.encode(bjsScript(address)));
      assert.equal(scriptType(parsed.script), type);
      assert.equal(scriptToAddress(parsed.script, 'mainnet'), address);
    }
  });

  it('reads test network and regtest addresses and normalizes upper-case bech32', () => {
    assert.equal(parseAddress('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'testnet').type, 'p2wpkh');
    assert.equal(parseAddress('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'signet').type, 'p2wpkh');
    assert.equal(parseAddress('mk2QpYatsKicvFVuTAQLBryyccRXMUaGHP', 'testnet').type, 'p2pkh');
    // Base58 addresses are the same on regtest as on testnet; only bech32 has its own hrp.
    assert.equal(parseAddress('mk2QpYatsKicvFVuTAQLBryyccRXMUaGHP', 'regtest').type, 'p2pkh');
    const regtest = bjsAddress.fromOutputScript(hex.decode('0014751e76e8199196d454941c45d1b3a323f1433bd6'), networks.regtest);
    assert.match(regtest, /^bcrt1q/);
    assert.equal(parseAddress(regtest, 'regtest').type, 'p2wpkh');
    const upper = parseAddress(' BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4 ', 'mainnet');
    assert.equal(upper.address, 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4');
  });

  it('says IM_BTC_WRONG_NETWORK for a valid address of another network', () => {
    rejects(() => parseAddress('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'mainnet'), 'IM_BTC_WRONG_NETWORK');
    rejects(() => parseAddress('1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabA', 'regtest'), 'IM_BTC_WRONG_NETWORK');
    rejects(() => parseAddress('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'regtest'), 'IM_BTC_WRONG_NETWORK');
    rejects(() => parseAddress('mk2QpYatsKicvFVuTAQLBryyccRXMUaGHP', 'mainnet'), 'IM_BTC_WRONG_NETWORK');
    const regtest = bjsAddress.fromOutputScript(hex.decode('0014751e76e8199196d454941c45d1b3a323f1433bd6'), networks.regtest);
    rejects(() => parseAddress(regtest, 'testnet'), 'IM_BTC_WRONG_NETWORK');
    assert.throws(() => parseAddress('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx', 'mainnet'),
      (e: unknown) => e instanceof ImError && (e.details as { actual: string }).actual === 'testnet');
  });

  it('says IM_BTC_INVALID_ADDRESS for bad checksums, mixed case, wrong encodings and garbage', () => {
    rejects(() => parseAddress('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => parseAddress('bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => parseAddress('1LqBGSKuX5yYUonjxT5qGfpUsXKYYWeabB', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    // BIP350: a witness v1 program in bech32 rather than bech32m.
    rejects(() => parseAddress('bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    // A future witness version is a valid address but not a payout type we know how to pay.
    rejects(() => parseAddress(bech32m.encode('bc', [2, ...bech32m.toWords(new Uint8Array(32))]), 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => parseAddress('', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => parseAddress('hello world', 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => parseAddress(42 as unknown as string, 'mainnet'), 'IM_BTC_INVALID_ADDRESS');
  });
});

describe('dust limits and output sizes', () => {
  it('match Bitcoin Core\'s dust thresholds and 8 + 1 + script length', () => {
    const expected: Record<AddressType, [bigint, number]> = { p2pkh: [546n, 34], p2sh: [540n, 32], p2wpkh: [294n, 31], p2wsh: [330n, 43], p2tr: [330n, 43] };
    for (const [address, type] of MAINNET) {
      assert.equal(dustLimitSats(type), expected[type][0]);
      assert.equal(outputVbytes(type), expected[type][1]);
      assert.equal(outputVbytes(type), 8 + 1 + parseAddress(address, 'mainnet').script.length);
    }
  });

  it('reports scripts that are not payout types', () => {
    const opReturn = hex.decode('6a0568656c6c6f');
    assert.equal(scriptType(opReturn), undefined);
    assert.equal(scriptToAddress(opReturn, 'mainnet'), 'script:6a0568656c6c6f');
  });
});
