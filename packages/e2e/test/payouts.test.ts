/**
 * Bitcoin out, end to end: withdrawals move to payouts-in-flight at once; an
 * on-chain batch is one unsigned PSBT that the treasury's signer (here: the
 * test, holding the mnemonic) signs; a tampered or foreign PSBT is refused and
 * nothing is broadcast; kill -9 mid-batch sends nothing twice; Lightning
 * payouts return funds only on a final failure.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { Transaction } from '@scure/btc-signer';
import { base64 } from '@scure/base';
import { WatchOnlyAccount } from '@idlemesh/bitcoin';
import { FakeEsplora, FakeLnd } from '@idlemesh/bitcoin/testing';
import { ImError } from '@idlemesh/sdk';
import type { IdlemeshClient } from '@idlemesh/sdk';
import { runCli, sleep, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';

const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const TESTNET_VERSIONS = { private: 0x04358394, public: 0x043587cf };
const MASTER = HDKey.fromMasterSeed(mnemonicToSeedSync(MNEMONIC), TESTNET_VERSIONS);
const TREASURY = MASTER.derive("m/84'/1'/0'");
const TPUB = TREASURY.publicExtendedKey;
// Somebody else's wallet: where withdrawals go.
const OTHER = WatchOnlyAccount.parse(MASTER.derive("m/84'/1'/7'").publicExtendedKey, 'regtest');

async function code(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'ok', (e: unknown) => (e instanceof ImError ? e.code : String(e)));
}

async function available(client: IdlemeshClient, account?: string): Promise<bigint> {
  return BigInt((await client.account(account)).account.availableMsat);
}

async function ledgerOk(client: IdlemeshClient): Promise<void> {
  assert.deepEqual((await client.ledgerCheck()).violations, []);
}

/** What the treasury signer does: sign every input it owns (the account key, by the PSBT's derivation paths). */
function sign(psbtB64: string): string {
  const tx = Transaction.fromPSBT(base64.decode(psbtB64));
  const signed = tx.sign(TREASURY as unknown as Parameters<Transaction['sign']>[0]);
  assert.equal(signed, tx.inputsLength, 'every input is the treasury\'s');
  return base64.encode(tx.toPSBT());
}

