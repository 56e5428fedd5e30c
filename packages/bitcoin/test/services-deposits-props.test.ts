// Property: over random chain histories (payments, blocks, reorgs of any
// depth up to 4 that drop or re-mine transactions, mempool evictions,
// rebroadcasts), polled at random moments, every outpoint's credits minus
// reversals is 0 or 1; nothing is credited before minConf; and once the
// chain settles, it is 1 exactly for the outputs in the best chain.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DepositWatcher, confirmations } from '../src/services.js';
import { FakeChain, MemoryDepositStore } from './fakes/index.js';

const ADDRS = ['bcrt1qw0', 'bcrt1qw1', 'bcrt1qw2'];
const UNWATCHED = 'bcrt1qstranger';
const MIN_CONF = 2;

type Cmd =
  | { k: 'pay'; a: number; sats: number; extra: boolean }
  | { k: 'mine'; n: number }
  | { k: 'reorg'; depth: number; drop: boolean[]; include: 'mempool' | 'none' }
  | { k: 'vanish'; i: number }
  | { k: 'rebroadcast'; i: number }
  | { k: 'poll' };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ k: fc.constant('pay' as const), a: fc.nat({ max: 3 }), sats: fc.integer({ min: 1, max: 1_000_000 }), extra: fc.boolean() }),
  fc.record({ k: fc.constant('mine' as const), n: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ k: fc.constant('reorg' as const), depth: fc.integer({ min: 1, max: 4 }), drop: fc.array(fc.boolean(), { maxLength: 6 }), include: fc.constantFrom('mempool' as const, 'none' as const) }),
  fc.record({ k: fc.constant('vanish' as const), i: fc.nat() }),
  fc.record({ k: fc.constant('rebroadcast' as const), i: fc.nat() }),
  fc.constant({ k: 'poll' as const }),
  fc.constant({ k: 'poll' as const }),
);

async function run(cmds: Cmd[]): Promise<void> {
  const chain = new FakeChain();
  chain.mine(5);
  const store = new MemoryDepositStore();
  const watcher = new DepositWatcher({ backend: chain.asBackend(), store, addresses: () => ADDRS, minConf: MIN_CONF });
  const paid: string[] = [];

  const poll = async (): Promise<void> => {
    const { actions, tip } = await watcher.pollOnce();
    for (const a of actions) {
      const txid = a.outpoint.slice(0, 64);
      if (a.type === 'credit') assert.ok(confirmations(chain.status(txid), tip) >= MIN_CONF, `credited ${a.outpoint} before ${MIN_CONF} confirmations`);
    }
    for (const r of store.records.values()) {
      const net = store.net(r.outpoint);
      assert.ok(net === 0 || net === 1, `net ${net} for ${r.outpoint}`);
      assert.equal(net === 1, r.state === 'credited', `state ${r.state} with net ${net}`);
    }
  };

  for (const c of cmds) {
    switch (c.k) {
      case 'pay': {
        const to = c.a === 3 ? UNWATCHED : (ADDRS[c.a] as string);
        paid.push(chain.pay(to, BigInt(c.sats), c.extra ? [{ address: ADDRS[(c.a + 1) % 3] as string, valueSats: 546n }, { valueSats: 0n }] : []));
        break;
      }
      case 'mine':
        chain.mine(c.n);
        break;
      case 'reorg': {
        if (c.depth >= chain.blocks.length) break;
        const inBlocks = chain.blocks.slice(-c.depth).flatMap((b) => b.txids);
        chain.reorg(c.depth, { drop: inBlocks.filter((_, i) => c.drop[i] === true), include: c.include });
        break;
      }
      case 'vanish': {
        const t = chain.mempool[c.i % Math.max(1, chain.mempool.length)];
        if (t !== undefined) chain.vanish(t);
        break;
      }
      case 'rebroadcast': {
        const gone = paid.filter((t) => { const l = chain.location(t); return !l.inChain && !l.inMempool; });
        const t = gone[c.i % Math.max(1, gone.length)];
        if (t !== undefined) chain.addTx(chain.txs.get(t) ?? [], t);
        break;
      }
      case 'poll':
        await poll();
        break;
    }
  }
  // Settle: empty blocks bury what is in the chain and leave the mempool unconfirmed.
  chain.mine(MIN_CONF, 'none');
  await poll();
  await poll();
  for (const txid of paid) {
    (chain.txs.get(txid) ?? []).forEach((o, vout) => {
      if (o.address === undefined || !ADDRS.includes(o.address)) return;
      const op = `${txid}:${vout}`;
      const buried = confirmations(chain.status(txid), chain.tip) >= MIN_CONF;
      assert.equal(store.net(op), buried ? 1 : 0, `${op}: buried=${buried} net=${store.net(op)} state=${store.records.get(op)?.state}`);
    });
  }
}

describe('deposit tracking under random reorgs', () => {
  it('credits − reversals stays 0 or 1 and ends at 1 exactly for buried outputs', async () => {
    await fc.assert(fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 60 }), run), { numRuns: 300 });
  });
});
