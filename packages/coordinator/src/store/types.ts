import type { AccountBalance, AccountEvent, AccountState, Transfer } from '../ledger/index.js';
import type { BatchOutcome, LedgerBatch, LedgerHead } from '../ledger/persist.js';
import type { FeeSchedule } from '../pricing/index.js';
import type { AuditEntry } from '@idlemesh/protocol';
import type { Capabilities, JobCounts, JobLimits, JobState, ModuleAbi, NodeState, Requirements, Runtime, TaskState, Verification, WireError } from '@idlemesh/protocol';

export interface StoredModule {
  hash: string;
  instrumentedHash: string;
  abi: ModuleAbi;
  size: number;
  instrumentedSize: number;
  initialPages: number;
  maxPages: number;
  bytes: Uint8Array;
  instrumented: Uint8Array;
  createdAt: number;
}

export interface NewJob {
  id: string;
  caller: string;
  idempotencyKey?: string;
  /** sha256 of the canonical request, to tell a retry from a different request under the same key. */
  requestHash: string;
  name?: string;
  module: string;
  instrumentedModule: string;
  runtime: Runtime;
  limits: JobLimits;
  bid: number;
  maxAttempts: number;
  retryBackoffMs: number;
  priority: number;
  requirements: Requirements;
  createdAt: number;
  /** The buyer's ledger account, charged for the work; absent for free jobs (bid 0). */
  buyer?: string;
  /** The escrow hold placed at submit (pending transfer `hold:<job id>`), msat. */
  holdMsat?: bigint;
  /** Fees in force when the job was submitted; they apply to all its charges. */
  fees?: FeeSchedule;
  /** Policy label (private, overflow, public); absent = no organisation (a local mesh): any node. */
  label?: string;
  /** Data classes the job carries; a policy may keep some inside the organisation. */
  dataClasses?: string[];
  /** How its results are verified; absent = trusted. */
  verification?: Verification;
}

export interface JobRecord extends NewJob {
  state: JobState;
  /** When the job's charges were settled in the ledger (after it finished). */
  settledAt?: number;
  counts: JobCounts;
  fuelUsed: number;
  updatedAt: number;
  finishedAt?: number;
}

/** What the scheduler needs to know of a job with work waiting. */
export interface RunnableJob {
  id: string;
  runtime: Runtime;
  queued: number;
  leased: number;
  priority: number;
  /** msat per EU: only agents asking at most this run it. */
  bid: number;
  caller: string;
  label?: string;
  dataClasses?: string[];
  createdAt: number;
  memoryMb: number;
  requirements: Requirements;
}

export interface Claim {
  jobId: string;
  nodeId: string;
  count: number;
  /** The agent's ask (msat per EU) at lease time: the price its results are charged at. */
  ask?: number;
  /**
   * Where the agent runs from: with it, queued replicas of the job's tasks
   * are claimed first, never one of a task another execution of which ran
   * or runs on the same node, operator or IP prefix.
   */
  replicas?: Placement;
}

/** Who runs an execution, and from where: replicas of one task never share either. */
export interface Placement {
  /** `org:<id>` for a node enrolled in an organisation, else `node:<id>` (issuance-service.ts operatorOf). */
  operator: string;
  /** IPv4 /24 or IPv6 /48 (identity/prefix.ts). */
  prefix: string;
}

/** One execution of a task under verification: replica 0 is the first result, the others were sent to check it. */
export interface ExecutionRow {
  jobId: string;
  index: number;
  replica: number;
  /** queued, leased, done (a result), lost (its attempts ran out) or cancelled (decided without it). */
  state: 'queued' | 'leased' | 'done' | 'lost' | 'cancelled';
  attempt: number;
  nodeId?: string;
  operator?: string;
  prefix?: string;
  ask: number;
  ok?: boolean;
  output?: Uint8Array;
  fuel?: number;
  error?: WireError;
  /** The receipt document (JSON text) of its result, when signed. */
  receipt?: string;
  finishedAt?: number;
}

