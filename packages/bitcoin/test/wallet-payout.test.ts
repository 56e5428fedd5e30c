import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { base64, hex } from '@scure/base';
import { SigHash, Transaction, p2ms, p2pkh, p2sh, p2tr, p2wpkh, p2wsh } from '@scure/btc-signer';
import { Psbt, Transaction as BjsTransaction, address as bjsAddress, networks } from 'bitcoinjs-lib';
import { ImError } from '@idlemesh/protocol';
import {
  WatchOnlyAccount, buildPayoutBatch, finalizeSignedPsbt, networkParams, psbtTxid, verifyPayoutPsbt,
} from '../src/wallet.js';
import type { ApprovedPayout, PayoutBatch, PayoutRequest, PsbtProblem, Utxo } from '../src/wallet.js';

const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const TESTNET_VERSIONS = { public: 0x043587cf, private: 0x04358394 };
const REGTEST = networkParams('regtest');

const root = HDKey.fromMasterSeed(mnemonicToSeedSync(MNEMONIC), TESTNET_VERSIONS);
const masterFingerprint = root.fingerprint.toString(16).padStart(8, '0');
const tpub = root.derive("m/84'/1'/0'").publicExtendedKey;
const account = WatchOnlyAccount.parse(`[${masterFingerprint}/84h/1h/0h]${tpub}`, 'regtest');
const otherRoot = HDKey.fromMasterSeed(randomBytes(32), TESTNET_VERSIONS);
const otherAccount = WatchOnlyAccount.parse(otherRoot.derive("m/84'/1'/0'").publicExtendedKey, 'regtest');

const key = (): Uint8Array => HDKey.fromMasterSeed(randomBytes(32)).publicKey!;
const foreign = {
  p2wpkh: p2wpkh(key(), REGTEST).address!,
  p2tr: p2tr(key().slice(1), undefined, REGTEST).address!,
  p2pkh: p2pkh(key(), REGTEST).address!,
  p2sh: p2sh(p2wpkh(key()), REGTEST).address!,
  p2wsh: p2wsh(p2ms(1, [key(), key()]), REGTEST).address!,
};

const utxo = (valueSats: bigint, branch: 0 | 1, index: number): Utxo => ({ txid: hex.encode(randomBytes(32)), vout: index % 3, valueSats, branch, index });
const UTXOS: Utxo[] = [utxo(40_000n, 0, 0), utxo(150_000n, 0, 3), utxo(90_000n, 1, 2), utxo(10_000n, 0, 7)];
const PAYOUTS: PayoutRequest[] = [
  { id: 'w-3', address: foreign.p2tr, amountSats: 60_000n },
  { id: 'w-1', address: foreign.p2wpkh, amountSats: 50_000n },
  { id: 'w-2', address: foreign.p2pkh, amountSats: 40_000n },
  { id: 'w-4', address: foreign.p2sh, amountSats: 30_000n },
  { id: 'w-5', address: foreign.p2wsh, amountSats: 25_000n },
];

const build = (overrides: Partial<Parameters<typeof buildPayoutBatch>[0]> = {}): PayoutBatch =>
  buildPayoutBatch({ account, network: 'regtest', utxos: UTXOS, payouts: PAYOUTS, feeRateSatVb: 12.5, changeIndex: 4, ...overrides });

// bitcoinjs-lib wants an ECC library for taproot, which is not installed; its bech32m encoder does not.
function bjsAddressOf(script: Uint8Array, network: typeof networks.regtest): string {
  if (script.length === 34 && script[0] === 0x51 && script[1] === 0x20) return bjsAddress.toBech32(script.slice(2), 1, network.bech32);
  return bjsAddress.fromOutputScript(script, network);
}

const approvedOf = (batch: PayoutBatch): ApprovedPayout[] =>
  batch.outputs.flatMap((o) => (o.payoutId === undefined ? [] : [{ id: o.payoutId, address: o.address, valueSats: o.valueSats }]));

// The treasury signer: private keys from the mnemonic at m/84'/1'/0'/branch/index.
function sign(psbt: string, inputs: readonly Utxo[], only?: number): string {
  const tx = Transaction.fromPSBT(base64.decode(psbt));
  inputs.forEach((u, i) => {
    if (only === undefined || only === i) assert.equal(tx.signIdx(root.derive(`m/84'/1'/0'/${u.branch}/${u.index}`).privateKey!, i), true);
  });
  return base64.encode(tx.toPSBT(0));
}

