import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { AccountDetail, LedgerCheckView, MarketView, StakeOp, StakeView } from '@idlemesh/sdk';
import { ImError, signRequest } from '@idlemesh/protocol';
import { age, table } from '../format.js';
import { clientFor, intArg } from '../options.js';
import { out, outJson } from '../output.js';

/** msat as sats with three decimals: 1234567 → "1,234.567 sat". */
export function sats(msat: string | bigint): string {
  const v = BigInt(msat);
  const neg = v < 0n;
  const a = neg ? -v : v;
  const whole = (a / 1000n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (a % 1000n).toString().padStart(3, '0');
  return `${neg ? '-' : ''}${whole}.${frac} sat`;
}

export function registerMoney(program: Command): void {
  program
    .command('market')
    .description('spot price per runtime (median clearing ask of the last hour), free slots and queued demand')
    .option('--json', 'print the MarketView as one JSON document')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const m = await clientFor(cmd).market();
      if (opts.json) return outJson(m);
      await out(marketTable(m));
    });

  program
    .command('balance')
    .alias('account')
    .description('an account\'s balance and latest transfers (default: your buyer account)')
    .argument('[account]', 'buyer:<caller>, operator:<node id>, stake:<node id>, escrow, reward-pool, …')
    .option('--limit <n>', 'transfers to show', intArg(0, 1000), 10)
    .option('--json', 'print {account, transfers} as one JSON document')
    .action(async (account: string | undefined, opts: { limit: number; json?: boolean }, cmd: Command) => {
      const d = await clientFor(cmd).account(account, { limit: opts.limit });
      if (opts.json) return outJson(d);
      await out(accountText(d));
    });

  const ledger = program.command('ledger').description('the coordinator\'s double-entry ledger');
  ledger
    .command('check')
    .description('audit the ledger: debits = credits, balances = Σ transfers, no overdraft, each pending resolved once; exits 1 on any violation')
    .option('--json', 'print the LedgerCheckView as one JSON document')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await clientFor(cmd).ledgerCheck();
      if (opts.json) await outJson(r);
      else await out(checkText(r));
      if (!r.ok) process.exitCode = 1;
    });

  program
    .command('deposit')
    .description('get a fresh bitcoin address (or, with --lightning, an invoice) that credits your account')
    .option('--lightning <sats>', 'a Lightning invoice for this many sats instead of an on-chain address', intArg(1))
    .option('--account <id>', 'the account to credit (default: your buyer account)')
    .option('--json', 'print the address or invoice as one JSON document')
    .action(async (opts: { lightning?: number; account?: string; json?: boolean }, cmd: Command) => {
      const client = clientFor(cmd);
      if (opts.lightning !== undefined) {
        const inv = await client.lightningDeposit(opts.lightning, opts.account);
        if (opts.json) return outJson(inv);
        return out(`pay this invoice to credit ${inv.account} with ${sats(inv.amountMsat)} (expires ${new Date(inv.expiresAt).toISOString()}):\n${inv.bolt11}\n`);
      }
      const a = await client.depositAddress(opts.account);
      if (opts.json) return outJson(a);
      await out(`send bitcoin (${a.network}) to ${a.address}\ncredited to ${a.account} after ${a.minConf} confirmations${a.reused ? ' (an address you were given before and have not used)' : ''}\n`);
    });

  const stake = program.command('stake').description('bond sats from your operator earnings so your node may join the public pool (signed with the node key)');
  const keyOption = ['--key-file <file>', 'the node key (default ~/.idlemesh/agent/node.key, as `idlemesh agent`)'] as const;
  const run = async (op: StakeOp, opts: { keyFile?: string; json?: boolean }, cmd: Command): Promise<void> => {
    const { loadOrCreateKey } = await import('@idlemesh/agent');
    const file = opts.keyFile ?? join(homedir(), '.idlemesh', 'agent', 'node.key');
    const { existsSync } = await import('node:fs');
    if (!existsSync(file)) throw new ImError('IM_CONFIG_INVALID', `no node key at ${file}; run the agent once or pass --key-file`);
    const { key } = await loadOrCreateKey(file);
    const view = await clientFor(cmd).stake(await signRequest(key, 'stake', op, Date.now()));
    if (opts.json) return outJson(view);
    await out(stakeText(view));
  };
  stake
    .command('add')
    .description('bond sats from operator:<node id> into stake:<node id>')
    .argument('<sats>', 'whole sats to bond', intArg(1))
    .option('--capacity-units <n>', 'capacity units the bond covers (0 = a per-node bond)', intArg(0, 1_000_000))
    .option(...keyOption)
    .option('--json', 'print the StakeView as one JSON document')
    .action(async (amount: number, opts: { capacityUnits?: number; keyFile?: string; json?: boolean }, cmd: Command) =>
      run({ op: 'bond', amountMsat: String(BigInt(amount) * 1000n), ...(opts.capacityUnits !== undefined ? { capacityUnits: opts.capacityUnits } : {}) }, opts, cmd));
  stake
    .command('remove')
    .description('start unbonding a bond: it stays locked (and slashable) for the unbonding period, then `stake release`')
    .argument('<bond-id>', 'from `idlemesh stake list`')
    .option(...keyOption)
    .option('--json', 'print the StakeView as one JSON document')
    .action(async (bondId: string, opts: { keyFile?: string; json?: boolean }, cmd: Command) => run({ op: 'unbond', bondId }, opts, cmd));
  stake
    .command('release')
    .description('return an unbonded bond to your operator balance once its unlock time has passed')
    .argument('<bond-id>', 'from `idlemesh stake list`')
    .option(...keyOption)
    .option('--json', 'print the StakeView as one JSON document')
    .action(async (bondId: string, opts: { keyFile?: string; json?: boolean }, cmd: Command) => run({ op: 'release', bondId }, opts, cmd));
  stake
    .command('list')
    .description('a node\'s bonds')
    .argument('<node-id>', 'the node id (its public key, hex)')
    .option('--json', 'print the StakeView as one JSON document')
    .action(async (nodeId: string, opts: { json?: boolean }, cmd: Command) => {
      const view = await clientFor(cmd).stakes(nodeId);
      if (opts.json) return outJson(view);
      await out(stakeText(view));
    });

  const dev = program.command('dev').description('development helpers (coordinator on --network regtest only)');
  dev
    .command('fund')
    .description('DEV ONLY: credit regtest sats to an account from the dev faucet; refused on mainnet, testnet and signet')
    .argument('<account>', 'buyer:<caller> (buyer:anonymous without an API key) or operator:<node id>')
    .argument('<sats>', 'whole sats', intArg(1))
    .option('--idempotency-key <key>', 'funding again with the same key does nothing')
    .option('--json', 'print the TransferView as one JSON document')
    .action(async (account: string, amount: number, opts: { idempotencyKey?: string; json?: boolean }, cmd: Command) => {
      const t = await clientFor(cmd).devFund({ account, sats: amount, ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}) });
      if (opts.json) return outJson(t);
      await out(`funded ${account} with ${sats(t.amountMsat)} (regtest dev faucet, transfer ${t.id})\n`);
    });
}