/** How a task under verification ends: the verifier's decision, applied once. */
export interface TaskDecision {
  jobId: string;
  index: number;
  ok: boolean;
  output?: Uint8Array;
  fuel: number;
  error?: WireError;
  /** The execution whose node and receipt the task shows; absent when only the referee's result stands. */
  canonical?: number;
  /** Executions the buyer pays for, at their own fuel × ask: the valid ones (and task faults). */
  paid: number[];
  /** Trust streaks: a valid result adds one, an invalid one resets to 0. */
  trust: Array<{ nodeId: string; valid: boolean }>;
}

/** What one (job, node, ask) has accrued: exact, unrounded (fuel × ask). */
export interface ChargeRow {
  jobId: string;
  nodeId: string;
  ask: number;
  fuel: bigint;
  fuelAsk: bigint;
  executions: number;
  updatedAt: number;
}

/** Everything a settlement plan needs to know of a finished job. */
export interface SettlementInput {
  job: JobRecord;
  charges: ChargeRow[];
}

/** A pure function from a finished job to the ledger batch that settles it (see settlement/). */
export type SettlementPlan = (input: SettlementInput) => LedgerBatch;

/** Spot-market figures of one runtime. */
export interface MarketRow {
  runtime: string;
  /** (ask, executions) of paid work in the window, for the median clearing price. */
  asks: Array<{ ask: number; executions: number }>;
  /** Queued tasks × fuel limit (fuel) of jobs waiting. */
  queuedFuel: bigint;
  queuedTasks: number;
}

/** LLM requests per model (its hash) since a time: what `idlemesh models` shows as demand. */
export interface ModelDemandRow {
  model: string;
  requests: number;
  /** Fuel of the requests' results (tokens × size weight × FUEL_PER_TOKEN). */
  fuel: number;
  /** Requests not yet answered (queued or running). */
  waiting: number;
}

/** A document kept by kind and id: deposits, invoices, withdrawals, payout batches, cursors, keys, organisations, users, API keys. */
/** What the issuance counts for one node in one hour (see issuance-service.ts). */
export interface MeterRow {
  nodeId: string;
  hour: number;
  availMs: number;
  slotMs: number;
  busyMs: number;
  accepted: number;
  failed: number;
  paidMsat: number;
  /** Capacity units measured in the hour (the largest seen). */
  cap: number;
}

export interface StoredRecord {
  kind: string;
  id: string;
  state: string;
  /** JSON; bigints survive (see ledger-rows.ts encodeDoc). */
  doc: unknown;
  updatedAt: number;
}

/** Record writes that must land together (and with their ledger transfers, if any). */
export interface RecordChange {
  records?: Array<{ kind: string; id: string; state: string; doc: unknown }>;
  /** Nothing is written (IM_CONFLICT) unless each named record is in one of `states` ('absent' = no such record). */
  expect?: Array<{ kind: string; id: string; states: string[] }>;
  /** Deposit addresses that received something: the gap limit counts from the last used one. */
  usedAddresses?: string[];
  batch?: LedgerBatch;
}

export interface DepositAddress {
  index: number;
  address: string;
  account: string;
  createdAt: number;
}

/** The whole stored ledger, for audits. */
export interface LedgerDump {
  head: LedgerHead;
  accountEvents: AccountEvent[];
  transfers: Transfer[];
  accounts: AccountState[];
}

/** Leases planned for a job before it is stored: `count` of its first tasks to each node, in order, until `expiresAt`. */
export interface FirstLeases {
  leases: ReadonlyArray<{ nodeId: string; count: number; ask: number }>;
  expiresAt: number;
}

export interface ClaimedTask {
  jobId: string;
  index: number;
  attempt: number;
  nodeId: string;
  input: Uint8Array;
  leaseExpiresAt: number;
  instrumentedModule: string;
  runtime: Runtime;
  limits: JobLimits;
}

/** A results batch's receipts as kept: a `ReceiptBatch` (JSON) under an id unique per node and nonce. */
export interface ReceiptBatchRow {
  id: string;
  doc: string;
}

