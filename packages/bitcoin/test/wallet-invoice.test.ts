import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bech32, hex } from '@scure/base';
import { ImError } from '@idlemesh/protocol';
import { decodeInvoice } from '../src/wallet.js';

// BOLT #11 examples (lightning/bolts 11-payment-encoding.md), all created at 1496314658.
const CREATED_MS = 1496314658_000;
const SPEC_HASH = '0001020304050607080900010203040506070809000102030405060708090102';
const DONATION = 'lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx87sjle52x86fux2ypatgddc6k63n7erqz25le42c4u4ecky03ylcqca784w';
const COFFEE = 'lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp';
const HASHED = 'lnbc20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqscc6gd6ql3jrc5yzme8v4ntcewwz5cnw92tz0pc8qcuufvq7khhr8wpald05e92xw006sq94mg8v2ndf4sefvf9sygkshp5zfem29trqq2yxxz7';
const TESTNET = 'lntb20m1pvjluezhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un98kmzzhznpurw9sgl2v0nklu2g4d0keph5t7tj9tcqd8rexnd07ux4uv2cjvcqwaxgj7v4uwn5wmypjd5n69z2xm3xgksg28nwht7f6zspwp3f9t';
const PICO = 'lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gpc8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygrcyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv8xzscs7007v9gh9j569lencxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j';
const COFFEE_BEANS_UPPER = 'LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQPQSQ67GYE39HFG3ZD8RGC80K32TVY9XK2XUNWM5LZEXNVPX6FD77EN8QAQ424DXGT56CAG2DPT359K3SSYHETKTKPQH24JQNJYW6UQD08SGPTQ44QU';
// BOLT #11 invalid examples.
const BAD_CHECKSUM = 'lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt';
const TOO_SHORT = 'lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na6hlh';
const BAD_MULTIPLIER = 'lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpujr6jxr9gq9pv6g46y7d20jfkegkg4gljz2ea2a3m9lmvvr95tq2s0kvu70u3axgelz3kyvtp2ywwt0y8hkx2869zq5dll9nelr83zzqqpgl2zg';
const SUB_MSAT = 'lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu7hqtk93pkf7sw55rdv4k9z2vj050rxdr6za9ekfs3nlt5lr89jqpdmxsmlj9urqumg0h9wzpqecw7th56tdms40p2ny9q4ddvjsedzcplva53s';

function intWords(n: number, length?: number): number[] {
  const out: number[] = [];
  for (let v = n; v > 0 || out.length === 0; v = Math.floor(v / 32)) out.unshift(v % 32);
  while (length !== undefined && out.length < length) out.unshift(0);
  return out;
}

// An unsigned invoice for networks the spec has no example for: the decoder does not check signatures,
// so 104 zero words stand in for one.
function craft(hrp: string, timestamp: number, paymentHash: string, opts: { description?: string; expiry?: number } = {}): string {
  const words = intWords(timestamp, 7);
  const tag = (code: number, data: number[]): void => {
    words.push(code, ...intWords(data.length, 2), ...data);
  };
  tag(1, bech32.toWords(hex.decode(paymentHash)));
  if (opts.description !== undefined) tag(13, bech32.toWords(new TextEncoder().encode(opts.description)));
  if (opts.expiry !== undefined) tag(6, intWords(opts.expiry));
  words.push(...new Array<number>(104).fill(0));
  return bech32.encode(hrp, words, false);
}

function rejects(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImError, String(e));
    assert.equal(e.code, code, e.message);
    if (pattern !== undefined) assert.match(e.message, pattern);
    return true;
  });
}