export function marketTable(m: MarketView): string {
  const head = `fees: coordinator ${m.fees.coordinatorFeeBps / 100} %, pool ${m.fees.poolFeeBps / 100} %; window ${m.windowMs / 60_000} min\n`;
  if (m.runtimes.length === 0) return `${head}no supply or demand yet\n`;
  return head + table(
    ['RUNTIME', 'SPOT (msat/EU)', 'EXECUTIONS', 'FREE SLOTS', 'QUEUED TASKS', 'DEMAND (EU)'],
    m.runtimes.map((r) => [r.runtime, r.spotMsatPerEu === null ? '-' : String(r.spotMsatPerEu), String(r.executions), String(r.supplySlots), String(r.queuedTasks), r.demandEu.toFixed(3)]),
  );
}

export function accountText(d: AccountDetail, now = Date.now()): string {
  const a = d.account;
  const lines = [
    `${a.id} (${a.kind})${a.frozen ? ' FROZEN' : ''}`,
    `  balance    ${sats(a.balanceMsat)}`,
    `  available  ${sats(a.availableMsat)}`,
    `  held       ${sats(a.heldMsat)}`,
    `  pending in ${sats(a.pendingMsat)}`,
  ];
  if (d.transfers.length === 0) return `${lines.join('\n')}\n`;
  return `${lines.join('\n')}\n\n${table(
    ['WHEN', 'TYPE', 'CODE', 'AMOUNT', 'FROM', 'TO', 'REF'],
    d.transfers.map((t) => [age(t.timestamp, now), t.type, t.code, sats(t.amountMsat), t.debitAccount, t.creditAccount, t.ref ?? '']),
  )}`;
}

export function stakeText(v: StakeView, now = Date.now()): string {
  const head = `node ${v.nodeId.slice(0, 12)}: staked ${sats(v.stake.balanceMsat)}, operator available ${sats(v.operator.availableMsat)}\n`;
  if (v.bonds.length === 0) return `${head}no bonds\n`;
  return head + table(
    ['BOND', 'STATUS', 'BONDED', 'REMAINING', 'SLASHED', 'UNLOCKS'],
    v.bonds.map((b) => [b.id, b.status, sats(b.bondedMsat), sats(b.remainingMsat), sats(b.slashedMsat), b.unlockAt === undefined ? '' : b.unlockAt <= now ? 'now' : new Date(b.unlockAt).toISOString()]),
  );
}

export function checkText(r: LedgerCheckView): string {
  const head = `${r.ok ? 'ok' : 'VIOLATIONS'}: ${r.accounts} accounts, ${r.transfers} transfers; debits ${sats(r.totals.debitsMsat)} = credits ${sats(r.totals.creditsMsat)}\n`;
  return head + r.violations.map((v) => `  ${v.kind}: ${v.message}\n`).join('');
}
