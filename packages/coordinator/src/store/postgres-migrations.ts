/**
 * PostgreSQL dialect of ./migrations.ts: the same tables, numbered the same
 * way (version N here is version N there). Append only: never edit a
 * migration that has shipped; add the next number. Each runs in its own
 * transaction with `search_path` set to the store's schema, so names are
 * unqualified.
 *
 * Milliseconds, fuel and bids are BIGINT (pg hands them back as strings; the
 * store parses them to numbers). JSON is TEXT, as in SQLite: it round-trips
 * exactly, and JSONB would refuse a `\u0000` in an agent's error message.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
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
    bytes BYTEA NOT NULL,
    instrumented BYTEA NOT NULL,
    created_at BIGINT NOT NULL
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
    bid BIGINT NOT NULL,
    max_attempts INTEGER NOT NULL,
    retry_backoff_ms BIGINT NOT NULL,
    priority INTEGER NOT NULL,
    requirements TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    queued INTEGER NOT NULL,
    leased INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    fuel_used BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
  );
  CREATE UNIQUE INDEX jobs_idempotency ON jobs (caller, idem_key) WHERE idem_key IS NOT NULL;
  CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');
  CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
  CREATE TABLE tasks (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    input BYTEA NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL DEFAULT 0,
    node_id TEXT,
    lease_expires BIGINT,
    output BYTEA,
    fuel BIGINT,
    error TEXT,
    finished_at BIGINT,
    PRIMARY KEY (job_id, idx)
  );
  -- Keyed on idx + 0 so that only this index, never the primary key, yields queued tasks in order (see SQL.claim).
  CREATE INDEX tasks_queued ON tasks (job_id, (idx + 0)) WHERE state = 'queued';
  CREATE INDEX tasks_lease_expiry ON tasks (lease_expires) WHERE state = 'leased';
  CREATE INDEX tasks_node ON tasks (node_id) WHERE state = 'leased';
  CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    capabilities TEXT NOT NULL,
    state TEXT NOT NULL,
    pause_reason TEXT,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
  );
  CREATE TABLE nonces (
    node_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (node_id, nonce)
  );
  CREATE INDEX nonces_expiry ON nonces (expires_at);
  `,
  // 2: a node's latest session, so a stale connection's close cannot take back a reconnected node's leases
  `ALTER TABLE nodes ADD COLUMN session TEXT;`,
  // 3: money — the ledger (append-only log + balance rows + head), buyers, holds and charges of jobs
  `
  ALTER TABLE jobs ADD COLUMN buyer TEXT;
  ALTER TABLE jobs ADD COLUMN hold_msat TEXT;
  ALTER TABLE jobs ADD COLUMN fees TEXT;
  ALTER TABLE jobs ADD COLUMN settled_at BIGINT;
  CREATE INDEX jobs_unsettled ON jobs (finished_at) WHERE settled_at IS NULL AND finished_at IS NOT NULL;
  ALTER TABLE tasks ADD COLUMN ask BIGINT NOT NULL DEFAULT 0;
  CREATE TABLE job_charges (
    job_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    ask BIGINT NOT NULL,
    fuel NUMERIC NOT NULL,
    fuel_ask NUMERIC NOT NULL,
    executions INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, node_id, ask)
  );
  CREATE INDEX job_charges_recent ON job_charges (updated_at);
  CREATE TABLE ledger_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, clock BIGINT NOT NULL);
  INSERT INTO ledger_head (id, seq, clock) VALUES (1, 0, 0);
  CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    flags TEXT NOT NULL,
    meta TEXT,
    frozen INTEGER NOT NULL,
    debits_posted BIGINT NOT NULL,
    credits_posted BIGINT NOT NULL,
    debits_pending BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    created_seq BIGINT NOT NULL
  );
  CREATE TABLE ledger_account_events (
    seq BIGINT PRIMARY KEY,
    type TEXT NOT NULL,
    account_id TEXT NOT NULL,
    timestamp BIGINT NOT NULL
  );
  CREATE TABLE ledger_transfers (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    code TEXT NOT NULL,
    ref TEXT,
    meta TEXT,
    pending_id TEXT UNIQUE,
    timeout BIGINT,
    deadline BIGINT,
    timestamp BIGINT NOT NULL
  );
  CREATE INDEX ledger_transfers_ref ON ledger_transfers (ref) WHERE ref IS NOT NULL;
  CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
  CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);
  CREATE INDEX ledger_transfers_deadline ON ledger_transfers (deadline) WHERE deadline IS NOT NULL;
  -- Transfers are never updated or deleted.
  CREATE FUNCTION ledger_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'ledger transfers are immutable and append-only'; END $$;
  CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_immutable();
  `,
  // 4: records — JSON documents by kind (deposits, invoices, withdrawals, payout batches, cursors, keys, identities) — and deposit addresses
  `
  CREATE TABLE records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    state TEXT NOT NULL,
    doc TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
  );
  CREATE INDEX records_state ON records (kind, state);
  CREATE TABLE deposit_addresses (
    idx INTEGER PRIMARY KEY,
    address TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
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
    seq BIGINT PRIMARY KEY,
    entry TEXT NOT NULL,
    leaf_hash TEXT NOT NULL
  );
  CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, frontier TEXT NOT NULL);
  INSERT INTO audit_head (id, size, frontier) VALUES (1, 0, '[]');
  CREATE TABLE audit_checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL, created_at BIGINT NOT NULL);
  CREATE FUNCTION audit_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit entries are immutable and append-only'; END $$;
  CREATE TRIGGER audit_entries_immutable BEFORE UPDATE OR DELETE ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_entries_immutable();
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
    hour BIGINT NOT NULL,
    avail_ms BIGINT NOT NULL DEFAULT 0,
    slot_ms BIGINT NOT NULL DEFAULT 0,
    busy_ms BIGINT NOT NULL DEFAULT 0,
    accepted BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    paid_msat BIGINT NOT NULL DEFAULT 0,
    cap BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, hour)
  );
  CREATE INDEX issuance_meter_hour ON issuance_meter (hour);
  `,
  // 10: receipt batches — a results batch's receipts and both signatures kept once; task rows name their receipt in it
  `
  CREATE TABLE receipt_batches (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    created_at BIGINT NOT NULL
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
    lease_expires BIGINT,
    ask BIGINT NOT NULL DEFAULT 0,
    ok BOOLEAN,
    output BYTEA,
    fuel BIGINT,
    error TEXT,
    receipt TEXT,
    finished_at BIGINT,
    PRIMARY KEY (job_id, idx, replica)
  );
  CREATE INDEX task_replicas_queued ON task_replicas (job_id, idx) WHERE state = 'queued';
  CREATE INDEX task_replicas_lease_expiry ON task_replicas (lease_expires) WHERE state = 'leased';
  CREATE INDEX task_replicas_node ON task_replicas (node_id) WHERE state = 'leased';
  CREATE INDEX tasks_verifying ON tasks (job_id, idx) WHERE state = 'verifying';
  CREATE TABLE node_trust (
    node_id TEXT PRIMARY KEY,
    streak INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
  );
  `,
];
