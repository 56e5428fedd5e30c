import { join } from 'node:path';
import { z } from 'zod';
import { ImError } from '@idlemesh/protocol';
import type { Verification } from '@idlemesh/protocol';

/** Everything a coordinator can be told. Defaults live in resolveCoordinatorOptions only. */
export const CoordinatorOptionsSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  /** Where the SQLite file and instrumented-module cache live. */
  dataDir: z.string().min(1),
  /** `sqlite` (file in dataDir), `sqlite:/path/file.db`, or later `postgres://…`. */
  store: z.string().min(1),
  /** SQLite synchronous mode: NORMAL survives a process crash (WAL); FULL survives power loss. */
  sqliteSynchronous: z.enum(['NORMAL', 'FULL']),
  leaseMs: z.number().int().min(100).max(3_600_000),
  heartbeatMs: z.number().int().min(50).max(600_000),
  sweepMs: z.number().int().min(10).max(60_000),
  bodyLimitBytes: z.number().int().min(1024),
  moduleLimitBytes: z.number().int().min(1024),
  maxMemoryMb: z.number().int().min(1).max(4096),
  /** Tasks per lease message at most. */
  leaseBatch: z.number().int().min(1).max(10_000),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  coordinatorId: z.string().min(1).max(64),
  /** The bitcoin network money settles on. `regtest` (the default for a local mesh) enables `dev fund`. */
  network: z.enum(['mainnet', 'testnet', 'signet', 'regtest']),
  /** Fees on top of the operator's charge, in basis points (500 = 5 %). */
  coordinatorFeeBps: z.number().int().min(0).max(10_000),
  poolFeeBps: z.number().int().min(0).max(10_000),
  /** How long unbonded stake stays locked (and slashable) before it can be released. */
  unbondingMs: z.number().int().min(0).max(365 * 24 * 3_600_000),
  /** The treasury's watch-only BIP84 account key (xpub/zpub, tpub/vpub, optionally `[fingerprint/84'/0'/0']`-prefixed). Never a private key. */
  treasuryKey: z.string().min(1).max(300).optional(),
  /** Chain backend: `esplora:https://host/api` or `bitcoind:http://user:pass@host:8332?wallet=name`. */
  chain: z.string().regex(/^(esplora|bitcoind):https?:\/\/\S+$/, 'esplora:<url> or bitcoind:<url>').optional(),
  /** Confirmations before a deposit is credited. */
  minConf: z.number().int().min(1).max(100),
  /** Unused receive addresses in a row at most (what wallets scan). */
  depositGap: z.number().int().min(1).max(10_000),
  chainPollMs: z.number().int().min(50).max(3_600_000),
  /** Lightning node: `lnd:https://host:8080` or `cln:https://host:3010`; credentials in lightningAuth. */
  lightning: z.string().regex(/^(lnd|cln):https?:\/\/\S+$/, 'lnd:<url> or cln:<url>').optional(),
  /** LND admin/invoice macaroon (hex) or CLN rune. */
  lightningAuth: z.string().min(1).max(10_000).optional(),
  /** Smallest withdrawal on chain, sats (above dust, since the fee share comes out of it). */
  minWithdrawalSats: z.number().int().min(1),
  /** How often queued on-chain withdrawals are batched into a PSBT. */
  payoutIntervalMs: z.number().int().min(1000).max(7 * 24 * 3_600_000),
  /** Max Lightning routing fee, basis points of the amount (at least 10 sats); the withdrawer pays what is used. */
  lnMaxFeeBps: z.number().int().min(0).max(10_000),
  /**
   * How results of jobs that do not say are verified: `auto` (the default:
   * `trusted` for a local mesh and an organisation's private work, `adaptive`
   * for public work on a coordinator with a bonded public pool; see
   * verify-default.ts), `trusted`, `replicate`, `adaptive`, or
   * `spot-check:<rate>` (the coordinator re-executes that fraction of
   * accepted results as the referee).
   */
  verify: z.string().regex(/^(auto|trusted|replicate|adaptive|spot-check(:(0(\.\d+)?|1(\.0+)?))?)$/, 'auto, trusted, replicate, adaptive, spot-check or spot-check:<rate 0..1>'),
  /** Length of an issuance hour in ms: 3,600,000; shorter only to watch epochs roll in a test or a demo. */
  issuanceHourMs: z.number().int().min(1000).max(3_600_000),
  /** Capacity probes: one round at a random time in each interval of this length (issuance.md); shorter in tests. */
  probeIntervalMs: z.number().int().min(100).max(3_600_000),
  /** Split inference: a stage's share of a request's effort (by layers) is multiplied by this, for the harder service. */
  splitMultiplier: z.number().min(1).max(10),
  /** The fraction of greedy (temperature 0) LLM answers scored by a second node serving the same model (inference-check.ts). */
  inferenceCheckRate: z.number().min(0).max(1),
  /** Earnings stay pending this long after a job settles (verification may still reverse them); only then withdrawable. */
  challengeWindowMs: z.number().int().min(0).max(30 * 24 * 3_600_000),
  /** The URL people open (passkeys are bound to its host name); default http://localhost:<port>. */
  publicUrl: z.string().url().optional(),
  /** PEM files: with both, the coordinator serves HTTPS itself (passkeys and session cookies need TLS off loopback). */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Behind a TLS proxy: trust X-Forwarded-* from it. */
  trustProxy: z.boolean(),
  /** Witnesses whose cosignatures count (C2SP verifier keys of cosignature/v1 keys). */
  auditWitnesses: z.array(z.string().min(1).max(300)).max(100),
  /** Cosignatures a checkpoint needs before it is not flagged. */
  auditQuorum: z.number().int().min(0).max(100),
  /** An upstream coordinator to overflow to (federation): its URL; its API key in IDLEMESH_UPSTREAM_KEY. */
  upstream: z.string().url().optional(),
  upstreamKey: z.string().min(1).max(300).optional(),
  /** msat per EU bid upstream (and asked here from local buyers). */
  upstreamBid: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Most msat of holds placed upstream, in all (0 = no limit). */
  upstreamBudgetMsat: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  upstreamSlots: z.number().int().min(1).max(100_000),
  /** A node outside every private pool joins the public pool only with at least this bonded (msat). */
  publicMinBondMsat: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Anchor the audit log's latest checkpoint root in each payout batch (an OP_RETURN output). */
  anchorAudit: z.boolean(),
  /** New node identities one IPv4 /24 or IPv6 /48 may enrol per hour (Sybil resistance); 0 = no limit. */
  enrolPerPrefixPerHour: z.number().int().min(0).max(1_000_000),
  /** Nodes one operator (organisation) may admit per hour through its enrolment tokens (Sybil resistance); 0 = no limit. */
  enrolPerOperatorPerHour: z.number().int().min(0).max(1_000_000),
});
export type CoordinatorOptions = z.infer<typeof CoordinatorOptionsSchema>;
export type CoordinatorOptionsInput = Partial<CoordinatorOptions>;

