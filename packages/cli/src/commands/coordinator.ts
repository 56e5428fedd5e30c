import { Option, type Command } from 'commander';
import { defined, floatArg, intArg, LOG_LEVELS, readConfigFile } from '../options.js';
import { note, outJson } from '../output.js';
import { onShutdown } from '../shutdown.js';
import { startCoordinatorCli } from '../start-coordinator.js';

interface CoordinatorFlags {
  host?: string;
  port?: number;
  dataDir?: string;
  store?: string;
  config?: string;
  leaseMs?: number;
  heartbeatMs?: number;
  sweepMs?: number;
  network?: 'mainnet' | 'testnet' | 'signet' | 'regtest';
  coordinatorFeeBps?: number;
  poolFeeBps?: number;
  unbondingMs?: number;
  treasuryKey?: string;
  chain?: string;
  minConf?: number;
  chainPollMs?: number;
  lightning?: string;
  depositGap?: number;
  challengeWindowMs?: number;
  verify?: string;
  issuanceHourMs?: number;
  probeIntervalMs?: number;
  splitMultiplier?: number;
  inferenceCheckRate?: number;
  minWithdrawalSats?: number;
  payoutIntervalMs?: number;
  publicUrl?: string;
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: boolean;
  auditWitness?: string[];
  auditQuorum?: number;
  upstream?: string;
  upstreamBid?: number;
  upstreamBudgetMsat?: number;
  publicMinBondMsat?: number;
  anchorAudit?: boolean;
  enrolPerPrefixPerHour?: number;
  enrolPerOperatorPerHour?: number;
  logLevel?: (typeof LOG_LEVELS)[number];
  json?: boolean;
}