export interface Outcome {
  jobId: string;
  index: number;
  attempt: number;
  ok: boolean;
  output?: Uint8Array;
  fuel: number;
  error?: WireError;
  /** sha256 hex of the input the agent says it ran: a result for another input refuses the whole batch (IM_RECEIPT_MISMATCH). */
  inputHash?: string;
  /** Which receipt of the batch passed to `completeTasks` is this result's. */
  receiptIndex?: number;
  /** Split inference: what a success accrues instead of the submitting node's charge, the request's effort shared among its stages. */
  charges?: ReadonlyArray<{ nodeId: string; ask: number; fuel: number }>;
  /**
   * Extra executions of this task to send before it is decided (replicate,
   * adaptive): the result is held (the task is `verifying`, counted as
   * leased) and not charged until the verifier decides. The agent is acked
   * the same either way.
   */
  replicas?: number;
}

export type OutcomeStatus = 'accepted' | 'duplicate' | 'rejected';

export interface TaskRef {
  jobId: string;
  index: number;
  attempt: number;
}

export interface TaskRow {
  jobId: string;
  index: number;
  state: TaskState;
  attempt: number;
  failures: number;
  nodeId?: string;
  output?: Uint8Array;
  fuel?: number;
  error?: WireError;
  finishedAt?: number;
}

export interface NodeRecord {
  id: string;
  state: NodeState;
  pauseReason?: string;
  capabilities: Capabilities;
  running: number;
  completed: number;
  failed: number;
  firstSeen: number;
  lastSeen: number;
}

/**
 * What one coordinator tells the others that share its store. PostgreSQL
 * carries these with LISTEN/NOTIFY; SQLite has one coordinator, so nothing.
 */
export type StoreEvent =
  | { type: 'work' }
  | { type: 'progress'; jobs: string[] }
  | { type: 'revoke'; nodeId: string; taskIds: string[]; reason: string };

/** Which jobs a change touched, so progress can be pushed to watchers. */
export interface Touched {
  jobs: Set<string>;
}

export interface ExpiryReport extends Touched {
  requeued: number;
  failed: number;
}

/** A task named by job and index. */
export interface TaskKey {
  jobId: string;
  index: number;
}

/**
 * Everything the coordinator keeps. Async so that SQLite (embedded) and
 * PostgreSQL (shared by several coordinators) satisfy the same contract; the
 * conformance suite in test/store-conformance.ts holds both to it.
 *
 * Invariants every implementation keeps:
 * - a task's result is accepted at most once, and only from the node holding
 *   the lease for that attempt;
 * - job counts always equal the states of its tasks;
 * - every multi-row change is one transaction (nothing half-applied on a crash).
 */
export interface Store {
  readonly kind: string;
  /** Human-readable durability setting, printed by benchmarks. */
  readonly durability: string;
  migrate(): Promise<void>;
  close(): Promise<void>;
  ping(): Promise<boolean>;

  putModule(m: StoredModule): Promise<void>;
  /** By uploaded hash or instrumented hash. */
  getModule(hash: string): Promise<StoredModule | undefined>;

  /**
   * Creates the job and its tasks, or returns the job an earlier call with the
   * same (caller, key) created. With `hold`, the ledger batch (the escrow hold)
   * is applied in the same transaction; if any of it fails nothing is created
   * and a ledger error is thrown. With `first`, the first tasks are leased in
   * that transaction too (a submit to an idle mesh: no claim, no second
   * commit); `leased` lists them in task order, empty when the job existed.
   */
  createJob(job: NewJob, inputs: readonly Uint8Array[], hold?: LedgerBatch, first?: FirstLeases): Promise<{ job: JobRecord; created: boolean; leased: ClaimedTask[] }>;
  getJob(id: string): Promise<JobRecord | undefined>;
  listJobs(q: { state?: JobState; limit: number }): Promise<JobRecord[]>;
  /** Cancels queued and leased tasks; returns the leases that were live so agents can be told. */
  cancelJob(id: string, now: number): Promise<{ job: JobRecord; revoked: Array<TaskRef & { nodeId: string }> } | undefined>;

