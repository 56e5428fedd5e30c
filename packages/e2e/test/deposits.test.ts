/**
 * Bitcoin in, end to end: a coordinator process with a watch-only treasury
 * key, a fake Esplora and a fake LND on loopback (shaped after their REST
 * APIs). Deposits credit once after 2 confirmations — across polls, restarts
 * and double-delivered events — and a reorg reverses once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { WatchOnlyAccount } from '@idlemesh/bitcoin';
import { FakeEsplora, FakeLnd } from '@idlemesh/bitcoin/testing';
import { ImError } from '@idlemesh/sdk';
import type { IdlemeshClient } from '@idlemesh/sdk';
import { b64, example, runCli, sleep, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';

const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
// The treasury's regtest account key (BIP84, coin type 1): what the signer would export.
const TESTNET_VERSIONS = { private: 0x04358394, public: 0x043587cf };
const TPUB = HDKey.fromMasterSeed(mnemonicToSeedSync(MNEMONIC), TESTNET_VERSIONS).derive("m/84'/1'/0'").publicExtendedKey;

async function balance(client: IdlemeshClient, account?: string): Promise<{ balance: bigint; available: bigint; frozen: boolean }> {
  const a = (await client.account(account)).account;
  return { balance: BigInt(a.balanceMsat), available: BigInt(a.availableMsat), frozen: a.frozen };
}

async function ledgerOk(client: IdlemeshClient): Promise<void> {
  const check = await client.ledgerCheck();
  assert.deepEqual(check.violations, []);
}

describe('deposits end to end', () => {
  it('on-chain: credited once after 2 confirmations, across polls and a kill -9; a reorg reverses once; spent funds freeze the account', async () => {
    const dir = tempDir('deposits');
    const esplora = await FakeEsplora.start();
    const args = ['--treasury-key', TPUB, '--chain', `esplora:${esplora.url}`, '--chain-poll-ms', '100'];
    let coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args });
    const port = Number(new URL(coord.url).port);
    try {
      const a = await coord.client.depositAddress();
      assert.equal(a.account, 'buyer:anonymous');
      assert.equal(a.address, WatchOnlyAccount.parse(TPUB, 'regtest').receive(0).address, 'BIP84 receive index 0 of the treasury key');
      assert.match(a.address, /^bcrt1q/);
      const b = await coord.client.depositAddress('buyer:other');
      assert.equal(b.index, 1, 'a fresh address per request');

      const txid = esplora.pay(a.address, 50_000n);
      await waitUntil(async () => (await coord.client.deposits()).deposits.some((d) => d.outpoint.startsWith(txid) && d.state === 'seen'));
      esplora.mine(1);
      await sleep(400);
      assert.equal((await balance(coord.client)).balance, 0n, 'one confirmation is not enough');
      esplora.mine(1);
      await waitUntil(async () => (await balance(coord.client)).balance === 50_000_000n);

      // Many polls and a crash later: still credited once.
      await coord.kill9();
      coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, port, args });
      esplora.mine(3);
      await sleep(600);
      assert.equal((await balance(coord.client)).balance, 50_000_000n);

      // A second deposit that vanishes before its 2nd confirmation is never credited.
      const gone = esplora.pay(b.address, 7_000n);
      esplora.mine(1);
      await waitUntil(async () => (await coord.client.deposits()).deposits.some((d) => d.outpoint.startsWith(gone)));
      esplora.reorg(1, { drop: [gone], newBlocks: 3 });
      await sleep(600);
      assert.equal((await balance(coord.client, 'buyer:other')).balance, 0n);
      assert.equal((await coord.client.deposits()).deposits.find((d) => d.outpoint.startsWith(gone))?.state, 'dropped');

      // The buyer spends (an escrow hold), then a deep reorg takes the credited deposit away.
      const mod = await coord.client.uploadModule(example('noop/noop.wasm'));
      await coord.client.submitJob({ module: mod.hash, inputs: [b64('x')], bid: 30_000_000, limits: { fuel: 1_000_000_000 } });
      assert.equal((await balance(coord.client)).available, 50_000_000n - 33_000_000n);
      esplora.reorg(8, { drop: [txid], newBlocks: 9 });
      await waitUntil(async () => (await balance(coord.client)).frozen);
      const after = await balance(coord.client);
      assert.equal(after.balance, 33_000_000n, 'only what was not held could be taken back');
      assert.equal((await coord.client.deposits()).deposits.find((d) => d.outpoint.startsWith(txid))?.state, 'reversed');
      // Reversed once, however often it is polled.
      await sleep(500);
      assert.equal((await balance(coord.client)).balance, 33_000_000n);
      await ledgerOk(coord.client);

      // The backend going away is logged and retried, nothing changes.
      await esplora.goAway();
      await sleep(400);
      await esplora.comeBack();
      assert.equal((await balance(coord.client)).balance, 33_000_000n);
    } finally {
      await coord.stop();
      await esplora.close();
      dir.remove();
    }
  });

  it('lightning: an invoice credits once when settled, even if the node delivers the settle twice', async () => {
    const dir = tempDir('deposits-ln');
    const lnd = await FakeLnd.start();
    lnd.duplicateEvents = true;
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--lightning', `lnd:${lnd.url}`, '--chain-poll-ms', '100'], env: { IDLEMESH_LIGHTNING_AUTH: lnd.macaroonHex } });
    try {
      const inv = await coord.client.lightningDeposit(1234);
      assert.match(inv.bolt11, /^lnbcrt/);
      lnd.settle(inv.paymentHash);
      await waitUntil(async () => (await balance(coord.client)).balance === 1_234_000n);
      await sleep(500);
      assert.equal((await balance(coord.client)).balance, 1_234_000n);
      await ledgerOk(coord.client);
    } finally {
      await coord.stop();
      await lnd.close();
      dir.remove();
    }
  });

  it('bad configuration and input: a mainnet key on regtest stops the coordinator; deposits without a treasury are refused', async () => {
    const dir = tempDir('deposits-bad');
    const zpub = 'zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs';
    const p = runCli('coord', ['coordinator', '--port', '0', '--data-dir', `${dir.path}/c1`, '--treasury-key', zpub]);
    assert.notEqual(await p.wait(), 0);
    assert.match(p.text, /IM_BTC_WRONG_NETWORK/);
    const testnet = await startCoordinatorProc({ dataDir: `${dir.path}/c3`, args: ['--network', 'testnet'] });
    try {
      const e = await testnet.client.devFund({ account: 'buyer:anonymous', sats: 10 }).then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof ImError && e.code === 'IM_DEV_ONLY', String(e));
      assert.equal((await testnet.client.account()).account.balanceMsat, '0');
    } finally {
      await testnet.stop();
    }
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/c2` });
    try {
      const e = await coord.client.depositAddress().then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof ImError && e.code === 'IM_SETTLEMENT_DISABLED', String(e));
      const s = await coord.client.depositAddress('stake:abc').then(() => undefined, (x: unknown) => x);
      assert.ok(s instanceof ImError && (s.code === 'IM_SETTLEMENT_DISABLED' || s.code === 'IM_VALIDATION'));
    } finally {
      await coord.stop();
      dir.remove();
    }
  });
});
