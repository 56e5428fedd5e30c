import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { DepositWatcher, EsploraBackend, reconcileDeposits, statusesNeeded } from '../src/services.js';
import type { DepositRecord } from '../src/services.js';
import { FakeEsplora, MemoryDepositStore } from './fakes/index.js';

const A = 'bcrt1qalice000000000000000000000000000000000';
const B = 'bcrt1qbob0000000000000000000000000000000000';

describe('DepositWatcher over Esplora', () => {
  let fake: FakeEsplora;
  let store: MemoryDepositStore;
  let watcher: DepositWatcher;
  const newWatcher = (): DepositWatcher => new DepositWatcher({
    backend: new EsploraBackend({ baseUrl: fake.url, timeoutMs: 2_000 }), store, addresses: () => [A, B], minConf: 2,
  });
  beforeEach(async () => {
    fake = await FakeEsplora.start();
    fake.mine(5);
    store = new MemoryDepositStore();
    watcher = newWatcher();
  });
  afterEach(async () => fake.close());

  it('credits a deposit once, after 2 confirmations, however often it polls and across a restart', async () => {
    const txid = fake.pay(A, 50_000n);
    const op = `${txid}:0`;
    await watcher.pollOnce();
    assert.equal(store.records.get(op)?.state, 'seen');
    fake.mine(1);
    await watcher.pollOnce();
    assert.equal(store.count('credit'), 0, 'one confirmation is not enough');
    assert.equal(store.records.get(op)?.confirmations, 1);
    fake.mine(1);
    const r = await watcher.pollOnce();
    assert.deepEqual(r.actions, [{ type: 'credit', outpoint: op, address: A, valueSats: 50_000n }]);
    for (let i = 0; i < 3; i++) await watcher.pollOnce();
    watcher = newWatcher(); // restart: state comes back from the store
    fake.mine(3);
    await watcher.pollOnce();
    await watcher.pollOnce();
    assert.equal(store.count('credit', op), 1);
    assert.equal(store.records.get(op)?.state, 'credited');
    assert.equal(store.records.get(op)?.confirmations, 5);
  });

  it('never credits a deposit reorged out before minConf, and credits it once if it comes back', async () => {
    const txid = fake.pay(A, 10_000n);
    const op = `${txid}:0`;
    fake.mine(1);
    await watcher.pollOnce();
    fake.reorg(1, { drop: [txid] });
    fake.mine(2);
    await watcher.pollOnce();
    assert.equal(store.records.get(op)?.state, 'dropped');
    assert.equal(store.count('credit'), 0);
    fake.chain.addTx([{ address: A, valueSats: 10_000n }], txid); // rebroadcast
    fake.mine(2);
    await watcher.pollOnce();
    await watcher.pollOnce();
    assert.equal(store.count('credit', op), 1);
    assert.equal(store.net(op), 1);
  });

  it('reverses exactly once a credited deposit that is reorged out', async () => {
    const txid = fake.pay(B, 20_000n);
    const op = `${txid}:0`;
    fake.mine(2);
    await watcher.pollOnce();
    assert.equal(store.count('credit', op), 1);
    fake.reorg(2, { drop: [txid] });
    await watcher.pollOnce();
    await watcher.pollOnce();
    fake.mine(1);
    await watcher.pollOnce();
    assert.equal(store.count('reverse', op), 1);
    assert.equal(store.net(op), 0);
    assert.equal(store.records.get(op)?.state, 'reversed');
  });

  it('keeps the credit when the deposit is re-mined in another block', async () => {
    const txid = fake.pay(A, 30_000n);
    const op = `${txid}:0`;
    fake.mine(3);
    await watcher.pollOnce();
    const before = store.records.get(op)?.blockHash;
    fake.reorg(3); // same tx, new blocks
    await watcher.pollOnce();
    const after = store.records.get(op);
    assert.notEqual(after?.blockHash, before);
    assert.equal(after?.state, 'credited');
    assert.equal(store.count('reverse'), 0);
    assert.equal(store.count('credit', op), 1);
  });

  it('credits again, by a new action, a reversed deposit that confirms again', async () => {
    const txid = fake.pay(A, 40_000n);
    const op = `${txid}:0`;
    fake.mine(2);
    await watcher.pollOnce();
    fake.reorg(2, { include: 'none' }); // back to the mempool, new blocks empty
    await watcher.pollOnce();
    assert.equal(store.records.get(op)?.state, 'reversed');
    fake.mine(2);
    await watcher.pollOnce();
    assert.deepEqual(store.actions.filter((a) => a.outpoint === op).map((a) => a.type), ['credit', 'reverse', 'credit']);
  });

  it('changes nothing when the backend goes away or answers junk', async () => {
    const txid = fake.pay(A, 60_000n);
    fake.mine(1);
    await watcher.pollOnce();
    const snapshot = JSON.stringify([...store.records.values()], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    const saves = store.saves;
    fake.mine(1);
    await fake.goAway();
    await assert.rejects(watcher.pollOnce(), (e) => e instanceof ImError && e.code === 'IM_BTC_CHAIN_UNAVAILABLE');
    await fake.comeBack();
    fake.corrupt = true;
    await assert.rejects(watcher.pollOnce(), (e) => e instanceof ImError && e.code === 'IM_BTC_CHAIN_BAD_RESPONSE');
    assert.equal(store.saves, saves);
    assert.equal(JSON.stringify([...store.records.values()], (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), snapshot);
    fake.corrupt = false;
    await watcher.pollOnce();
    assert.equal(store.count('credit', `${txid}:0`), 1);
  });
});

describe('reconcileDeposits', () => {
  const txid = 'aa'.repeat(32);
  const credited: DepositRecord = { outpoint: `${txid}:1`, address: A, valueSats: 5n, state: 'credited', confirmations: 3, blockHeight: 10, blockHash: 'bb'.repeat(32) };

  it('treats absence from the listing as no news', () => {
    const r = reconcileDeposits({ known: [credited], observed: [], statuses: new Map(), tip: 12, minConf: 2 });
    assert.deepEqual(r, { records: [], actions: [] });
  });

  it('reverses on a status of found:false or unconfirmed, once', () => {
    for (const status of [{ found: false, confirmed: false }, { found: true, confirmed: false }]) {
      const r = reconcileDeposits({ known: [credited], observed: [], statuses: new Map([[txid, status]]), tip: 12, minConf: 2 });
      assert.equal(r.actions.length, 1);
      assert.equal(r.actions[0]?.type, 'reverse');
      const again = reconcileDeposits({ known: r.records, observed: [], statuses: new Map([[txid, status]]), tip: 13, minConf: 2 });
      assert.equal(again.actions.length, 0);
    }
  });

  it('credits a deposit first seen already deep enough', () => {
    const r = reconcileDeposits({ known: [], observed: [{ txid, vout: 0, address: A, valueSats: 9n, confirmed: true, blockHeight: 5 }], statuses: new Map(), tip: 10 });
    assert.equal(r.actions[0]?.type, 'credit');
    assert.equal(r.records[0]?.creditedAt, 10);
  });

  it('asks statuses for seen and non-final credited records only', () => {
    const rec = (n: number, state: DepositRecord['state'], blockHeight?: number): DepositRecord => ({
      outpoint: `${String(n).repeat(64).slice(0, 64)}:0`, address: A, valueSats: 1n, state, confirmations: 0, ...(blockHeight === undefined ? {} : { blockHeight }),
    });
    const needed = statusesNeeded([rec(1, 'seen'), rec(2, 'credited', 150), rec(3, 'credited', 10), rec(4, 'dropped'), rec(5, 'reversed')], 200, 100);
    assert.deepEqual(needed, ['1'.repeat(64), '2'.repeat(64)]);
  });
});
