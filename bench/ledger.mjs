// Ledger core in memory: apply N random transfers (mostly single, some
// pending → post/void) in batches, then replay and check the log.
// Prints one JSON line: {"bench":"ledger","transfersPerSec":…,…}
// Usage: npx tsc -b packages/coordinator && node bench/ledger.mjs [--transfers 200000] [--accounts 1000] [--batch 100]
import './lib.mjs'; // --help
import os from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { check, createAccounts, createLedger, replay, snapshot, submit } from '../packages/coordinator/dist/src/ledger/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('transfers', 200_000);
const ACCOUNTS = arg('accounts', 1000);
const BATCH = arg('batch', 100);

// Deterministic xorshift so runs compare.
let seed = 0x2545f491;
const rand = (n) => {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
  return (seed >>> 0) % n;
};

const state = createLedger();
const ids = Array.from({ length: ACCOUNTS }, (_, i) => `a${i}`);
createAccounts(state, [{ id: 'treasury', kind: 'treasury' }, ...ids.map((id) => ({ id, kind: 'buyer' }))], 0);
submit(state, ids.map((id) => ({ id: `fund-${id}`, debitAccount: 'treasury', creditAccount: id, amount: 1_000_000_000n, code: 'deposit' })), 0);

const events = [];
const open = [];
for (let i = 0; i < N; i++) {
  const r = rand(100);
  const d = ids[rand(ACCOUNTS)];
  let c = ids[rand(ACCOUNTS)];
  if (c === d) c = 'treasury';
  const amount = BigInt(1 + rand(10_000));
  if (r < 80 || (r >= 90 && open.length === 0)) {
    events.push({ id: `t${i}`, debitAccount: d, creditAccount: c === 'treasury' ? ids[(ids.indexOf(d) + 1) % ACCOUNTS] : c, amount, code: 'payment' });
  } else if (r < 90) {
    events.push({ type: 'pending', id: `t${i}`, debitAccount: d, creditAccount: c === 'treasury' ? ids[(ids.indexOf(d) + 1) % ACCOUNTS] : c, amount, code: 'escrow', timeout: 60_000 });
    open.push([`t${i}`, amount]);
  } else {
    const [pid, held] = open.splice(rand(open.length), 1)[0];
    events.push(r < 97 ? { type: 'post', id: `t${i}`, pendingId: pid, amount: held / 2n + 1n } : { type: 'void', id: `t${i}`, pendingId: pid });
  }
}

let ok = 0;
let now = 1;
const t0 = process.hrtime.bigint();
for (let i = 0; i < events.length; i += BATCH) {
  const out = submit(state, events.slice(i, i + BATCH), now++);
  for (const r of out.results) if (r.status === 'ok') ok++;
}
const applyNs = Number(process.hrtime.bigint() - t0);
const t1 = process.hrtime.bigint();
const again = replay(state.accountEvents, state.transfers);
const replayNs = Number(process.hrtime.bigint() - t1);
const t2 = process.hrtime.bigint();
const violations = check(state).length;
const checkNs = Number(process.hrtime.bigint() - t2);
const replayMatches = isDeepStrictEqual(snapshot(again), snapshot(state));

console.log(JSON.stringify({
  bench: 'ledger',
  transfers: N,
  applied: ok,
  batch: BATCH,
  accounts: ACCOUNTS,
  transfersPerSec: Math.round(N / (applyNs / 1e9)),
  replayPerSec: Math.round(state.transfers.length / (replayNs / 1e9)),
  checkPerSec: Math.round(state.transfers.length / (checkNs / 1e9)),
  violations,
  replayMatches,
  node: process.version,
  cpu: os.cpus()[0]?.model ?? 'unknown',
}));
if (violations !== 0 || !replayMatches) process.exit(1);
