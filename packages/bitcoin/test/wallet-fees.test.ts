import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { base64, hex } from '@scure/base';
import { Transaction, p2pk, p2pkh, p2sh, p2tr, p2wpkh, p2wsh } from '@scure/btc-signer';
import { ImError } from '@idlemesh/protocol';
import {
  WatchOnlyAccount, buildPayoutBatch, dustLimitSats, feeForVbytes, feeRateSatPerKvb, networkParams, outputVbytes,
  parseAddress, payoutTxVbytes, splitFee, verifyPayoutPsbt,
} from '../src/wallet.js';
import type { PayoutBatch, PayoutRequest, Utxo } from '../src/wallet.js';

const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const REGTEST = networkParams('regtest');
const tpub = HDKey.fromMasterSeed(mnemonicToSeedSync(MNEMONIC), { public: 0x043587cf, private: 0x04358394 }).derive("m/84'/1'/0'").publicExtendedKey;
const account = WatchOnlyAccount.parse(tpub, 'regtest');

// Fixed foreign keys so the property's counterexamples replay.
const pub = (n: number): Uint8Array => HDKey.fromMasterSeed(new Uint8Array(32).fill(n)).publicKey!;
const DESTINATIONS = [
  p2wpkh(pub(1), REGTEST).address!,
  p2tr(pub(2).slice(1), undefined, REGTEST).address!,
  p2pkh(pub(3), REGTEST).address!,
  p2sh(p2wpkh(pub(4)), REGTEST).address!,
  p2wsh(p2pk(pub(5)), REGTEST).address!,
];

describe('fee arithmetic', () => {
  it('estimates the classic 1-in 2-out P2WPKH transaction at 141 vB', () => {
    assert.equal(payoutTxVbytes(1, [22, 22]), 141);
    assert.equal(payoutTxVbytes(2, [22]), 178); // 10.5 overhead + 2 × 68 + 31 = 177.5, rounded up
  });

  it('rounds the fee up and keeps rates to 0.001 sat/vB', () => {
    assert.equal(feeRateSatPerKvb(1), 1000n);
    assert.equal(feeRateSatPerKvb(12.5), 12_500n);
    assert.equal(feeRateSatPerKvb(1.1), 1100n);
    assert.equal(feeForVbytes(100, 1100n), 110n); // not 111, which 100 × 1.1 in floating point would give
    assert.equal(feeForVbytes(141, 1500n), 212n);
  });

  it('works the example in docs/bitcoin-wallet.md', () => {
    // 2 inputs; payouts a (p2wpkh), b (p2tr), c (p2pkh); change; 10 sat/vB.
    const vbytes = payoutTxVbytes(2, [22, 34, 25, 22]);
    assert.equal(vbytes, 286);
    const fee = feeForVbytes(vbytes, 10_000n);
    assert.equal(fee, 2860n);
    const shares = splitFee(fee, [outputVbytes('p2wpkh'), outputVbytes('p2tr'), outputVbytes('p2pkh')], 10_000n);
    assert.deepEqual(shares, [904n, 1023n, 933n]);
  });

  it('never leaves a negative remainder at fractional rates with many outputs', () => {
    const many = new Array<number>(200).fill(31);
    const rate = feeRateSatPerKvb(1.001);
    const fee = feeForVbytes(payoutTxVbytes(1, many.map(() => 22)), rate);
    const shares = splitFee(fee, many, rate);
    assert.equal(shares.reduce((a, b) => a + b, 0n), fee);
    assert.ok(Math.max(...shares.map(Number)) - Math.min(...shares.map(Number)) <= 1);
  });
});