function tamper(psbt: string, edit: (tx: Transaction) => void): string {
  const tx = Transaction.fromPSBT(base64.decode(psbt));
  edit(tx);
  return base64.encode(tx.toPSBT(0));
}

function mismatch(fn: () => unknown, ...kinds: Array<PsbtProblem['kind']>): PsbtProblem[] {
  let problems: PsbtProblem[] = [];
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImError, String(e));
    assert.equal(e.code, 'IM_BTC_PSBT_MISMATCH', e.message);
    problems = (e.details as { problems: PsbtProblem[] }).problems;
    return true;
  });
  for (const kind of kinds) assert.ok(problems.some((p) => p.kind === kind), `expected a ${kind} problem, got ${JSON.stringify(problems.map((p) => p.kind))}`);
  return problems;
}

function rejects(fn: () => unknown, code: string): ImError {
  let caught: ImError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImError, String(e));
    assert.equal(e.code, code, e.message);
    caught = e;
    return true;
  });
  return caught!;
}

describe('buildPayoutBatch', () => {
  const batch = build();

  it('pays each payout its amount minus its fee share, in id order, with change last', () => {
    assert.deepEqual(batch.outputs.map((o) => o.payoutId), ['w-1', 'w-2', 'w-3', 'w-4', 'w-5', undefined]);
    for (const p of PAYOUTS) {
      const out = batch.outputs.find((o) => o.payoutId === p.id)!;
      assert.equal(out.valueSats, p.amountSats - batch.feeShares[p.id]!);
    }
    const change = batch.outputs.at(-1)!;
    assert.equal(change.change, true);
    assert.equal(change.address, account.change(4).address);
    assert.equal(batch.changeIndex, 4);
    // Largest coins first until Σ amounts (205 000) is covered: 150 000 + 90 000.
    assert.deepEqual(batch.inputs.map((u) => u.valueSats), [150_000n, 90_000n]);
    assert.equal(change.valueSats, 240_000n - 205_000n);
    assert.equal(batch.treasuryFeeSats, 0n);
    const shares = Object.values(batch.feeShares).reduce((a, b) => a + b, 0n);
    assert.equal(shares, batch.feeSats - batch.treasuryFeeSats);
    assert.equal(batch.feeSats, (BigInt(batch.vbytes) * 12_500n + 999n) / 1000n);
    assert.equal(psbtTxid(batch.psbt), batch.txid);
  });

  it('agrees with bitcoinjs-lib on outputs, values, fee and derivations', () => {
    const psbt = Psbt.fromBase64(batch.psbt, { network: networks.regtest });
    assert.equal(psbt.txOutputs.length, batch.outputs.length);
    psbt.txOutputs.forEach((o, i) => {
      assert.equal(bjsAddressOf(o.script, networks.regtest), batch.outputs[i]!.address);
      assert.equal(o.value, batch.outputs[i]!.valueSats);
    });
    const inputSum = psbt.data.inputs.reduce((a, inp) => a + inp.witnessUtxo!.value, 0n);
    const outputSum = psbt.txOutputs.reduce((a, o) => a + o.value, 0n);
    assert.equal(inputSum - outputSum, batch.feeSats);
    psbt.data.inputs.forEach((inp, i) => {
      const u = batch.inputs[i]!;
      assert.equal(hex.encode(psbt.txInputs[i]!.hash.slice().reverse()), u.txid);
      const d = inp.bip32Derivation![0]!;
      assert.equal(hex.encode(d.masterFingerprint), masterFingerprint);
      assert.equal(d.path, `m/84'/1'/0'/${u.branch}/${u.index}`);
      assert.deepEqual(d.pubkey, account.address(u.branch, u.index).publicKey);
      assert.equal(bjsAddressOf(inp.witnessUtxo!.script, networks.regtest), account.address(u.branch, u.index).address);
    });
    const changeDerivation = psbt.data.outputs.at(-1)!.bip32Derivation![0]!;
    assert.equal(changeDerivation.path, "m/84'/1'/0'/1/4");
  });

  it('is signed by the treasury keys, finalizes to the built txid and weighs no more than estimated', () => {
    assert.equal(verifyPayoutPsbt({ psbt: batch.psbt, account, network: 'regtest', approved: approvedOf(batch) }).feeSats, batch.feeSats);
    const signed = sign(batch.psbt, batch.inputs);
    const report = verifyPayoutPsbt({ psbt: signed, account, network: 'regtest', approved: approvedOf(batch), maxFeeSats: batch.feeSats });
    assert.equal(report.txid, batch.txid);
    assert.deepEqual(report.change.map((c) => c.index), [4]);
    const final = finalizeSignedPsbt(signed);
    assert.equal(final.txid, batch.txid);
    const tx = BjsTransaction.fromHex(final.txHex);
    assert.equal(tx.getId(), batch.txid);
    assert.equal(tx.virtualSize(), final.vsize);
    assert.ok(final.vsize <= batch.vbytes && final.vsize >= batch.vbytes - batch.inputs.length, `vsize ${final.vsize} vs estimate ${batch.vbytes}`);
    assert.deepEqual(tx.outs.map((o) => [bjsAddressOf(o.script, networks.regtest), o.value]), batch.outputs.map((o) => [o.address, o.valueSats]));
    tx.ins.forEach((inp) => assert.equal(inp.witness.length, 2));
    // A finalized PSBT has lost its derivations; verification finds the coins by scanning.
    const finalizedPsbt = Transaction.fromPSBT(base64.decode(signed));
    finalizedPsbt.finalize();
    assert.equal(verifyPayoutPsbt({ psbt: base64.encode(finalizedPsbt.toPSBT(0)), account, network: 'regtest', approved: approvedOf(batch) }).txid, batch.txid);
  });

  it('can be signed through its bip32Derivation by the master key alone (what a hardware wallet does)', () => {
    const tx = Transaction.fromPSBT(base64.decode(batch.psbt));
    // scure's HDKey types publicKey as nullable; the signer interface wants it present, which it is here.
    assert.equal(tx.sign(root as unknown as Parameters<Transaction['sign']>[0]), batch.inputs.length);
    assert.equal(finalizeSignedPsbt(base64.encode(tx.toPSBT(0))).txid, batch.txid);
  });

  it('drops change below dust and books the leftover as treasury fee', () => {
    // Coins that exceed the payouts by 200 sats, less than P2WPKH dust (294).
    const utxos = [utxo(100_000n, 0, 1), utxo(50_200n, 1, 0)];
    const payouts = [{ id: 'a', address: foreign.p2wpkh, amountSats: 100_000n }, { id: 'b', address: foreign.p2tr, amountSats: 50_000n }];
    const b = build({ utxos, payouts, feeRateSatVb: 3 });
    assert.equal(b.outputs.some((o) => o.change === true), false);
    assert.equal(b.changeIndex, undefined);
    assert.equal(b.treasuryFeeSats, 200n);
    assert.equal(Object.values(b.feeShares).reduce((x, y) => x + y, 0n), b.feeSats - 200n);
    const tx = Transaction.fromPSBT(base64.decode(b.psbt));
    assert.equal(tx.fee, b.feeSats);
    verifyPayoutPsbt({ psbt: b.psbt, account, network: 'regtest', approved: approvedOf(b) });
  });

  it('refuses what it cannot pay', () => {
    const short = rejects(() => build({ utxos: [utxo(1000n, 0, 0)] }), 'IM_BTC_INSUFFICIENT_UTXOS');
    assert.deepEqual(short.details, { needSats: '205000', haveSats: '1000' });
    rejects(() => build({ utxos: [] }), 'IM_BTC_INSUFFICIENT_UTXOS');
    const dust = rejects(() => build({ payouts: [...PAYOUTS, { id: 'tiny', address: foreign.p2wpkh, amountSats: 600n }] }), 'IM_BTC_BELOW_DUST');
    assert.match(dust.message, /tiny/);
    assert.equal((dust.details as { payouts: Array<{ payoutId: string }> }).payouts[0]!.payoutId, 'tiny');
  });

  it('validates amounts, ids, addresses, fee rate and network', () => {
    const withPayout = (p: Partial<PayoutRequest>): PayoutRequest[] => [{ id: 'x', address: foreign.p2wpkh, amountSats: 10_000n, ...p }];
    rejects(() => build({ payouts: withPayout({ amountSats: 0n }) }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ payouts: withPayout({ amountSats: -5n }) }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ payouts: withPayout({ amountSats: 1.5 as unknown as bigint }) }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ payouts: withPayout({ amountSats: '10000' as unknown as bigint }) }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ payouts: withPayout({ amountSats: 21_000_001n * 100_000_000n }) }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ utxos: [{ ...utxo(5000n, 0, 0), valueSats: 0n }] }), 'IM_BTC_INVALID_AMOUNT');
    rejects(() => build({ payouts: withPayout({ address: 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4' }) }), 'IM_BTC_WRONG_NETWORK');
    rejects(() => build({ payouts: withPayout({ address: 'bcrt1qnotanaddress' }) }), 'IM_BTC_INVALID_ADDRESS');
    rejects(() => build({ payouts: [...withPayout({}), ...withPayout({})] }), 'IM_VALIDATION');
    rejects(() => build({ payouts: [] }), 'IM_VALIDATION');
    for (const feeRateSatVb of [0, 0.5, NaN, Infinity, -1, 20_000]) rejects(() => build({ feeRateSatVb }), 'IM_VALIDATION');
    const u = UTXOS[0]!;
    rejects(() => build({ utxos: [u, { ...u }] }), 'IM_VALIDATION');
    rejects(() => build({ changeIndex: -1 }), 'IM_VALIDATION');
    rejects(() => build({ network: 'testnet' }), 'IM_BTC_WRONG_NETWORK');
  });
});

describe('verifyPayoutPsbt', () => {
  const batch = build();
  const approved = approvedOf(batch);
  const verify = (psbt: string, list: readonly ApprovedPayout[] = approved, maxFeeSats?: bigint): unknown =>
    verifyPayoutPsbt({ psbt, account, network: 'regtest', approved: list, ...(maxFeeSats === undefined ? {} : { maxFeeSats }) });
  const foreignScript = p2wpkh(key()).script;
  const changeOutput = batch.outputs.length - 1;

  it('passes the honest batch and reports its accounting', () => {
    const report = verifyPayoutPsbt({ psbt: batch.psbt, account, network: 'regtest', approved, maxFeeSats: 100_000n });
    assert.equal(report.ok, true);
    assert.equal(report.feeSats, batch.feeSats);
    assert.equal(report.inputsSats, 240_000n);
    assert.equal(report.inputsSats - report.outputsSats, report.feeSats);
    assert.deepEqual(report.outputs, batch.outputs);
  });

  it('an audit anchor: one OP_RETURN output of exactly those bytes, paid for in the shares; anything else is a mismatch', () => {
    const root = new Uint8Array(32).fill(9);
    const anchored = build({ anchor: root });
    const tx = Transaction.fromPSBT(base64.decode(anchored.psbt), { allowUnknownOutputs: true });
    const ret = Array.from({ length: tx.outputsLength }, (_, i) => tx.getOutput(i)).find((o) => o.script?.[0] === 0x6a);
    assert.ok(ret, 'an OP_RETURN output');
    assert.equal(ret.amount, 0n);
    assert.deepEqual(ret.script!.slice(2), root);
    assert.ok(anchored.vbytes > batch.vbytes, 'its bytes are in the fee');
    assert.equal(Object.values(anchored.feeShares).reduce((a, b) => a + b, 0n), anchored.feeSats - anchored.treasuryFeeSats);
    const list = approvedOf(anchored);
    assert.equal(verifyPayoutPsbt({ psbt: anchored.psbt, account, network: 'regtest', approved: list, anchor: root }).ok, true);
    mismatch(() => verifyPayoutPsbt({ psbt: anchored.psbt, account, network: 'regtest', approved: list }), 'unexpected-output');
    mismatch(() => verifyPayoutPsbt({ psbt: anchored.psbt, account, network: 'regtest', approved: list, anchor: new Uint8Array(32).fill(8) }), 'unexpected-output');
    assert.throws(() => build({ anchor: new Uint8Array(81) }), (e: unknown) => e instanceof ImError && e.code === 'IM_VALIDATION');
  });

  it('catches a payout redirected to a foreign address', () => {
    mismatch(() => verify(tamper(batch.psbt, (tx) => tx.updateOutput(0, { script: foreignScript }))), 'unexpected-output', 'missing-payout');
  });

  it('catches a raised amount', () => {
    const problems = mismatch(() => verify(tamper(batch.psbt, (tx) => tx.updateOutput(1, { amount: tx.getOutput(1).amount! + 1000n }))), 'amount-mismatch');
    assert.deepEqual(problems, [{ kind: 'amount-mismatch', id: 'w-2', address: batch.outputs[1]!.address, expectedSats: String(batch.outputs[1]!.valueSats), valueSats: String(batch.outputs[1]!.valueSats + 1000n) }]);
  });

  it('catches an extra output', () => {
    mismatch(() => verify(tamper(batch.psbt, (tx) => tx.addOutput({ script: foreignScript, amount: 1000n }))), 'unexpected-output');
    // Even one paying our own receive branch: change only goes to the change branch.
    mismatch(() => verify(tamper(batch.psbt, (tx) => tx.addOutput({ script: account.receive(0).script, amount: 1000n }))), 'unexpected-output');
  });

  it('catches change sent to a foreign key, even with our derivation left on it', () => {
    const psbt = tamper(batch.psbt, (tx) => tx.updateOutput(changeOutput, { script: foreignScript }));
    assert.ok(Transaction.fromPSBT(base64.decode(psbt)).getOutput(changeOutput).bip32Derivation !== undefined);
    mismatch(() => verify(psbt), 'unexpected-output');
  });

  it('catches an input from a foreign key, with or without a forged derivation', () => {
    const foreignInput = (tx: Transaction, derivation: boolean): void => {
      tx.addInput({
        txid: randomBytes(32), index: 0, witnessUtxo: { script: foreignScript, amount: 5000n },
        ...(derivation ? { bip32Derivation: [[account.receive(9).publicKey, account.derivation(0, 9)]] } : {}),
      });
    };
    mismatch(() => verify(tamper(batch.psbt, (tx) => foreignInput(tx, false))), 'foreign-input');
    mismatch(() => verify(tamper(batch.psbt, (tx) => foreignInput(tx, true))), 'foreign-input');
    mismatch(() => verify(tamper(batch.psbt, (tx) => tx.addInput({ txid: randomBytes(32), index: 0 }))), 'input-missing-utxo');
  });

  it('catches an approved payout the PSBT lacks', () => {
    const extra = { id: 'w-9', address: foreign.p2wpkh, valueSats: 12_345n };
    const problems = mismatch(() => verify(batch.psbt, [...approved, extra]), 'missing-payout');
    assert.deepEqual(problems, [{ kind: 'missing-payout', id: 'w-9', address: foreign.p2wpkh, valueSats: '12345' }]);
  });

  it('catches a sighash that would let the outputs change after signing, and a fee above the limit', () => {
    mismatch(() => verify(tamper(batch.psbt, (tx) => tx.updateInput(0, { sighashType: SigHash.NONE }))), 'input-sighash');
    mismatch(() => verify(batch.psbt, approved, batch.feeSats - 1n), 'fee-too-high');
  });

  it('refuses a PSBT built from another account', () => {
    const theirs = buildPayoutBatch({
      account: otherAccount, network: 'regtest', payouts: PAYOUTS, feeRateSatVb: 12.5, changeIndex: 4,
      utxos: UTXOS.map((u) => ({ ...u, txid: hex.encode(randomBytes(32)) })),
    });
    assert.deepEqual(approvedOf(theirs), approved);
    mismatch(() => verify(theirs.psbt), 'foreign-input', 'unexpected-output');
  });

  it('refuses garbage with IM_BTC_PSBT_INVALID', () => {
    rejects(() => verify('not base64!'), 'IM_BTC_PSBT_INVALID');
    rejects(() => verify(base64.encode(new TextEncoder().encode('psbt but not really'))), 'IM_BTC_PSBT_INVALID');
    rejects(() => psbtTxid(''), 'IM_BTC_PSBT_INVALID');
  });
});

describe('finalizeSignedPsbt', () => {
  const batch = build();

  it('refuses unsigned and partly signed PSBTs, naming the unsigned inputs', () => {
    const unsigned = rejects(() => finalizeSignedPsbt(batch.psbt), 'IM_BTC_PSBT_INVALID');
    assert.deepEqual(unsigned.details, { unsignedInputs: [0, 1] });
    const partly = rejects(() => finalizeSignedPsbt(sign(batch.psbt, batch.inputs, 0)), 'IM_BTC_PSBT_INVALID');
    assert.deepEqual(partly.details, { unsignedInputs: [1] });
    rejects(() => finalizeSignedPsbt('garbage'), 'IM_BTC_PSBT_INVALID');
  });
});