describe('decodeInvoice: BOLT #11 examples', () => {
  it('decodes amount, hash, description and the 60 s expiry of the coffee invoice', () => {
    const inv = decodeInvoice(COFFEE, 'mainnet', CREATED_MS + 30_000);
    assert.equal(inv.paymentHash, SPEC_HASH);
    assert.equal(inv.amountMsat, 250_000_000n);
    assert.equal(inv.description, '1 cup coffee');
    assert.equal(inv.createdAt, CREATED_MS);
    assert.equal(inv.expiresAt, CREATED_MS + 60_000);
    assert.equal(inv.network, 'mainnet');
  });

  it('leaves the amount out of an any-amount invoice and applies the one-hour default expiry', () => {
    const inv = decodeInvoice(DONATION, 'mainnet', CREATED_MS);
    assert.equal('amountMsat' in inv, false);
    assert.equal(inv.description, 'Please consider supporting this project');
    assert.equal(inv.expiresAt, CREATED_MS + 3_600_000);
  });

  it('decodes pico-BTC amounts, description hashes, upper case and lightning: URIs', () => {
    const pico = decodeInvoice(PICO, 'mainnet', 1572468703_000);
    assert.equal(pico.amountMsat, 967_878_534n);
    assert.equal(pico.expiresAt, (1572468703 + 604800) * 1000);
    const hashed = decodeInvoice(HASHED, 'mainnet', CREATED_MS);
    assert.equal(hashed.amountMsat, 2_000_000_000n);
    assert.equal(hashed.description, undefined);
    const upper = decodeInvoice(`lightning:${COFFEE_BEANS_UPPER}`, 'mainnet', CREATED_MS);
    assert.equal(upper.amountMsat, 2_500_000_000n);
    assert.equal(upper.description, 'coffee beans');
    assert.equal(upper.invoice, COFFEE_BEANS_UPPER.toLowerCase());
  });

  it('refuses an expired invoice, saying so', () => {
    rejects(() => decodeInvoice(COFFEE, 'mainnet', CREATED_MS + 60_000), 'IM_LN_INVALID_INVOICE', /expired/);
    rejects(() => decodeInvoice(DONATION, 'mainnet', Date.now()), 'IM_LN_INVALID_INVOICE', /expired/);
  });

  it('refuses the spec\'s invalid invoices and things that are not invoices', () => {
    for (const bad of [BAD_CHECKSUM, TOO_SHORT, BAD_MULTIPLIER, SUB_MSAT, 'hello', '', 'bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4']) {
      rejects(() => decodeInvoice(bad, 'mainnet', CREATED_MS), 'IM_LN_INVALID_INVOICE');
    }
  });
});

describe('decodeInvoice: networks', () => {
  const hash = 'ab'.repeat(32);
  const now = 1_700_000_000_000;

  it('matches lntb to testnet only', () => {
    assert.equal(decodeInvoice(TESTNET, 'testnet', CREATED_MS).amountMsat, 2_000_000_000n);
    for (const other of ['mainnet', 'signet', 'regtest'] as const) rejects(() => decodeInvoice(TESTNET, other, CREATED_MS), 'IM_BTC_WRONG_NETWORK');
    rejects(() => decodeInvoice(COFFEE, 'testnet', CREATED_MS), 'IM_BTC_WRONG_NETWORK');
  });

  it('matches lnbcrt to regtest and lntbs to signet', () => {
    const regtest = craft('lnbcrt10u', now / 1000, hash, { description: 'withdrawal', expiry: 600 });
    const inv = decodeInvoice(regtest, 'regtest', now + 1000);
    assert.equal(inv.paymentHash, hash);
    assert.equal(inv.amountMsat, 1_000_000n);
    assert.equal(inv.description, 'withdrawal');
    assert.equal(inv.expiresAt, now + 600_000);
    assert.equal(inv.network, 'regtest');
    rejects(() => decodeInvoice(regtest, 'mainnet', now), 'IM_BTC_WRONG_NETWORK');
    rejects(() => decodeInvoice(regtest, 'testnet', now), 'IM_BTC_WRONG_NETWORK');
    rejects(() => decodeInvoice(regtest, 'regtest', now + 600_000), 'IM_LN_INVALID_INVOICE', /expired/);

    const signet = craft('lntbs', now / 1000, hash);
    assert.equal(decodeInvoice(signet, 'signet', now).network, 'signet');
    assert.equal(decodeInvoice(signet, 'signet', now).amountMsat, undefined);
    rejects(() => decodeInvoice(signet, 'testnet', now), 'IM_BTC_WRONG_NETWORK');
    rejects(() => decodeInvoice(craft('lnsb1u', now / 1000, hash), 'regtest', now), 'IM_LN_INVALID_INVOICE');
  });

  it('refuses an invoice without a payment hash', () => {
    const words = [...intWords(now / 1000, 7), ...new Array<number>(104).fill(0)];
    rejects(() => decodeInvoice(bech32.encode('lnbcrt', words, false), 'regtest', now), 'IM_LN_INVALID_INVOICE', /payment hash/);
  });
});