describe('payouts end to end', () => {
  it('on chain: bad input moves nothing; a batch PSBT, a tampered copy refused, kill -9 twice, confirmed once', async () => {
    const dir = tempDir('payouts');
    const esplora = await FakeEsplora.start();
    const args = ['--treasury-key', TPUB, '--chain', `esplora:${esplora.url}`, '--chain-poll-ms', '100', '--anchor-audit'];
    let coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args });
    const port = Number(new URL(coord.url).port);
    try {
      const dep = await coord.client.depositAddress();
      esplora.pay(dep.address, 200_000n);
      esplora.mine(2);
      await waitUntil(async () => (await available(coord.client)) === 200_000_000n);

      const to1 = OTHER.receive(0).address;
      const to2 = OTHER.receive(1).address;
      assert.equal(await code(coord.client.withdraw({ sats: 50_000, address: 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu' })), 'IM_BTC_WRONG_NETWORK');
      assert.equal(await code(coord.client.withdraw({ sats: 50_000, address: 'bcrt1qnotanaddress' })), 'IM_BTC_INVALID_ADDRESS');
      assert.equal(await code(coord.client.withdraw({ sats: 500, address: to1 })), 'IM_BTC_BELOW_DUST');
      assert.equal(await code(coord.client.withdraw({ sats: -5, address: to1 })), 'IM_VALIDATION');
      assert.equal(await code(coord.client.withdraw({ sats: 1.5, address: to1 })), 'IM_VALIDATION');
      assert.equal(await code(coord.client.withdraw({ sats: 300_000, address: to1 })), 'IM_INSUFFICIENT_BALANCE');
      assert.equal(await code(coord.client.withdraw({ sats: 50_000, address: to1, account: `operator:${'a'.repeat(64)}` })), 'IM_UNAUTHORIZED');
      assert.equal(await available(coord.client), 200_000_000n, 'nothing moved');
      assert.equal((await coord.client.withdrawals()).length, 0);

      const w1 = await coord.client.withdraw({ sats: 50_000, address: to1, idempotencyKey: 'w1' });
      assert.equal((await coord.client.withdraw({ sats: 50_000, address: to1, idempotencyKey: 'w1' })).id, w1.id, 'idempotent');
      await coord.client.withdraw({ sats: 30_000, address: to2 });
      assert.equal(await available(coord.client), 120_000_000n);
      assert.equal(await available(coord.client, 'payouts-in-flight'), 80_000_000n);

      const batch = await coord.client.buildPayoutBatch();
      assert.equal(batch.state, 'awaiting-signature');
      assert.equal(batch.approved.length, 2);
      const paid = batch.approved.reduce((s, a) => s + BigInt(a.valueSats), 0n);
      assert.equal(paid + BigInt(batch.feeSats) - BigInt(batch.treasuryFeeSats), 80_000n, 'withdrawers pay the fee out of their amounts');

      // A crash after building: the batch and its reservation survive.
      await coord.kill9();
      coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, port, args });
      assert.equal((await coord.client.payoutBatch(batch.id)).state, 'awaiting-signature');

      // Tampered: one output raised. Unsigned: not finalizable. Both refused, nothing broadcast.
      const tampered = Transaction.fromPSBT(base64.decode(batch.psbt));
      tampered.updateOutput(0, { amount: (tampered.getOutput(0).amount ?? 0n) + 1_000n });
      const tamperedB64 = base64.encode(tampered.toPSBT());
      assert.equal(await code(coord.client.importSignedPsbt(batch.id, sign(tamperedB64))), 'IM_BTC_PSBT_MISMATCH');
      assert.equal(await code(coord.client.importSignedPsbt(batch.id, batch.psbt)), 'IM_BTC_PSBT_INVALID');
      assert.equal(await code(coord.client.importSignedPsbt(batch.id, 'bm90IGEgcHNidA==')), 'IM_BTC_PSBT_INVALID');
      assert.equal(esplora.chain.broadcasts.length, 0);

      // The signer's own check, on its machine, against what the coordinator published.
      writeFileSync(`${dir.path}/good.psbt`, batch.psbt);
      writeFileSync(`${dir.path}/bad.psbt`, tamperedB64);
      // The signer pinned the coordinator's payout key once, out of band.
      const pinned = ((await (await fetch(`${coord.url}/v1/payouts/key`)).json()) as { publicKey: string }).publicKey;
      assert.equal(batch.approval?.publicKey, pinned);
      const verify = async (file: string, key = pinned): Promise<{ code: number | null; text: string }> => {
        const p = runCli('verify', ['treasury', 'verify-psbt', file, '--batch', batch.id, '--treasury-key', TPUB, '--network', 'regtest', '--coordinator', coord.url, '--coordinator-key', key, '--json']);
        return { code: await p.wait(), text: p.text };
      };
      const good = await verify(`${dir.path}/good.psbt`);
      assert.equal(good.code, 0, good.text);
      const bad = await verify(`${dir.path}/bad.psbt`);
      assert.equal(bad.code, 1);
      assert.match(bad.text, /IM_BTC_PSBT_MISMATCH/);
      const impostor = await verify(`${dir.path}/good.psbt`, 'ab'.repeat(32));
      assert.equal(impostor.code, 1);
      assert.match(impostor.text, /IM_BAD_SIGNATURE/);

      const imported = await coord.client.importSignedPsbt(batch.id, sign(batch.psbt));
      assert.equal(imported.state, 'broadcast');
      assert.equal(esplora.chain.broadcasts.length, 1);
      // Imported again (a retry): nothing new is sent, nor by the sweep running every 100 ms beside it.
      await coord.client.importSignedPsbt(batch.id, sign(batch.psbt));
      await sleep(300);
      assert.equal(esplora.chain.broadcasts.length, 1, 'the import and the sweep did not both send it');
      // A crash before confirmation: after restart it completes once.
      await coord.kill9();
      coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, port, args });
      esplora.mine(2);
      await waitUntil(async () => (await coord.client.payoutBatch(batch.id)).state === 'confirmed');
      await sleep(400);
      assert.deepEqual(new Set(esplora.chain.broadcasts).size, 1, 'one transaction, however often it was sent');
      const ws = await coord.client.withdrawals();
      assert.deepEqual(ws.map((w) => w.state).sort(), ['completed', 'completed']);
      assert.equal(await available(coord.client, 'payouts-in-flight'), 0n);
      assert.equal(await available(coord.client), 120_000_000n);
      const onChain = esplora.chain.chainTx(batch.txid).outputs;
      // The batch anchors the audit log: its OP_RETURN carries a signed checkpoint's root.
      assert.ok(batch.anchor, 'anchored');
      assert.ok(onChain.some((o) => o.address === `script:6a20${batch.anchor!.root}` && o.valueSats === 0n), 'the OP_RETURN is on chain');
      const cpText = await (await fetch(`${coord.url}/v1/audit/checkpoint?size=${batch.anchor!.size}`)).text();
      assert.match(cpText, new RegExp(`\n${batch.anchor!.size}\n${Buffer.from(batch.anchor!.root, 'hex').toString('base64').replace(/[+/]/g, (c) => `\\${c}`)}\n`));
      for (const a of batch.approved) assert.ok(onChain.some((o) => o.address === a.address && o.valueSats === BigInt(a.valueSats)), `${a.address} paid`);

      // A batch the treasury refuses: the funds return.
      await coord.client.withdraw({ sats: 20_000, address: to1 });
      const second = await coord.client.buildPayoutBatch();
      assert.equal(await available(coord.client), 100_000_000n);
      const rejected = await coord.client.rejectPayoutBatch(second.id, 'signer refused');
      assert.equal(rejected.state, 'rejected');
      assert.equal(await available(coord.client), 120_000_000n);
      assert.equal(await code(coord.client.importSignedPsbt(second.id, sign(second.psbt))), 'IM_WITHDRAWAL_STATE');
      await ledgerOk(coord.client);
    } finally {
      await coord.stop();
      await esplora.close();
      dir.remove();
    }
  });

  it('lightning: paid with the fee used, refunded only on a final failure, in-flight reconciled not retried', async () => {
    const dir = tempDir('payouts-ln');
    const lnd = await FakeLnd.start();
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--lightning', `lnd:${lnd.url}`, '--chain-poll-ms', '100'], env: { IDLEMESH_LIGHTNING_AUTH: lnd.macaroonHex } });
    try {
      await coord.client.devFund({ account: 'buyer:anonymous', sats: 100_000 });
      assert.equal(await code(coord.client.withdraw({ invoice: 'lnbcrt1notaninvoice' })), 'IM_LN_INVALID_INVOICE');
      const mainnet = 'lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh';
      assert.equal(await code(coord.client.withdraw({ invoice: mainnet })), 'IM_BTC_WRONG_NETWORK');
      assert.equal(await available(coord.client), 100_000_000n);

      lnd.payOutcome = 'succeed';
      const ok = lnd.foreignInvoice(20_000_000n);
      const w = await coord.client.withdraw({ invoice: ok.bolt11 });
      await waitUntil(async () => (await coord.client.withdrawals()).find((x) => x.id === w.id)?.state === 'completed');
      assert.equal(await available(coord.client), 100_000_000n - 20_000_000n - lnd.feeMsat, 'the amount and the routing fee actually paid');
      assert.equal(await code(coord.client.withdraw({ invoice: ok.bolt11 })), 'IM_CONFLICT');

      lnd.payOutcome = 'fail';
      const w2 = await coord.client.withdraw({ invoice: lnd.foreignInvoice(10_000_000n).bolt11 });
      await waitUntil(async () => (await coord.client.withdrawals()).find((x) => x.id === w2.id)?.state === 'failed');
      assert.equal(await available(coord.client), 100_000_000n - 20_000_000n - lnd.feeMsat);

      lnd.payOutcome = 'inflight';
      const hanging = lnd.foreignInvoice(5_000_000n);
      const w3 = await coord.client.withdraw({ invoice: hanging.bolt11 });
      await waitUntil(async () => (await coord.client.withdrawals()).find((x) => x.id === w3.id)?.state === 'paying');
      await sleep(600);
      assert.equal((await coord.client.withdrawals()).find((x) => x.id === w3.id)?.state, 'paying', 'unknown stays in flight');
      lnd.resolve(hanging.paymentHash, 'succeed');
      await waitUntil(async () => (await coord.client.withdrawals()).find((x) => x.id === w3.id)?.state === 'completed');
      assert.equal(await available(coord.client), 100_000_000n - 25_000_000n - 2n * lnd.feeMsat);
      assert.equal(await available(coord.client, 'payouts-in-flight'), 0n);
      await ledgerOk(coord.client);
    } finally {
      await coord.stop();
      await lnd.close();
      dir.remove();
    }
  });
});