const ENV: Record<string, keyof CoordinatorOptions> = {
  IDLEMESH_HOST: 'host',
  IDLEMESH_PORT: 'port',
  IDLEMESH_DATA_DIR: 'dataDir',
  IDLEMESH_STORE: 'store',
  IDLEMESH_SQLITE_SYNCHRONOUS: 'sqliteSynchronous',
  IDLEMESH_LEASE_MS: 'leaseMs',
  IDLEMESH_HEARTBEAT_MS: 'heartbeatMs',
  IDLEMESH_SWEEP_MS: 'sweepMs',
  IDLEMESH_LOG_LEVEL: 'logLevel',
  IDLEMESH_NETWORK: 'network',
  IDLEMESH_COORDINATOR_FEE_BPS: 'coordinatorFeeBps',
  IDLEMESH_POOL_FEE_BPS: 'poolFeeBps',
  IDLEMESH_UNBONDING_MS: 'unbondingMs',
  IDLEMESH_TREASURY_KEY: 'treasuryKey',
  IDLEMESH_CHAIN: 'chain',
  IDLEMESH_MIN_CONF: 'minConf',
  IDLEMESH_CHAIN_POLL_MS: 'chainPollMs',
  IDLEMESH_LIGHTNING: 'lightning',
  IDLEMESH_LIGHTNING_AUTH: 'lightningAuth',
  IDLEMESH_MIN_WITHDRAWAL_SATS: 'minWithdrawalSats',
  IDLEMESH_PAYOUT_INTERVAL_MS: 'payoutIntervalMs',
  IDLEMESH_CHALLENGE_WINDOW_MS: 'challengeWindowMs',
  IDLEMESH_VERIFY: 'verify',
  IDLEMESH_ISSUANCE_HOUR_MS: 'issuanceHourMs',
  IDLEMESH_PROBE_INTERVAL_MS: 'probeIntervalMs',
  IDLEMESH_SPLIT_MULTIPLIER: 'splitMultiplier',
  IDLEMESH_INFERENCE_CHECK_RATE: 'inferenceCheckRate',
  IDLEMESH_PUBLIC_URL: 'publicUrl',
  IDLEMESH_TLS_CERT: 'tlsCert',
  IDLEMESH_TLS_KEY: 'tlsKey',
  IDLEMESH_UPSTREAM: 'upstream',
  IDLEMESH_UPSTREAM_KEY: 'upstreamKey',
};
const NUMERIC = new Set<keyof CoordinatorOptions>(['port', 'leaseMs', 'heartbeatMs', 'sweepMs', 'bodyLimitBytes', 'moduleLimitBytes', 'maxMemoryMb', 'leaseBatch', 'coordinatorFeeBps', 'poolFeeBps', 'unbondingMs', 'minConf', 'depositGap', 'chainPollMs', 'minWithdrawalSats', 'payoutIntervalMs', 'lnMaxFeeBps', 'challengeWindowMs', 'issuanceHourMs', 'probeIntervalMs', 'splitMultiplier', 'inferenceCheckRate']);

