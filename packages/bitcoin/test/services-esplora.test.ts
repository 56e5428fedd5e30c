import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { EsploraBackend, confirmations } from '../src/services.js';
import { FakeEsplora } from './fakes/index.js';

const ADDR = 'bcrt1qdeposit0000000000000000000000000000000';
const OTHER = 'bcrt1qother00000000000000000000000000000000';

function code(err: unknown): string {
  assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
  return err.code;
}

describe('EsploraBackend', () => {
  let fake: FakeEsplora;
  let esplora: EsploraBackend;
  before(async () => {
    fake = await FakeEsplora.start();
    esplora = new EsploraBackend({ baseUrl: fake.url, timeoutMs: 2_000 });
  });
  after(async () => fake.close());

  it('pages an address history of more than 25 confirmed transactions', async () => {
    const txids: string[] = [];
    for (let i = 0; i < 61; i++) {
      txids.push(fake.pay(ADDR, BigInt(1_000 + i)));
      fake.mine(1);
    }
    fake.pay(OTHER, 5n);
    txids.push(fake.pay(ADDR, 777n)); // one in the mempool
    fake.requests.length = 0;
    const txs = await esplora.addressTxs(ADDR);
    assert.equal(txs.length, 62);
    assert.deepEqual(new Set(txs.map((t) => t.txid)), new Set(txids));
    // /txs, then /txs/chain/<25th>, /txs/chain/<50th> (11 left: last page).
    assert.equal(fake.requests.filter((r) => r.includes('/txs/chain/')).length, 2);
    const first = txs.find((t) => t.txid === txids[0]);
    assert.ok(first !== undefined && first.confirmed);
    assert.equal(first.outputs[0]?.valueSats, 1_000n);
    assert.equal(first.outputs[0]?.address, ADDR);
    const pending = txs.find((t) => t.txid === txids[61]);
    assert.equal(pending?.confirmed, false);
    assert.equal(pending?.blockHeight, undefined);
  });

  it('stops paging when a page is short, even at exactly 25', async () => {
    const a = 'bcrt1qexactly25000000000000000000000000000000';
    for (let i = 0; i < 25; i++) fake.pay(a, 1n);
    fake.mine(1);
    fake.requests.length = 0;
    assert.equal((await esplora.addressTxs(a)).length, 25);
    assert.equal(fake.requests.length, 2); // /txs then one empty /txs/chain page
  });

  it('reads the tip, tx statuses (confirmed, mempool, unknown) and utxos', async () => {
    const tip = await esplora.tipHeight();
    assert.equal(tip, fake.chain.tip);
    const mined = fake.pay(ADDR, 5_000n);
    const [hash] = fake.mine(1);
    const waiting = fake.pay(ADDR, 6_000n);
    const s = await esplora.txStatus(mined);
    assert.deepEqual(s, { found: true, confirmed: true, blockHeight: tip + 1, blockHash: hash });
    assert.equal(confirmations(s, tip + 3), 3);
    assert.deepEqual(await esplora.txStatus(waiting), { found: true, confirmed: false });
    assert.deepEqual(await esplora.txStatus('ab'.repeat(32)), { found: false, confirmed: false });
    const utxos = await esplora.utxos(ADDR);
    assert.ok(utxos.some((u) => u.txid === mined && u.valueSats === 5_000n && u.confirmed && u.blockHeight === tip + 1));
    assert.ok(utxos.some((u) => u.txid === waiting && !u.confirmed));
    await assert.rejects(esplora.txStatus('not-a-txid'), (e) => code(e) === 'IM_BAD_REQUEST');
  });

  it('picks the smallest target ≥ the one asked for, else the lowest rate, never below 1', async () => {
    fake.chain.fees = { '1': 25.5, '3': 12.1, '6': 8, '144': 1.2 };
    assert.equal(await esplora.feeRate(1), 25.5);
    assert.equal(await esplora.feeRate(2), 12.1);
    assert.equal(await esplora.feeRate(7), 1.2);
    assert.equal(await esplora.feeRate(1008), 1.2);
    fake.chain.fees = { '2': 0.4 };
    assert.equal(await esplora.feeRate(2), 1);
    fake.chain.fees = {};
    await assert.rejects(esplora.feeRate(2), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE' && (e as ImError).details !== undefined);
  });

  it('broadcasts, and reports a refused transaction with the node message', async () => {
    const txid = await esplora.broadcast('0200000001deadbeef');
    assert.match(txid, /^[0-9a-f]{64}$/);
    assert.ok(fake.chain.mempool.includes(txid));
    fake.rejectBroadcast = 'min relay fee not met, 100 < 141';
    await assert.rejects(esplora.broadcast('0200000001deadbeef'), (e) => {
      assert.equal(code(e), 'IM_BTC_CHAIN_BAD_RESPONSE');
      const d = (e as ImError).details as { rejected: boolean; message: string };
      assert.equal(d.rejected, true);
      assert.match(d.message, /min relay fee not met/);
      return true;
    });
  });

  it('maps 5xx and refused connections to IM_BTC_CHAIN_UNAVAILABLE and junk to IM_BTC_CHAIN_BAD_RESPONSE', async () => {
    fake.failWith = 503;
    await assert.rejects(esplora.tipHeight(), (e) => code(e) === 'IM_BTC_CHAIN_UNAVAILABLE' && (e as ImError).retryable);
    fake.failWith = undefined;
    fake.corrupt = true;
    await assert.rejects(esplora.addressTxs(ADDR), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE');
    await assert.rejects(esplora.tipHeight(), (e) => code(e) === 'IM_BTC_CHAIN_BAD_RESPONSE');
    fake.corrupt = false;
    await fake.goAway();
    await assert.rejects(esplora.addressTxs(ADDR), (e) => code(e) === 'IM_BTC_CHAIN_UNAVAILABLE');
    await fake.comeBack();
    assert.equal(await esplora.tipHeight(), fake.chain.tip);
  });
});
