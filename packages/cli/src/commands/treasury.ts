import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ImError, signRequest, verifyPayoutApproval } from '@idlemesh/protocol';
import type { PayoutBatchView, WithdrawalView, WithdrawBody } from '@idlemesh/sdk';
import { age, table } from '../format.js';
import { clientFor, intArg } from '../options.js';
import { note, out, outJson } from '../output.js';
import { sats } from './money.js';

const NETWORKS = ['mainnet', 'testnet', 'signet', 'regtest'] as const;

export function registerTreasury(program: Command): void {
  program
    .command('withdraw')
    .description('withdraw to a bitcoin address or a BOLT11 invoice; the amount leaves your balance at once and is paid in the next batch')
    .argument('[sats]', 'whole sats (on chain; for Lightning the invoice says)', intArg(1))
    .option('--address <address>', 'an on-chain address of the coordinator\'s network')
    .option('--invoice <bolt11>', 'a Lightning invoice with an amount')
    .option('--operator', 'withdraw operator earnings: signed with the node key')
    .option('--key-file <file>', 'the node key for --operator (default ~/.idlemesh/agent/node.key)')
    .option('--idempotency-key <key>', 'withdrawing again with the same key returns the same withdrawal')
    .option('--json', 'print the WithdrawalView as one JSON document')
    .action(async (amount: number | undefined, opts: { address?: string; invoice?: string; operator?: boolean; keyFile?: string; idempotencyKey?: string; json?: boolean }, cmd: Command) => {
      const body: WithdrawBody = {
        ...(amount !== undefined ? { sats: amount } : {}), ...(opts.address !== undefined ? { address: opts.address } : {}),
        ...(opts.invoice !== undefined ? { invoice: opts.invoice } : {}), ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
      };
      const client = clientFor(cmd);
      let w: WithdrawalView;
      if (opts.operator) {
        const { loadOrCreateKey } = await import('@idlemesh/agent');
        const file = opts.keyFile ?? join(homedir(), '.idlemesh', 'agent', 'node.key');
        if (!existsSync(file)) throw new ImError('IM_CONFIG_INVALID', `no node key at ${file}; pass --key-file`);
        const { key } = await loadOrCreateKey(file);
        w = await client.withdraw(await signRequest(key, 'withdraw', body, Date.now()));
      } else {
        w = await client.withdraw(body);
      }
      if (opts.json) return outJson(w);
      await out(`withdrawal ${w.id}: ${sats(w.amountMsat)} from ${w.account} → ${w.address ?? 'lightning invoice'} (${w.state})\n`);
    });

  program
    .command('withdrawals')
    .description('withdrawals and their state')
    .option('--account <id>', 'only this account\'s')
    .option('--json', 'print {"withdrawals":[…]} as one JSON document')
    .action(async (opts: { account?: string; json?: boolean }, cmd: Command) => {
      const ws = await clientFor(cmd).withdrawals(opts.account);
      if (opts.json) return outJson({ withdrawals: ws });
      if (ws.length === 0) return out('no withdrawals\n');
      await out(table(['ID', 'STATE', 'AMOUNT', 'ACCOUNT', 'TO', 'FEE', 'CREATED'],
        ws.map((w) => [w.id, w.state, sats(w.amountMsat), w.account, w.address ?? `ln:${(w.paymentHash ?? '').slice(0, 12)}`, w.feeMsat === undefined ? '' : sats(w.feeMsat), age(w.createdAt)])));
    });

  const t = program.command('treasury').description('payout batches for the treasury\'s own signer (hardware wallet, Sparrow, Electrum)');
  t.command('batch')
    .description('batch the queued on-chain withdrawals into one unsigned PSBT now')
    .option('--out <file>', 'also write the PSBT (base64) to this file')
    .option('--json', 'print the PayoutBatchView as one JSON document')
    .action(async (opts: { out?: string; json?: boolean }, cmd: Command) => {
      const b = await clientFor(cmd).buildPayoutBatch();
      if (opts.out !== undefined) await writeFile(opts.out, `${b.psbt}\n`);
      if (opts.json) return outJson(b);
      await out(batchText(b));
    });
  t.command('batches')
    .description('payout batches and their state')
    .option('--json', 'print {"batches":[…]} as one JSON document')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const bs = await clientFor(cmd).payoutBatches();
      if (opts.json) return outJson({ batches: bs });
      if (bs.length === 0) return out('no payout batches\n');
      await out(table(['ID', 'STATE', 'PAYOUTS', 'FEE', 'TXID', 'CREATED'], bs.map((b) => [b.id, b.state, String(b.approved.length), `${b.feeSats} sat`, b.txid, age(b.createdAt)])));
    });
  t.command('psbt')
    .description('write a batch\'s unsigned PSBT for the signer')
    .argument('<batch-id>')
    .option('--out <file>', 'write it here instead of stdout')
    .action(async (id: string, opts: { out?: string }, cmd: Command) => {
      const b = await clientFor(cmd).payoutBatch(id);
      if (opts.out !== undefined) {
        await writeFile(opts.out, `${b.psbt}\n`);
        note(`wrote ${opts.out}`);
      } else await out(`${b.psbt}\n`);
    });
  t.command('import')
    .description('import the signed PSBT: it must pay exactly the approved payouts; then it is broadcast')
    .argument('<batch-id>')
    .argument('<file>', 'the signed PSBT (base64 or binary)')
    .option('--json', 'print the PayoutBatchView as one JSON document')
    .action(async (id: string, file: string, opts: { json?: boolean }, cmd: Command) => {
      const b = await clientFor(cmd).importSignedPsbt(id, await readPsbt(file));
      if (opts.json) return outJson(b);
      await out(batchText(b));
    });
  t.command('reject')
    .description('reject an unsigned (or failed) batch: its withdrawals are refunded')
    .argument('<batch-id>')
    .requiredOption('--reason <text>', 'why, kept with the batch')
    .option('--json', 'print the PayoutBatchView as one JSON document')
    .action(async (id: string, opts: { reason: string; json?: boolean }, cmd: Command) => {
      const b = await clientFor(cmd).rejectPayoutBatch(id, opts.reason);
      if (opts.json) return outJson(b);
      await out(batchText(b));
    });
  t.command('verify-psbt')
    .description('on the signer\'s machine: check a PSBT pays exactly the approved payouts the coordinator published, change only to your own key; exits 1 otherwise')
    .argument('<file>', 'the PSBT to check (base64 or binary)')
    .requiredOption('--batch <id>', 'the batch it claims to be')
    .requiredOption('--treasury-key <xpub>', 'your own account key (xpub/zpub or tpub/vpub), not the coordinator\'s word for it')
    .addOption(new Option('--network <network>', 'bitcoin network').choices(NETWORKS).default('mainnet'))
    .option('--coordinator-key <hex>', 'the coordinator payout key you pinned (GET /v1/payouts/key once, out of band); the approval must be signed by it')
    .option('--max-fee-sats <n>', 'refuse a fee above this (default: the batch\'s own fee)', intArg(0))
    .option('--json', 'print the report as one JSON document')
    .action(async (file: string, opts: { batch: string; treasuryKey: string; network: (typeof NETWORKS)[number]; coordinatorKey?: string; maxFeeSats?: number; json?: boolean }, cmd: Command) => {
      const { WatchOnlyAccount, verifyPayoutPsbt } = await import('@idlemesh/bitcoin');
      const account = WatchOnlyAccount.parse(opts.treasuryKey, opts.network);
      const b = await clientFor(cmd).payoutBatch(opts.batch);
      // The approved list is only as good as its signature: by the key the signer pinned, not by whatever key the batch names.
      const signer = opts.coordinatorKey ?? b.approval?.publicKey;
      if (!b.approval || signer === undefined || !(await verifyPayoutApproval({ batch: b.id, txid: b.txid, approved: b.approved }, signer, b.approval.sig))) {
        throw new ImError('IM_BAD_SIGNATURE', `the approved payouts of ${b.id} are not signed by ${opts.coordinatorKey ? 'the pinned coordinator key' : 'the key they name'}`);
      }
      if (opts.coordinatorKey === undefined) note(`approval signed by coordinator key ${signer}; pin it with --coordinator-key`);
      const report = verifyPayoutPsbt({
        psbt: await readPsbt(file), account, network: opts.network,
        approved: b.approved.map((a) => ({ id: a.id, address: a.address, valueSats: BigInt(a.valueSats) })),
        maxFeeSats: opts.maxFeeSats !== undefined ? BigInt(opts.maxFeeSats) : BigInt(b.feeSats) + BigInt(b.treasuryFeeSats),
        ...(b.anchor ? { anchor: new Uint8Array(Buffer.from(b.anchor.root, 'hex')) } : {}),
      });
      if (b.anchor && !opts.json) note(`the batch anchors audit checkpoint ${b.anchor.size} (root ${b.anchor.root}); compare with idlemesh audit verify`);
      if (opts.json) return outJson({ ok: true, txid: report.txid, feeSats: report.feeSats.toString(), payouts: b.approved.length, change: report.change.map((c) => ({ address: c.address, valueSats: c.valueSats.toString(), index: c.index })) });
      await out(`ok: ${b.approved.length} approved payouts, change ${report.change.map((c) => `${c.valueSats} sat to your change ${c.index}`).join(', ') || 'none'}, fee ${report.feeSats} sat, txid ${report.txid}\n`);
    });
}

/** PSBT files come as base64 text (Sparrow, Electrum export) or binary (BIP174 magic `psbt\xff`). */
async function readPsbt(file: string): Promise<string> {
  const bytes = await readFile(file);
  if (bytes.subarray(0, 5).equals(Buffer.from([0x70, 0x73, 0x62, 0x74, 0xff]))) return bytes.toString('base64');
  return bytes.toString('utf8').trim();
}

function batchText(b: PayoutBatchView): string {
  return `batch ${b.id} (${b.state}): ${b.approved.length} payouts, fee ${b.feeSats} sat, txid ${b.txid}\n` +
    b.approved.map((a) => `  ${a.id}  ${a.valueSats} sat → ${a.address}\n`).join('') + (b.reason ? `  reason: ${b.reason}\n` : '');
}