/**
 * Layers defaults → config file object → environment → explicit options
 * (flags). The only place that reads process.env for the coordinator.
 */
/** The job-level setting a `--verify` value stands for. */
export function verificationOf(flag: string): Verification {
  // `auto` is decided per job (verify-default.ts); a job stored without a setting predates it: trusted.
  if (flag === 'trusted' || flag === 'auto') return { mode: 'trusted' };
  if (flag === 'replicate') return { mode: 'replicate', minQuorum: 2, targetResults: 2, maxTotalResults: 5 };
  if (flag === 'adaptive') return { mode: 'adaptive', minQuorum: 2, targetResults: 2, maxTotalResults: 5, trustStreak: 10 };
  const rate = flag.includes(':') ? Number(flag.split(':')[1]) : 0.05;
  return { mode: 'spot-check', rate };
}

export function resolveCoordinatorOptions(
  flags: CoordinatorOptionsInput = {},
  opts: { env?: NodeJS.ProcessEnv; file?: Record<string, unknown> } = {},
): CoordinatorOptions {
  const env = opts.env ?? process.env;
  const dataDir = flags.dataDir ?? (env.IDLEMESH_DATA_DIR as string | undefined) ?? (opts.file?.dataDir as string | undefined) ?? join(process.cwd(), '.idlemesh');
  const defaults: CoordinatorOptions = {
    host: '127.0.0.1',
    port: 7070,
    dataDir,
    store: 'sqlite',
    sqliteSynchronous: 'NORMAL',
    leaseMs: 15_000,
    heartbeatMs: 5_000,
    sweepMs: 500,
    bodyLimitBytes: 64 * 1024 * 1024,
    moduleLimitBytes: 32 * 1024 * 1024,
    maxMemoryMb: 4096,
    leaseBatch: 512,
    logLevel: 'info',
    coordinatorId: 'local',
    network: 'regtest',
    coordinatorFeeBps: 500,
    poolFeeBps: 500,
    unbondingMs: 7 * 24 * 3_600_000,
    minConf: 2,
    depositGap: 20,
    chainPollMs: 10_000,
    minWithdrawalSats: 10_000,
    payoutIntervalMs: 3_600_000,
    lnMaxFeeBps: 100,
    challengeWindowMs: 0,
    verify: 'auto',
    issuanceHourMs: 3_600_000,
    probeIntervalMs: 1_200_000,
    splitMultiplier: 1.25,
    inferenceCheckRate: 0.05,
    trustProxy: false,
    auditWitnesses: [],
    auditQuorum: 0,
    upstreamBid: 0,
    upstreamBudgetMsat: 0,
    upstreamSlots: 256,
    publicMinBondMsat: 0,
    anchorAudit: false,
    enrolPerPrefixPerHour: 1000,
    enrolPerOperatorPerHour: 100,
  };
  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') fromEnv[key] = NUMERIC.has(key) ? Number(v) : v;
  }
  const merged = { ...defaults, ...(opts.file ?? {}), ...fromEnv, ...stripUndefined(flags) };
  const parsed = CoordinatorOptionsSchema.safeParse(merged);
  if (!parsed.success) {
    throw new ImError('IM_CONFIG_INVALID', `invalid coordinator configuration: ${z.prettifyError(parsed.error)}`, { details: parsed.error.issues });
  }
  return parsed.data;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