describe('buildPayoutBatch properties', () => {
  const arbUtxo = fc.record({
    txid: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hex.encode(b)),
    vout: fc.nat({ max: 20 }),
    valueSats: fc.bigInt({ min: 1n, max: 3_000_000n }),
    branch: fc.constantFrom(0 as const, 1 as const),
    index: fc.nat({ max: 30 }),
  });
  const arbPayout = fc.record({
    address: fc.constantFrom(...DESTINATIONS),
    amountSats: fc.bigInt({ min: 1n, max: 2_000_000n }),
  });
  const arbInput = fc.record({
    utxos: fc.uniqueArray(arbUtxo, { maxLength: 8, selector: (u) => `${u.txid}:${u.vout}` }),
    payouts: fc.array(arbPayout, { minLength: 1, maxLength: 8 }),
    feeRateSatVb: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1000, max: 50_000 }).map((m) => m / 1000)),
    changeIndex: fc.nat({ max: 50 }),
  });

  it('either refuses clearly or balances to the sat: outputs + fee = inputs, shares = the rate fee, payouts = amount − share ≥ dust', () => {
    let built = 0;
    fc.assert(fc.property(arbInput, ({ utxos, payouts: raw, feeRateSatVb, changeIndex }) => {
      const payouts: PayoutRequest[] = raw.map((p, i) => ({ id: `p${String(i).padStart(2, '0')}`, ...p }));
      const args = { account, network: 'regtest' as const, utxos: utxos as Utxo[], payouts, feeRateSatVb, changeIndex };
      let batch: PayoutBatch;
      try {
        batch = buildPayoutBatch(args);
      } catch (e) {
        assert.ok(e instanceof ImError, String(e));
        const need = payouts.reduce((a, p) => a + p.amountSats, 0n);
        const have = utxos.reduce((a, u) => a + u.valueSats, 0n);
        if (e.code === 'IM_BTC_INSUFFICIENT_UTXOS') {
          assert.ok(have < need);
        } else {
          assert.equal(e.code, 'IM_BTC_BELOW_DUST');
          const short = (e.details as { payouts: Array<{ amountSats: string; feeShareSats: string; dustLimitSats: string }> }).payouts;
          assert.ok(short.length > 0);
          for (const s of short) assert.ok(BigInt(s.amountSats) - BigInt(s.feeShareSats) < BigInt(s.dustLimitSats));
        }
        return;
      }
      built++;
      const inSum = batch.inputs.reduce((a, u) => a + u.valueSats, 0n);
      const outSum = batch.outputs.reduce((a, o) => a + o.valueSats, 0n);
      assert.equal(outSum + batch.feeSats, inSum);
      const rateFee = feeForVbytes(batch.vbytes, feeRateSatPerKvb(feeRateSatVb));
      assert.equal(Object.values(batch.feeShares).reduce((a, b) => a + b, 0n), rateFee);
      assert.equal(batch.feeSats - batch.treasuryFeeSats, rateFee);
      assert.ok(batch.treasuryFeeSats >= 0n && batch.treasuryFeeSats < 294n);
      assert.equal(batch.treasuryFeeSats > 0n, batch.outputs.every((o) => o.change !== true) && inSum > payouts.reduce((a, p) => a + p.amountSats, 0n));
      for (const p of payouts) {
        const out = batch.outputs.find((o) => o.payoutId === p.id);
        assert.ok(out !== undefined);
        assert.equal(out.valueSats, p.amountSats - batch.feeShares[p.id]!);
        assert.ok(out.valueSats >= dustLimitSats(parseAddress(p.address, 'regtest').type));
      }
      // Each share covers at least the payout's own output at the rate.
      for (const p of payouts) {
        const own = (BigInt(outputVbytes(parseAddress(p.address, 'regtest').type)) * feeRateSatPerKvb(feeRateSatVb)) / 1000n;
        assert.ok(batch.feeShares[p.id]! >= own);
      }
      const tx = Transaction.fromPSBT(base64.decode(batch.psbt));
      assert.equal(tx.fee, batch.feeSats);
      verifyPayoutPsbt({
        psbt: batch.psbt, account, network: 'regtest',
        approved: batch.outputs.flatMap((o) => (o.payoutId === undefined ? [] : [{ id: o.payoutId, address: o.address, valueSats: o.valueSats }])),
        maxFeeSats: batch.feeSats,
      });
    }), { numRuns: 200 });
    assert.ok(built > 20, `only ${built} of 200 random batches were buildable; the generator needs rebalancing`);
  });
});
