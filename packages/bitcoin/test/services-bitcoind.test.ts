import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { BitcoindBackend, DepositWatcher } from '../src/services.js';
import { FakeBitcoind, MemoryDepositStore } from './fakes/index.js';

const ADDR = 'bcrt1qwatched00000000000000000000000000000000';
const DESC = `addr(${ADDR})#8rxv9c4k`;

function code(err: unknown): string {
  assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
  return err.code;
}

describe('BitcoindBackend', () => {
  let fake: FakeBitcoind;
  let rpc: BitcoindBackend;
  before(async () => {
    fake = await FakeBitcoind.start({ user: 'rpc', password: 'pw', wallet: 'deposits' });
    rpc = new BitcoindBackend({ url: fake.url, username: 'rpc', password: 'pw', wallet: 'deposits', timeoutMs: 2_000 });
    fake.chain.mine(3);
  });
  after(async () => fake.close());

  it('imports descriptors into the watch-only wallet and refuses ones without checksum', async () => {
    await rpc.importDescriptors([DESC]);
    assert.ok(fake.watched.has(ADDR));
    await assert.rejects(rpc.importDescriptors([`addr(${ADDR})`]), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE' && (e as ImError).details !== undefined);
  });

  it('lists the address history from the wallet, with exact sat amounts and heights', async () => {
    const t1 = fake.chain.pay(ADDR, 123_456_789n);
    fake.chain.mine(2);
    const t2 = fake.chain.pay(ADDR, 2_100_000_000_000_000n - 1n); // 20999999.99999999 BTC survives the float
    fake.chain.pay('bcrt1qnotwatched', 5n);
    assert.equal(await rpc.tipHeight(), fake.chain.tip);
    const txs = await rpc.addressTxs(ADDR);
    const a = txs.find((t) => t.txid === t1);
    assert.deepEqual(a?.outputs, [{ vout: 0, address: ADDR, valueSats: 123_456_789n }]);
    assert.equal(a?.confirmed, true);
    assert.equal(a?.blockHeight, fake.chain.tip - 1);
    const b = txs.find((t) => t.txid === t2);
    assert.equal(b?.confirmed, false);
    assert.equal(b?.outputs[0]?.valueSats, 2_100_000_000_000_000n - 1n);
    assert.equal(txs.length, 2);
  });

  it('answers tx statuses from the wallet, the mempool, or not at all', async () => {
    const mined = fake.chain.pay(ADDR, 1_000n);
    const [hash] = fake.chain.mine(1);
    assert.deepEqual(await rpc.txStatus(mined), { found: true, confirmed: true, blockHeight: fake.chain.tip, blockHash: hash });
    const foreign = fake.chain.pay('bcrt1qsomeoneelse', 1n);
    assert.deepEqual(await rpc.txStatus(foreign), { found: true, confirmed: false });
    assert.deepEqual(await rpc.txStatus('cd'.repeat(32)), { found: false, confirmed: false });
    const gone = fake.chain.pay(ADDR, 2_000n);
    fake.chain.vanish(gone);
    assert.deepEqual(await rpc.txStatus(gone), { found: false, confirmed: false });
  });

  it('lists utxos, converts estimatesmartfee to sat/vB and broadcasts', async () => {
    const utxos = await rpc.utxos(ADDR);
    assert.ok(utxos.some((u) => u.valueSats === 123_456_789n && u.confirmed && u.blockHeight !== undefined));
    fake.chain.fees = { '2': 15.5, '6': 4.25 };
    assert.equal(await rpc.feeRate(3), 4.25);
    assert.equal(await rpc.feeRate(1), 15.5);
    fake.chain.fees = {};
    await assert.rejects(rpc.feeRate(6), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE');
    const txid = await rpc.broadcast('0100000000');
    assert.ok(fake.chain.mempool.includes(txid));
    fake.rejectBroadcast = 'insufficient fee';
    await assert.rejects(rpc.broadcast('0100000000'), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE' && (e as ImError & { details: { rejected: boolean } }).details.rejected);
  });

  it('drives the deposit watcher', async () => {
    const store = new MemoryDepositStore();
    const w = new DepositWatcher({ backend: rpc, store, addresses: () => [ADDR], minConf: 2 });
    const txid = fake.chain.pay(ADDR, 77_000n);
    await w.pollOnce();
    fake.chain.mine(1);
    await w.pollOnce();
    assert.equal(store.count('credit', `${txid}:0`), 0);
    fake.chain.mine(1);
    await w.pollOnce();
    await w.pollOnce();
    assert.equal(store.count('credit', `${txid}:0`), 1);
  });

  it('reports wrong credentials and a missing wallet as bad responses, a dead node as unavailable', async () => {
    const wrong = new BitcoindBackend({ url: fake.url, username: 'rpc', password: 'nope', wallet: 'deposits', timeoutMs: 2_000 });
    await assert.rejects(wrong.tipHeight(), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE');
    const noWallet = new BitcoindBackend({ url: fake.url, cookie: 'rpc:pw', wallet: 'other', timeoutMs: 2_000 });
    await assert.rejects(noWallet.utxos(ADDR), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE');
    await fake.server.goAway();
    await assert.rejects(rpc.tipHeight(), (e) => code(e) === 'IM_BTC_CHAIN_UNAVAILABLE');
    await fake.server.comeBack();
  });
});