  runnableJobs(now: number): Promise<RunnableJob[]>;
  claimTasks(claims: readonly Claim[], now: number, leaseMs: number): Promise<ClaimedTask[]>;
  /** A heartbeat: extends every lease the node holds and records that it was seen. */
  extendLeases(nodeId: string, now: number, leaseMs: number): Promise<number>;
  /** Marks offline every node not seen since `before` (its coordinator died with it). */
  markStaleNodes(before: number): Promise<number>;
  /**
   * Accepts results; with `receipts`, the batch is kept once (with the results, in one commit) and each outcome names its receipt in it.
   * A result for a replica lease is recorded with its execution; an outcome with `replicas` is held (see Outcome).
   * `placement` is the node's (kept with held results). `verify` lists the tasks whose verification may now be decided.
   */
  completeTasks(nodeId: string, outcomes: readonly Outcome[], now: number, receipts?: ReceiptBatchRow, placement?: Placement): Promise<{ statuses: OutcomeStatus[]; verify?: TaskKey[] } & Touched>;
  /** The leases a node holds. */
  nodeLeases(nodeId: string): Promise<TaskRef[]>;
  /** Hands leases back without counting a failure (owner paused or drained the agent). */
  releaseTasks(nodeId: string, tasks: readonly TaskRef[], now: number): Promise<{ released: number } & Touched>;
  /**
   * Every lease a node holds comes back, counted as a failed attempt (the node
   * vanished). With `session`, only if that is still the node's latest
   * session: a node that already reconnected (perhaps to another coordinator)
   * keeps its leases.
   */
  failNodeLeases(nodeId: string, now: number, error: WireError, session?: string): Promise<ExpiryReport>;
  expireLeases(now: number, error: WireError): Promise<ExpiryReport>;
  getResults(jobId: string, q: { after: number; limit: number; state?: TaskState }): Promise<TaskRow[]>;
  /** The receipt document (JSON text) of a task's accepted result, if it has one, assembled from its stored batch. */
  getReceipt(jobId: string, index: number): Promise<string | undefined>;
  /** Adds to the issuance meter (increments; `cap` keeps the largest seen). */
  meterAdd(rows: readonly MeterRow[]): Promise<void>;
  /** The meter rows of some hours. */
  meterHours(from: number, to: number): Promise<MeterRow[]>;
  /** A task's input bytes (the referee re-executes it). */
  taskInput(jobId: string, index: number): Promise<Uint8Array | undefined>;
  /**
   * Replaces a succeeded task's output and fuel with the referee's, when the
   * result was taken from `nodeId` at `attempt` (the job's fuel moves by the
   * difference). False if the task is not in that state.
   */
  correctResult(jobId: string, index: number, nodeId: string, attempt: number, output: Uint8Array, fuel: number, now: number): Promise<boolean>;

  // ---- verification: replicas of a task, decisions, trust ------------------------------
  /** The executions of a task under verification, by replica number. */
  taskExecutions(jobId: string, index: number): Promise<ExecutionRow[]>;
  /** Queues executions of a verifying task until it has `total` (idempotent: two deciders asking the same add once). Returns how many were added. */
  addReplicas(jobId: string, index: number, total: number): Promise<number>;
  /**
   * Ends a verifying task: its result, the charges of the paid executions and
   * the trust changes, in one transaction; outstanding replicas are cancelled
   * (live leases returned for revocation). `decided` is false if the task was
   * not verifying (decided already, or cancelled).
   */
  decideTask(d: TaskDecision, now: number): Promise<{ decided: boolean; revoked: Array<TaskRef & { nodeId: string }> } & Touched>;
  /** Verifying tasks with no execution queued or leased: a decision is due (the sweep's catch-up). */
  undecidedTasks(limit: number): Promise<TaskKey[]>;
  /** Consecutive valid replicated results per node (0 when never checked). */
  nodeTrust(nodeIds: readonly string[]): Promise<Map<string, number>>;
  /** A node's succeeded results finished at or after `since`, oldest first (an optimistic conviction re-runs them). */
  nodeResults(nodeId: string, since: number, limit: number): Promise<Array<TaskRef & { finishedAt: number }>>;

  /** Records a node's capabilities and its latest session (one per authenticated connection). */
  upsertNode(id: string, capabilities: Capabilities, now: number, session?: string): Promise<void>;
  /** With `session`, only while that is the node's latest session. */
  setNodeState(id: string, state: NodeRecord['state'], reason: string | undefined, now: number, session?: string): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;

  /** Records a signed message's nonce; false if it was seen before (a replay). */
  useNonce(nodeId: string, nonce: string, expiresAt: number): Promise<boolean>;
  purgeNonces(now: number): Promise<number>;

