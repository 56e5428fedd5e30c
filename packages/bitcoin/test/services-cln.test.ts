import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImError } from '@idlemesh/protocol';
import { ClnRest } from '../src/services.js';
import { summarizeBolt11 } from '../src/lightning/bolt11.js';
import { FakeCln } from './fakes/index.js';

function code(err: unknown): string {
  assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
  return err.code;
}

describe('ClnRest', () => {
  let fake: FakeCln;
  let cln: ClnRest;
  let cursor = '0';
  let n = 0;
  const invoice = async (amountMsat: bigint): Promise<string> => (await cln.createInvoice({ amountMsat, memo: 'deposit', expirySec: 600, label: `inv-${++n}` })).paymentHash;
  before(async () => {
    fake = await FakeCln.start();
    cln = new ClnRest({ url: fake.url, rune: fake.rune, timeoutMs: 1_000 });
  });
  after(async () => fake.close());

  it('creates invoices, idempotently per label', async () => {
    const q = { amountMsat: 42_000n, memo: 'top-up', expirySec: 900, label: 'buyer-7-topup-1' };
    const a = await cln.createInvoice(q);
    assert.equal(summarizeBolt11(a.bolt11).paymentHash, a.paymentHash);
    assert.ok(Math.abs(a.expiresAt - (Date.now() + 900_000)) < 5_000);
    const again = await cln.createInvoice(q);
    assert.deepEqual(again, a);
    assert.equal(fake.invoices.length, 1);
    await assert.rejects(cln.createInvoice({ ...q, amountMsat: 1n }), (e) => code(e) === 'IM_LN_ERROR');
  });

  it('returns settles after the cursor once, waiting for the first', async () => {
    assert.deepEqual(await cln.settledSince('0', 0), { settled: [], cursor: '0' });
    const h1 = await invoice(1_000n);
    const h2 = await invoice(2_000n);
    fake.settle(h1, 1_500n); // overpaid: what was received counts
    fake.settle(h2);
    const r = await cln.settledSince(cursor, 0);
    assert.deepEqual(r.settled, [
      { paymentHash: h1, amountMsat: 1_500n, settleIndex: '1' },
      { paymentHash: h2, amountMsat: 2_000n, settleIndex: '2' },
    ]);
    cursor = r.cursor;
    const h3 = await invoice(3_000n);
    setTimeout(() => fake.settle(h3), 100);
    const r2 = await cln.settledSince(cursor, 2_000);
    assert.deepEqual(r2.settled.map((s) => s.paymentHash), [h3]);
    cursor = r2.cursor;
    // A replayed answer for an index already seen is not a new settle.
    fake.replayNext = true;
    assert.deepEqual(await cln.settledSince(cursor, 0), { settled: [], cursor });
  });

  it('resumes from the cursor after the node goes away mid-wait', async () => {
    const h4 = await invoice(4_000n);
    fake.dropNextWait = true;
    await assert.rejects(cln.settledSince(cursor, 1_000), (e) => code(e) === 'IM_LN_UNAVAILABLE');
    const pending = cln.settledSince(cursor, 5_000);
    await sleep(100);
    await fake.goAway();
    await assert.rejects(pending, (e) => code(e) === 'IM_LN_UNAVAILABLE');
    await fake.comeBack();
    fake.settle(h4);
    const r = await cln.settledSince(cursor, 0);
    assert.deepEqual(r.settled.map((s) => s.paymentHash), [h4]);
    cursor = r.cursor;
  });

  it('pays: success, final failures, and an already paid invoice', async () => {
    fake.payOutcome = 'succeed';
    const ok = fake.foreignInvoice();
    const s = await cln.pay({ bolt11: ok.bolt11, maxFeeMsat: 2_000n, timeoutSec: 5 });
    assert.equal(s.state, 'succeeded');
    assert.equal(s.feeMsat, 1_000n);
    assert.match(s.preimage ?? '', /^[0-9a-f]{64}$/);
    fake.payOutcome = 'fail';
    assert.equal((await cln.pay({ bolt11: ok.bolt11, maxFeeMsat: 2_000n, timeoutSec: 5 })).state, 'succeeded');
    const bad = fake.foreignInvoice();
    const f = await cln.pay({ bolt11: bad.bolt11, maxFeeMsat: 2_000n, timeoutSec: 5 });
    assert.equal(f.state, 'failed');
    assert.match(f.failureReason ?? '', /^210/);
    fake.payOutcome = 'noroute';
    const nr = await cln.pay({ bolt11: fake.foreignInvoice().bolt11, maxFeeMsat: 2_000n, timeoutSec: 5 });
    assert.equal(nr.state, 'failed');
    assert.match(nr.failureReason ?? '', /^205/);
  });

  it('a pay cut off mid-call is unknown, then resolved through paymentStatus', async () => {
    fake.payOutcome = 'drop';
    const inv = fake.foreignInvoice();
    assert.deepEqual(await cln.pay({ bolt11: inv.bolt11, maxFeeMsat: 1n, timeoutSec: 5 }), { state: 'unknown', paymentHash: inv.paymentHash });
    assert.equal((await cln.paymentStatus(inv.paymentHash)).state, 'in-flight');
    fake.resolve(inv.paymentHash, 'succeed');
    assert.equal((await cln.paymentStatus(inv.paymentHash)).state, 'succeeded');
    // A pay that outlives our timeout: unknown, never failed.
    fake.payOutcome = 'pending';
    const slow = fake.foreignInvoice();
    const quick = new ClnRest({ url: fake.url, rune: fake.rune, timeoutMs: 200 });
    assert.equal((await quick.pay({ bolt11: slow.bolt11, maxFeeMsat: 1n, timeoutSec: 1 })).state, 'unknown');
    assert.equal((await cln.paymentStatus(slow.paymentHash)).state, 'in-flight');
    fake.resolve(slow.paymentHash, 'fail');
    assert.equal((await cln.paymentStatus(slow.paymentHash)).state, 'failed');
    assert.equal((await cln.paymentStatus('12'.repeat(32))).state, 'unknown');
    fake.payOutcome = 'succeed';
  });

  it('reports a refused rune and an unreachable node', async () => {
    const wrong = new ClnRest({ url: fake.url, rune: 'nope', timeoutMs: 1_000 });
    await assert.rejects(wrong.settledSince('0', 0), (e) => code(e) === 'IM_LN_ERROR');
    await fake.goAway();
    await assert.rejects(cln.paymentStatus('34'.repeat(32)), (e) => code(e) === 'IM_LN_UNAVAILABLE');
    const inv = fake.foreignInvoice();
    assert.equal((await cln.pay({ bolt11: inv.bolt11, maxFeeMsat: 1n, timeoutSec: 1 })).state, 'unknown');
    await fake.comeBack();
  });
});