export function registerCoordinator(program: Command): void {
  program
    .command('coordinator')
    .description('run a coordinator: the HTTP API, the scheduler and the store (Ctrl-C stops it)')
    .option('--host <host>', 'interface to listen on (env IDLEMESH_HOST, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any (env IDLEMESH_PORT, default 7070)', intArg(0, 65535))
    .option('--data-dir <dir>', 'where the SQLite file and module cache live (env IDLEMESH_DATA_DIR, default ./.idlemesh)')
    .option('--store <store>', 'sqlite (in data-dir), sqlite:/path/file.db, or postgres://user@host/db?schema=name (env IDLEMESH_STORE)')
    .option('--config <file.json>', 'a JSON file of coordinator options; flags and environment override it')
    .option('--lease-ms <ms>', 'how long an agent holds a task between heartbeats (env IDLEMESH_LEASE_MS)', intArg(100, 3_600_000))
    .option('--heartbeat-ms <ms>', 'how often agents report (env IDLEMESH_HEARTBEAT_MS)', intArg(50, 600_000))
    .option('--sweep-ms <ms>', 'how often expired leases, due retries and settlements are swept (env IDLEMESH_SWEEP_MS, default 500)', intArg(10, 60_000))
    .addOption(new Option('--network <network>', 'bitcoin network money settles on (env IDLEMESH_NETWORK, default regtest: dev fund allowed)').choices(['mainnet', 'testnet', 'signet', 'regtest']))
    .option('--coordinator-fee-bps <bps>', 'coordinator fee on top of the operator charge, basis points (default 500 = 5 %)', intArg(0, 10_000))
    .option('--pool-fee-bps <bps>', 'reward-pool fee on top of the operator charge, basis points (default 500 = 5 %)', intArg(0, 10_000))
    .option('--unbonding-ms <ms>', 'how long unbonded stake stays locked and slashable (default 7 days)', intArg(0, 365 * 24 * 3_600_000))
    .option('--treasury-key <xpub>', 'the treasury\'s watch-only BIP84 account key (xpub/zpub or tpub/vpub, optionally [fingerprint/84\'/0\'/0\']-prefixed); never a private key (env IDLEMESH_TREASURY_KEY)')
    .option('--chain <backend>', 'esplora:<url> or bitcoind:<url>?wallet=<name> (env IDLEMESH_CHAIN)')
    .option('--min-conf <n>', 'confirmations before a deposit is credited (default 2)', intArg(1, 100))
    .option('--chain-poll-ms <ms>', 'how often deposits are checked (default 10000)', intArg(50, 3_600_000))
    .option('--deposit-gap <n>', 'unused deposit addresses in a row at most (default 20)', intArg(1, 10_000))
    .option('--probe-interval-ms <ms>', 'capacity probes: one round at a random time in each interval (default 1200000)', intArg(100, 3_600_000))
    .option('--inference-check-rate <p>', 'fraction of greedy (temperature 0) LLM answers a second node serving the same model scores, teacher-forced; a failed check costs the node reputation, never its bond (default 0.05)', floatArg(0, 1))
    .option('--split-multiplier <x>', "split inference: each stage's share of a request's effort (by layers) times this (default 1.25)", floatArg(1, 10))
    .option('--issuance-hour-ms <ms>', 'length of an issuance hour (default 3600000; shorter to watch epochs roll in a demo or test)', intArg(1000, 3_600_000))
    .option('--verify <mode>', 'how results of jobs that do not say are verified: auto (default: trusted for private work, adaptive for public work), trusted, replicate, adaptive, spot-check or spot-check:<rate> (the coordinator re-runs that fraction as the referee)')
    .option('--challenge-window-ms <ms>', 'earnings stay pending this long after settlement (default 0)', intArg(0, 30 * 24 * 3_600_000))
    .option('--min-withdrawal-sats <n>', 'smallest on-chain withdrawal (default 10000)', intArg(1))
    .option('--payout-interval-ms <ms>', 'how often queued on-chain withdrawals are batched (default 1 h)', intArg(1000, 7 * 24 * 3_600_000))
    .option('--public-url <url>', 'the URL people open; passkeys are bound to its host (default http://localhost:<port>; env IDLEMESH_PUBLIC_URL)')
    .option('--tls-cert <file>', 'PEM certificate: serve HTTPS (with --tls-key; env IDLEMESH_TLS_CERT)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert (env IDLEMESH_TLS_KEY)')
    .option('--audit-witness <vkey...>', 'witness keys whose checkpoint cosignatures count (idlemesh audit witness --print-key)')
    .option('--audit-quorum <n>', 'cosignatures a checkpoint needs, else it is flagged (default 0)', intArg(0, 100))
    .option('--upstream <url>', 'federation: overflow allowed by policy goes to this coordinator as ordinary jobs (API key in IDLEMESH_UPSTREAM_KEY)')
    .option('--upstream-bid <msat-per-EU>', 'bid for upstream jobs, also asked here from local buyers (default 0)', intArg(0))
    .option('--upstream-budget-msat <msat>', 'most msat of holds placed upstream in all (default 0: no limit)', intArg(0))
    .option('--public-min-bond-msat <msat>', 'nodes outside private pools join the public pool only with at least this staked (default 0)', intArg(0))
    .option('--anchor-audit', "anchor the audit log's latest checkpoint root in each payout batch (an OP_RETURN output)")
    .option('--enrol-per-operator-per-hour <n>', 'nodes one organisation may admit per hour with its enrolment tokens (default 100; 0 = no limit)', intArg(0, 1_000_000))
    .option('--enrol-per-prefix-per-hour <n>', 'new node identities one IPv4 /24 or IPv6 /48 may enrol per hour (default 1000; 0 = no limit)', intArg(0, 1_000_000))
    .option('--trust-proxy', 'behind a TLS proxy: trust its X-Forwarded-* headers')
    .option('--lightning <node>', 'lnd:<url> or cln:<url>; the macaroon (hex) or rune in env IDLEMESH_LIGHTNING_AUTH')
    .addOption(new Option('--log-level <level>', 'log verbosity (env IDLEMESH_LOG_LEVEL, default info)').choices(LOG_LEVELS))
    .option('--json', 'print {"url":…} as JSON once listening')
    .action(async (flags: CoordinatorFlags) => {
      const { resolveCoordinatorOptions } = await import('@idlemesh/coordinator');
      const file = await readConfigFile(flags.config);
      const opts = resolveCoordinatorOptions(
        defined({ host: flags.host, port: flags.port, dataDir: flags.dataDir, store: flags.store, leaseMs: flags.leaseMs, heartbeatMs: flags.heartbeatMs, sweepMs: flags.sweepMs, logLevel: flags.logLevel,
          network: flags.network, coordinatorFeeBps: flags.coordinatorFeeBps, poolFeeBps: flags.poolFeeBps, unbondingMs: flags.unbondingMs,
          treasuryKey: flags.treasuryKey, chain: flags.chain, minConf: flags.minConf, chainPollMs: flags.chainPollMs, lightning: flags.lightning,
          depositGap: flags.depositGap, challengeWindowMs: flags.challengeWindowMs, verify: flags.verify, issuanceHourMs: flags.issuanceHourMs, probeIntervalMs: flags.probeIntervalMs, splitMultiplier: flags.splitMultiplier, inferenceCheckRate: flags.inferenceCheckRate, minWithdrawalSats: flags.minWithdrawalSats, payoutIntervalMs: flags.payoutIntervalMs,
          publicUrl: flags.publicUrl, tlsCert: flags.tlsCert, tlsKey: flags.tlsKey, trustProxy: flags.trustProxy,
          auditWitnesses: flags.auditWitness, auditQuorum: flags.auditQuorum,
          upstream: flags.upstream, upstreamBid: flags.upstreamBid, upstreamBudgetMsat: flags.upstreamBudgetMsat,
          publicMinBondMsat: flags.publicMinBondMsat, anchorAudit: flags.anchorAudit,
          enrolPerPrefixPerHour: flags.enrolPerPrefixPerHour, enrolPerOperatorPerHour: flags.enrolPerOperatorPerHour }),
        file === undefined ? {} : { file },
      );
      const coordinator = await startCoordinatorCli(opts);
      if (flags.json) await outJson({ url: coordinator.url, port: coordinator.port, dataDir: opts.dataDir, store: opts.store });
      else note(`idlemesh coordinator listening on ${coordinator.url} (store ${opts.store}, data ${opts.dataDir})`);
      if (coordinator.bootstrapToken !== undefined && !flags.json) {
        note(`no admin yet (open to this machine only). Create the first one: idlemesh bootstrap --token ${coordinator.bootstrapToken} --org <name>`);
      }
      onShutdown(async () => {
        note('stopping coordinator…');
        await coordinator.close();
      });
    });
}
