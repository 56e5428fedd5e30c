import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImError } from '@idlemesh/protocol';
import { LndRest } from '../src/services.js';
import { summarizeBolt11 } from '../src/lightning/bolt11.js';
import { FakeLnd } from './fakes/index.js';

function code(err: unknown): string {
  assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
  return err.code;
}

describe('LndRest', () => {
  let fake: FakeLnd;
  let lnd: LndRest;
  let cursor = '0';
  const invoice = async (amountMsat: bigint): Promise<string> => (await lnd.createInvoice({ amountMsat, memo: 'deposit', expirySec: 600, label: `l${amountMsat}` })).paymentHash;
  before(async () => {
    fake = await FakeLnd.start();
    lnd = new LndRest({ url: fake.url, macaroonHex: fake.macaroonHex, timeoutMs: 1_000 });
  });
  after(async () => fake.close());

  it('creates invoices', async () => {
    const inv = await lnd.createInvoice({ amountMsat: 21_000n, memo: 'top-up', expirySec: 900, label: 'a' });
    assert.match(inv.paymentHash, /^[0-9a-f]{64}$/);
    assert.equal(summarizeBolt11(inv.bolt11).paymentHash, inv.paymentHash);
    assert.ok(Math.abs(inv.expiresAt - (Date.now() + 900_000)) < 5_000);
    assert.equal(fake.invoices.get(inv.paymentHash)?.valueMsat, 21_000n);
    await assert.rejects(lnd.createInvoice({ amountMsat: 0n, memo: '', expirySec: 1, label: 'z' }), (e) => code(e) === 'IM_BTC_INVALID_AMOUNT');
  });

  it('finds settles from the start (cursor 0) and then streams new ones, each once', async () => {
    assert.deepEqual(await lnd.settledSince('0', 200), { settled: [], cursor: '0' });
    const first = await invoice(1_000n);
    fake.settle(first, 1_000n);
    const r1 = await lnd.settledSince(cursor, 200);
    assert.deepEqual(r1.settled, [{ paymentHash: first, amountMsat: 1_000n, settleIndex: '1' }]);
    cursor = r1.cursor;
    const second = await invoice(2_000n);
    fake.duplicateEvents = true;
    setTimeout(() => fake.settle(second), 100);
    const r2 = await lnd.settledSince(cursor, 3_000);
    fake.duplicateEvents = false;
    assert.deepEqual(r2.settled.map((s) => s.paymentHash), [second]);
    cursor = r2.cursor;
    assert.equal(cursor, '2');
    assert.deepEqual(await lnd.settledSince(cursor, 200), { settled: [], cursor: '2' });
  });

  it('resumes from the cursor when the stream breaks or the node goes away', async () => {
    const d = await invoice(3_000n);
    const e = await invoice(4_000n);
    fake.settle(d);
    fake.settle(e);
    fake.dropStreamAfter = 1; // the stream dies after one event
    const r = await lnd.settledSince(cursor, 1_000);
    fake.dropStreamAfter = undefined;
    assert.deepEqual(r.settled.map((s) => s.paymentHash), [d]);
    await fake.goAway();
    await assert.rejects(lnd.settledSince(r.cursor, 200), (err) => code(err) === 'IM_LN_UNAVAILABLE');
    await fake.comeBack();
    const waiting = lnd.settledSince(r.cursor, 100); // backlog comes at once
    const r2 = await waiting;
    assert.deepEqual(r2.settled.map((s) => s.paymentHash), [e]);
    cursor = r2.cursor;
    // Going away while the stream waits, with nothing read: unavailable.
    const pending = lnd.settledSince(cursor, 5_000);
    await sleep(100);
    await fake.goAway();
    await assert.rejects(pending, (err) => code(err) === 'IM_LN_UNAVAILABLE');
    await fake.comeBack();
  });

  it('pays: success with fee and preimage, and a final failure', async () => {
    fake.payOutcome = 'succeed';
    const ok = fake.foreignInvoice();
    const s = await lnd.pay({ bolt11: ok.bolt11, maxFeeMsat: 5_000n, timeoutSec: 5 });
    assert.equal(s.state, 'succeeded');
    assert.equal(s.paymentHash, ok.paymentHash);
    assert.equal(s.feeMsat, 1_000n);
    assert.match(s.preimage ?? '', /^[0-9a-f]{64}$/);
    // Paying it again: LND says "already paid"; the answer is the payment's status, not a failure.
    assert.equal((await lnd.pay({ bolt11: ok.bolt11, maxFeeMsat: 5_000n, timeoutSec: 5 })).state, 'succeeded');
    fake.payOutcome = 'fail';
    const bad = fake.foreignInvoice();
    const f = await lnd.pay({ bolt11: bad.bolt11, maxFeeMsat: 5_000n, timeoutSec: 5 });
    assert.deepEqual(f, { state: 'failed', paymentHash: bad.paymentHash, failureReason: 'FAILURE_REASON_NO_ROUTE' });
  });

  it('reports an unfinished payment in flight and resolves it through paymentStatus', async () => {
    fake.payOutcome = 'inflight';
    fake.inflightStream = 'end';
    const inv = fake.foreignInvoice();
    assert.equal((await lnd.pay({ bolt11: inv.bolt11, maxFeeMsat: 1n, timeoutSec: 5 })).state, 'in-flight');
    // A second pay while in flight: "payment is in transition" → still in flight, never failed.
    assert.equal((await lnd.pay({ bolt11: inv.bolt11, maxFeeMsat: 1n, timeoutSec: 5 })).state, 'in-flight');
    assert.equal((await lnd.paymentStatus(inv.paymentHash)).state, 'in-flight');
    fake.resolve(inv.paymentHash, 'succeed');
    const done = await lnd.paymentStatus(inv.paymentHash);
    assert.equal(done.state, 'succeeded');
    assert.equal(done.feeMsat, 1_000n);
    // A stream that stays open past the deadline: in flight too.
    fake.inflightStream = 'hold';
    const slow = fake.foreignInvoice();
    assert.equal((await lnd.pay({ bolt11: slow.bolt11, maxFeeMsat: 1n, timeoutSec: 1 })).state, 'in-flight');
    fake.resolve(slow.paymentHash, 'fail');
    assert.equal((await lnd.paymentStatus(slow.paymentHash)).state, 'failed');
    fake.payOutcome = 'succeed';
  });

  it('never calls a payment failed when the node cannot be reached', async () => {
    assert.equal((await lnd.paymentStatus('ef'.repeat(32))).state, 'unknown');
    const inv = fake.foreignInvoice();
    await fake.goAway();
    assert.deepEqual(await lnd.pay({ bolt11: inv.bolt11, maxFeeMsat: 1n, timeoutSec: 1 }), { state: 'unknown', paymentHash: inv.paymentHash });
    await assert.rejects(lnd.paymentStatus(inv.paymentHash), (e) => code(e) === 'IM_LN_UNAVAILABLE');
    await fake.comeBack();
  });

  it('refuses malformed invoices before calling the node, and reports a wrong macaroon', async () => {
    await assert.rejects(lnd.pay({ bolt11: 'lnbcrt1pnotaninvoice', maxFeeMsat: 1n, timeoutSec: 1 }), (e) => code(e) === 'IM_LN_INVALID_INVOICE');
    const inv = fake.foreignInvoice();
    const flipped = inv.bolt11.slice(0, -1) + (inv.bolt11.endsWith('q') ? 'p' : 'q');
    await assert.rejects(lnd.pay({ bolt11: flipped, maxFeeMsat: 1n, timeoutSec: 1 }), (e) => code(e) === 'IM_LN_INVALID_INVOICE');
    const wrong = new LndRest({ url: fake.url, macaroonHex: 'abcd', timeoutMs: 1_000 });
    await assert.rejects(wrong.createInvoice({ amountMsat: 1n, memo: '', expirySec: 60, label: 'x' }), (e) => code(e) === 'IM_LN_ERROR');
  });
});
