import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { summarizeBolt11 } from '../src/lightning/bolt11.js';
import { makeInvoice } from './fakes/index.js';

// BOLT11's first test vector ("Please make a donation of any amount…").
const SPEC = 'lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql';
// The "coffee" vector: 2500u, expiry 60 s.
const COFFEE = 'lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh';

describe('summarizeBolt11', () => {
  it('reads the payment hash and timestamp of the spec vector', () => {
    const s = summarizeBolt11(SPEC);
    assert.equal(s.paymentHash, '0001020304050607080900010203040506070809000102030405060708090102');
    assert.equal(s.timestamp, 1496314658);
    assert.equal(s.expirySec, 3600);
    const c = summarizeBolt11(COFFEE);
    assert.equal(c.paymentHash, s.paymentHash);
    assert.equal(c.expirySec, 60);
    assert.equal(c.expiresAt, (1496314658 + 60) * 1000);
  });

  it('round-trips what the fakes issue, and refuses a broken checksum', () => {
    const hash = 'ab'.repeat(32);
    const inv = makeInvoice({ paymentHash: hash, amountMsat: 1_234n, expirySec: 77, timestamp: 1_700_000_000 });
    assert.deepEqual(summarizeBolt11(inv), { paymentHash: hash, timestamp: 1_700_000_000, expirySec: 77, expiresAt: 1_700_000_077_000 });
    const broken = inv.slice(0, 20) + (inv[20] === 'q' ? 'p' : 'q') + inv.slice(21);
    assert.throws(() => summarizeBolt11(broken), (e) => e instanceof ImError && e.code === 'IM_LN_INVALID_INVOICE');
    assert.throws(() => summarizeBolt11('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'), (e) => e instanceof ImError && e.code === 'IM_LN_INVALID_INVOICE');
  });
});