  // ---- money: the ledger (ledger/persist.ts), charges and settlement --------------
  /**
   * Applies one ledger batch in one transaction, serialised with every other
   * ledger write. `atomic`: any error rolls the whole batch back and throws.
   */
  ledgerApply(batch: LedgerBatch, now: number, opts?: { atomic?: boolean }): Promise<BatchOutcome>;
  /** Records the expiry of every pending transfer whose timeout has passed; returns how many. */
  ledgerExpire(now: number): Promise<number>;
  ledgerBalances(q: { ids?: readonly string[]; prefix?: string; limit: number }): Promise<AccountBalance[]>;
  /** In log order, or with `newestFirst` the latest `limit` first. */
  ledgerTransfers(q: { account?: string; ref?: string; afterSeq?: number; limit: number; newestFirst?: boolean }): Promise<Transfer[]>;
  ledgerDump(): Promise<LedgerDump>;
  /** Pending transfers not yet posted, voided or expired, with these codes (oldest first). */
  ledgerOpenPendings(q: { codes: readonly string[]; limit: number }): Promise<Transfer[]>;
  jobCharges(jobId: string): Promise<ChargeRow[]>;
  /** Finished jobs whose charges are not settled yet (oldest first). */
  unsettledJobs(limit: number): Promise<string[]>;
  /**
   * Settles a finished job once: reads its charges, applies `plan`'s batch and
   * marks it settled, all in one transaction. False if it is not finished or
   * already settled.
   */
  settleJob(jobId: string, plan: SettlementPlan, now: number): Promise<{ settled: boolean; outcome?: BatchOutcome }>;
  market(since: number): Promise<MarketRow[]>;
  /** LLM requests per model created since `since` (job ids are time-ordered, so this reads only that range). */
  modelDemand(since: number): Promise<ModelDemandRow[]>;
  records(kind: string, q: { ids?: readonly string[]; states?: readonly string[]; limit: number }): Promise<StoredRecord[]>;
  /** Records, the expected prior states and a ledger batch (atomic), in one transaction. */
  commitRecords(change: RecordChange, now: number): Promise<BatchOutcome | undefined>;
  /**
   * The next receive address (BIP32 index) for an account, unless `gap`
   * unused addresses already follow the last used one: then the account's
   * newest unused address again (`reused`), or IM_RATE_LIMITED if it has none.
   */
  /** Appends entries to the audit log in one transaction (serialised): seq and the Merkle tree head move together. */
  auditAppend(entries: ReadonlyArray<Omit<AuditEntry, 'seq'>>): Promise<{ size: number; root: Uint8Array }>;
  auditHead(): Promise<{ size: number; root: Uint8Array }>;
  auditEntries(from: number, limit: number): Promise<AuditEntry[]>;
  auditLeafHashes(from: number, to: number): Promise<Uint8Array[]>;
  auditPutCheckpoint(size: number, note: string, now: number): Promise<void>;
  /** Replaces a checkpoint's note with one carrying more (witness) signatures. */
  auditReplaceCheckpoint(size: number, note: string): Promise<void>;
  /** The newest checkpoint, or the one at `size`. */
  auditCheckpoint(size?: number): Promise<{ size: number; note: string; createdAt: number } | undefined>;
  issueDepositAddress(account: string, derive: (index: number) => string, gap: number, now: number): Promise<DepositAddress & { reused: boolean }>;
  depositAddresses(): Promise<DepositAddress[]>;

  /** Other coordinators may share this store (PostgreSQL): what one changes, the others must hear of. */
  readonly shared: boolean;
  /** Tells every coordinator sharing this store (PostgreSQL NOTIFY); a no-op where there is only one. */
  publish(event: StoreEvent): Promise<void>;
  /** Hears events published by other coordinators sharing this store. Returns an unsubscribe. */
  subscribe(handler: (event: StoreEvent) => void): Promise<() => Promise<void>>;
  /**
   * Leader election for periodic work that must run once across coordinators
   * (lease expiry now; epochs and payouts later): true while this instance
   * holds the named lock (a PostgreSQL session advisory lock on a dedicated
   * connection, released when the holder dies). Always true for SQLite.
   */
  holdsLock(name: string): Promise<boolean>;
}
