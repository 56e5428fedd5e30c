import type { Capabilities, JobCounts, JobLimits, JobState, ModuleAbi, NodeState, Requirements, Runtime, TaskState, WireError } from '@idlemesh/protocol';

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
}

export interface JobRecord extends NewJob {
  state: JobState;
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
  createdAt: number;
  memoryMb: number;
  requirements: Requirements;
}

export interface Claim {
  jobId: string;
  nodeId: string;
  count: number;
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

export interface Outcome {
  jobId: string;
  index: number;
  attempt: number;
  ok: boolean;
  output?: Uint8Array;
  fuel: number;
  error?: WireError;
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

  /** Creates the job and its tasks, or returns the job an earlier call with the same (caller, key) created. */
  createJob(job: NewJob, inputs: readonly Uint8Array[]): Promise<{ job: JobRecord; created: boolean }>;
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
  completeTasks(nodeId: string, outcomes: readonly Outcome[], now: number): Promise<{ statuses: OutcomeStatus[] } & Touched>;
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

  /** Records a node's capabilities and its latest session (one per authenticated connection). */
  upsertNode(id: string, capabilities: Capabilities, now: number, session?: string): Promise<void>;
  /** With `session`, only while that is the node's latest session. */
  setNodeState(id: string, state: NodeRecord['state'], reason: string | undefined, now: number, session?: string): Promise<void>;
  listNodes(): Promise<NodeRecord[]>;

  /** Records a signed message's nonce; false if it was seen before (a replay). */
  useNonce(nodeId: string, nonce: string, expiresAt: number): Promise<boolean>;
  purgeNonces(now: number): Promise<number>;

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
