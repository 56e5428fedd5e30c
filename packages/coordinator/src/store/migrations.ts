/**
 * Numbered migrations. Append only: never edit a migration that has shipped;
 * add the next number. Each runs in its own transaction.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  // 1: jobs, tasks, nodes, modules, nonces
  `
  CREATE TABLE modules (
    hash TEXT PRIMARY KEY,
    instrumented_hash TEXT NOT NULL UNIQUE,
    abi TEXT NOT NULL,
    size INTEGER NOT NULL,
    instrumented_size INTEGER NOT NULL,
    initial_pages INTEGER NOT NULL,
    max_pages INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    instrumented BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    idem_key TEXT,
    request_hash TEXT NOT NULL,
    name TEXT,
    module TEXT NOT NULL,
    instrumented_module TEXT NOT NULL,
    runtime TEXT NOT NULL,
    limits TEXT NOT NULL,
    bid INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    retry_backoff_ms INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    requirements TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    queued INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    fuel_used INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
  );
  CREATE UNIQUE INDEX jobs_idempotency ON jobs (caller, idem_key) WHERE idem_key IS NOT NULL;
  CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');
  CREATE TABLE tasks (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    input BLOB NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL DEFAULT 0,
    node_id TEXT,
    lease_expires INTEGER,
    output BLOB,
    fuel INTEGER,
    error TEXT,
    finished_at INTEGER,
    PRIMARY KEY (job_id, idx)
  ) WITHOUT ROWID;
  CREATE INDEX tasks_queued ON tasks (job_id, idx) WHERE state = 'queued';
  CREATE INDEX tasks_lease_expiry ON tasks (lease_expires) WHERE state = 'leased';
  CREATE INDEX tasks_node ON tasks (node_id) WHERE state = 'leased';
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    capabilities TEXT NOT NULL,
    state TEXT NOT NULL,
    pause_reason TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
  );
  CREATE TABLE nonces (
    node_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (node_id, nonce)
  ) WITHOUT ROWID;
  CREATE INDEX nonces_expiry ON nonces (expires_at);
  `,
  // 2: a node's latest session, so a stale connection's close cannot take back a reconnected node's leases
  `ALTER TABLE nodes ADD COLUMN session TEXT;`,
  // 3: money — the ledger (append-only log + balance rows + head), buyers, holds and charges of jobs
  `
  ALTER TABLE jobs ADD COLUMN buyer TEXT;
  ALTER TABLE jobs ADD COLUMN hold_msat TEXT;
  ALTER TABLE jobs ADD COLUMN fees TEXT;
  ALTER TABLE jobs ADD COLUMN settled_at INTEGER;
  CREATE INDEX jobs_unsettled ON jobs (finished_at) WHERE settled_at IS NULL AND finished_at IS NOT NULL;
  ALTER TABLE tasks ADD COLUMN ask INTEGER NOT NULL DEFAULT 0;
  CREATE TABLE job_charges (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    ask INTEGER NOT NULL,
    fuel TEXT NOT NULL,
    fuel_ask TEXT NOT NULL,
    executions INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, node_id, ask)
  ) WITHOUT ROWID;
  CREATE INDEX job_charges_recent ON job_charges (updated_at);
  CREATE TABLE ledger_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, clock INTEGER NOT NULL);
  INSERT INTO ledger_head (id, seq, clock) VALUES (1, 0, 0);
  CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    flags TEXT NOT NULL,
    meta TEXT,
    frozen INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    debits_pending INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    created_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE ledger_account_events (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    account_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL
  );
  CREATE TABLE ledger_transfers (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount INTEGER NOT NULL,
    code TEXT NOT NULL,
    ref TEXT,
    meta TEXT,
    pending_id TEXT UNIQUE,
    timeout INTEGER,
    deadline INTEGER,
    timestamp INTEGER NOT NULL
  );
  CREATE INDEX ledger_transfers_ref ON ledger_transfers (ref) WHERE ref IS NOT NULL;
  CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
  CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);
  CREATE INDEX ledger_transfers_deadline ON ledger_transfers (deadline) WHERE deadline IS NOT NULL;
  -- Transfers are never updated or deleted.
  CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE ON ledger_transfers BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable'); END;
  CREATE TRIGGER ledger_transfers_append_only BEFORE DELETE ON ledger_transfers BEGIN SELECT RAISE(ABORT, 'ledger transfers are append-only'); END;
  `,
  // 4: records — JSON documents by kind (deposits, invoices, withdrawals, payout batches, cursors, keys, identities) — and deposit addresses
  `
  CREATE TABLE records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
  );
  CREATE INDEX records_state ON records (kind, state);
  CREATE TABLE deposit_addresses (
    idx INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER
  );
  CREATE INDEX deposit_addresses_account ON deposit_addresses (account, idx);
  `,
  // 5: governance — a job's policy label and data classes
  `
  ALTER TABLE jobs ADD COLUMN label TEXT;
  ALTER TABLE jobs ADD COLUMN data_classes TEXT;
  `,
  // 6: the audit log — entries (Merkle leaves, append-only), the tree head (size + frontier), signed checkpoints
  `
  CREATE TABLE audit_entries (
    seq INTEGER PRIMARY KEY,
    entry TEXT NOT NULL,
    leaf_hash TEXT NOT NULL
  );
  CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, frontier TEXT NOT NULL);
  INSERT INTO audit_head (id, size, frontier) VALUES (1, 0, '[]');
  CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE TRIGGER audit_entries_immutable BEFORE UPDATE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END;
  CREATE TRIGGER audit_entries_append_only BEFORE DELETE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
  `,
  // 7: result receipts — the stored, self-contained receipt document of a task's accepted result
  `
  ALTER TABLE tasks ADD COLUMN receipt TEXT;
  `,
  // 8: how a job's results are verified (JSON; NULL = trusted)
  `
  ALTER TABLE jobs ADD COLUMN verification TEXT;
  `,
  // 9: issuance inputs, per node and hour, added to by every coordinator for its own agents
  `
  CREATE TABLE issuance_meter (
    node_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    avail_ms INTEGER NOT NULL DEFAULT 0,
    slot_ms INTEGER NOT NULL DEFAULT 0,
    busy_ms INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    paid_msat INTEGER NOT NULL DEFAULT 0,
    cap INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
  );
  CREATE INDEX issuance_meter_hour ON issuance_meter (hour);
  `,
  // 10: receipt batches — a results batch's receipts and both signatures kept once; task rows name their receipt in it
  `
  CREATE TABLE receipt_batches (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // 11: verification by replication — extra executions of a task on other nodes, operators and prefixes; trust streaks per node
  `
  CREATE TABLE task_replicas (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    replica INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    node_id TEXT,
    operator TEXT,
    prefix TEXT,
    lease_expires INTEGER,
    ask INTEGER NOT NULL DEFAULT 0,
    ok INTEGER,
    output BLOB,
    fuel INTEGER,
    error TEXT,
    receipt TEXT,
    finished_at INTEGER,
    PRIMARY KEY (job_id, idx, replica)
  ) WITHOUT ROWID;
  CREATE INDEX task_replicas_queued ON task_replicas (job_id, idx) WHERE state = 'queued';
  CREATE INDEX task_replicas_lease_expiry ON task_replicas (lease_expires) WHERE state = 'leased';
  CREATE INDEX task_replicas_node ON task_replicas (node_id) WHERE state = 'leased';
  CREATE INDEX tasks_verifying ON tasks (job_id, idx) WHERE state = 'verifying';
  CREATE TABLE node_trust (
    node_id TEXT PRIMARY KEY,
    streak INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
];
