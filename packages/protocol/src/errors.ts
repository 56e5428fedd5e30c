/**
 * The one error catalogue. Every error that leaves a process (HTTP body,
 * WebSocket message, CLI exit) carries one of these codes. Codes are stable:
 * never rename or reuse one; add new ones. `docs/errors.md` lists them all and
 * a test keeps the two in step.
 */

export interface ErrorSpec {
  /** HTTP status when the error answers an HTTP request. */
  readonly status: number;
  /** What happened and what to do about it. */
  readonly message: string;
  /** Whether the same request may succeed if sent again later. */
  readonly retryable: boolean;
}

export const ERRORS = {
  // Request shape
  IM_BAD_REQUEST: { status: 400, message: 'The request is malformed; check it against /openapi.json.', retryable: false },
  IM_VALIDATION: { status: 400, message: 'The request failed validation; see details for the offending fields.', retryable: false },
  IM_UNKNOWN_FIELD: { status: 400, message: 'The request has fields this API does not know; remove them (see details).', retryable: false },
  IM_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than the coordinator accepts; split the job or raise bodyLimit.', retryable: false },
  IM_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type; send application/json (or application/wasm for modules).', retryable: false },
  IM_NOT_FOUND: { status: 404, message: 'No such resource.', retryable: false },
  IM_ROUTE_NOT_FOUND: { status: 404, message: 'No such endpoint; see /openapi.json.', retryable: false },
  IM_METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed on this endpoint.', retryable: false },
  IM_IDEMPOTENCY_CONFLICT: { status: 409, message: 'This idempotency key was already used with a different request body; use a new key.', retryable: false },
  IM_CONFLICT: { status: 409, message: 'The resource is not in a state that allows this.', retryable: false },
  IM_UNAUTHORIZED: { status: 401, message: 'Missing or invalid credentials.', retryable: false },
  IM_FORBIDDEN: { status: 403, message: 'The credentials are valid but their role or organisation may not do this; see the message for the roles needed.', retryable: false },
  IM_KEY_REVOKED: { status: 401, message: 'This API key was revoked; ask an admin of your organisation for a new one.', retryable: false },
  IM_BOOTSTRAP_DONE: { status: 409, message: 'The coordinator already has its first admin; bootstrap tokens work once. Ask an admin for an API key.', retryable: false },
  IM_RATE_LIMITED: { status: 429, message: 'Too many requests; retry after the given delay.', retryable: true },
  IM_UNAVAILABLE: { status: 503, message: 'The service is shutting down or not ready; retry shortly.', retryable: true },
  IM_INTERNAL: { status: 500, message: 'Internal error; the request may be retried. Report it if it persists.', retryable: true },

  // Signatures and replay protection
  IM_BAD_SIGNATURE: { status: 401, message: 'The signature does not verify against the node key.', retryable: false },
  IM_REPLAYED: { status: 401, message: 'This signed message (nonce) was already seen; sign a fresh message.', retryable: false },
  IM_RECEIPT_MISMATCH: { status: 400, message: 'The signed receipt tree head does not match the results sent with it.', retryable: false },
  IM_ISSUANCE_MISMATCH: { status: 409, message: 'The published epoch does not recompute: an input, output, root or signature differs.', retryable: false },
  IM_RECEIPT_INVALID: { status: 400, message: 'The receipt does not verify: changed, or signed by another key.', retryable: false },
  IM_UNVERIFIABLE: { status: 422, message: 'The task\'s results never agreed (no quorum within maxTotalResults, and no referee could settle it); resubmit it, or verify with spot-check.', retryable: false },
  IM_STALE_TIMESTAMP: { status: 401, message: 'The signed timestamp is too far from the coordinator clock; check the system clock.', retryable: false },
  IM_PROTOCOL_VERSION: { status: 400, message: 'Unsupported protocol version; upgrade the agent or coordinator.', retryable: false },

  // WebAssembly modules
  IM_WASM_INVALID: { status: 400, message: 'The module is not valid WebAssembly.', retryable: false },
  IM_WASM_BANNED_IMPORT: { status: 400, message: 'The module imports something outside the task ABI (idlemesh.*) or WASI stdin/stdout; see docs/wasm-abi.md.', retryable: false },
  IM_WASM_NO_ENTRY: { status: 400, message: 'The module exports neither run (task ABI) nor _start (WASI).', retryable: false },
  IM_WASM_MEMORY_LIMIT: { status: 400, message: 'The module needs more memory than the job allows.', retryable: false },
  IM_WASM_TOO_LARGE: { status: 413, message: 'The module is larger than the coordinator accepts.', retryable: false },
  IM_MODULE_NOT_FOUND: { status: 404, message: 'No module with this hash; upload it first (POST /v1/modules).', retryable: false },

  // Task execution (reported by agents)
  IM_FUEL_EXHAUSTED: { status: 422, message: 'The task used all its fuel; raise the job fuel limit.', retryable: false },
  IM_TRAP: { status: 422, message: 'The module trapped while running the task.', retryable: false },
  IM_MEMORY_EXCEEDED: { status: 422, message: 'The task tried to use more memory than allowed.', retryable: false },
  IM_OUTPUT_TOO_LARGE: { status: 422, message: 'The task wrote more output than allowed.', retryable: false },
  IM_EXIT_NONZERO: { status: 422, message: 'The WASI program exited with a non-zero status.', retryable: false },
  IM_TIMEOUT: { status: 504, message: 'The task ran past its wall-clock backstop and was stopped.', retryable: true },
  IM_LEASE_EXPIRED: { status: 504, message: 'The agent running the task went away; the task was leased again until attempts ran out.', retryable: true },
  IM_AGENT_ERROR: { status: 500, message: 'The agent failed to run the task for a reason of its own.', retryable: true },
  IM_CANCELLED: { status: 499, message: 'The request was cancelled: the client went away or cancelled the job.', retryable: false },

  // Jobs and leases
  IM_JOB_CANCELLED: { status: 409, message: 'The job was cancelled.', retryable: false },
  IM_JOB_FINISHED: { status: 409, message: 'The job has already finished.', retryable: false },
  IM_LEASE_LOST: { status: 409, message: 'The lease is no longer held by this agent (expired, handed back or already completed).', retryable: false },
  IM_DUPLICATE_RESULT: { status: 409, message: 'A result for this task was already accepted.', retryable: false },

  // Ledger (packages/coordinator/src/ledger)
  IM_LEDGER_ID_CONFLICT: { status: 409, message: 'A transfer with this id already exists with different fields; transfer ids are idempotency keys, so use a new id for a new transfer.', retryable: false },
  IM_LEDGER_ACCOUNT_CONFLICT: { status: 409, message: 'An account with this id already exists with a different kind, flags or metadata; choose another id.', retryable: false },
  IM_LEDGER_ACCOUNT_NOT_FOUND: { status: 404, message: 'The transfer names an account the ledger does not have; create the account first.', retryable: false },
  IM_LEDGER_SAME_ACCOUNT: { status: 400, message: 'A transfer must debit and credit two different accounts.', retryable: false },
  IM_LEDGER_INVALID_AMOUNT: { status: 400, message: 'Amounts are positive whole msat (a bigint no larger than 2^63-1).', retryable: false },
  IM_LEDGER_INVALID_TRANSFER: { status: 400, message: 'The transfer is malformed (id, type, code, ref or timeout); see details.', retryable: false },
  IM_LEDGER_INVALID_ACCOUNT: { status: 400, message: 'The account is malformed (id, kind or flags); see details.', retryable: false },
  IM_LEDGER_INSUFFICIENT_FUNDS: { status: 402, message: 'The debit account does not have enough available funds (posted credits minus posted and pending debits); fund it or lower the amount.', retryable: false },
  IM_LEDGER_CREDITS_EXCEED_DEBITS: { status: 409, message: 'The credit account may not be credited more than it has been debited (a source account such as treasury or deposits-in-flight).', retryable: false },
  IM_LEDGER_OVERFLOW: { status: 409, message: 'The transfer would push a balance beyond 2^63-1 msat.', retryable: false },
  IM_LEDGER_ACCOUNT_FROZEN: { status: 423, message: 'The debit account is frozen and takes no debits; pending transfers on it may still be voided.', retryable: false },
  IM_LEDGER_PENDING_NOT_FOUND: { status: 404, message: 'No pending transfer with this id; post and void must name an existing pending transfer.', retryable: false },
  IM_LEDGER_NOT_PENDING: { status: 409, message: 'The referenced transfer is not a pending transfer, so it cannot be posted or voided.', retryable: false },
  IM_LEDGER_PENDING_RESOLVED: { status: 409, message: 'The pending transfer was already posted or voided; a pending transfer is resolved at most once.', retryable: false },
  IM_LEDGER_PENDING_EXPIRED: { status: 409, message: 'The pending transfer passed its timeout and was voided; create a new pending transfer.', retryable: false },
  IM_LEDGER_POST_EXCEEDS_PENDING: { status: 400, message: 'A post may not move more than the pending amount; post at most the amount held.', retryable: false },
  IM_LEDGER_LINKED_EVENT_FAILED: { status: 409, message: 'Another event of the same linked chain failed, so none of the chain was applied; fix that event and resubmit the chain.', retryable: false },
  IM_LEDGER_LINKED_CHAIN_OPEN: { status: 400, message: 'The batch ends with a linked event, so its chain is not closed; clear `linked` on the last event of each chain.', retryable: false },
  IM_LEDGER_FRACTIONAL_SAT: { status: 400, message: 'On-chain amounts are whole sats; this msat amount is not a multiple of 1000.', retryable: false },
  IM_LEDGER_INVALID_ARGUMENT: { status: 400, message: 'An argument of the ledger or pricing core is out of range (clock, basis points, fuel, price or count); see details.', retryable: false },
  IM_LEDGER_BOND_NOT_FOUND: { status: 404, message: 'No bond with this id.', retryable: false },
  IM_LEDGER_BOND_STATE: { status: 409, message: 'The bond is not in a state that allows this (already unbonding, not unbonding, released or fully slashed).', retryable: false },
  IM_LEDGER_BOND_LOCKED: { status: 409, message: 'The bond is still in its unbonding period; release it after the unlock time.', retryable: true },

  // Settlement: balances, market, withdrawals
  IM_INSUFFICIENT_BALANCE: { status: 402, message: 'The buyer balance cannot cover the job\'s maximum cost (the escrow hold); details give the hold, the available balance and the shortfall. Deposit, lower the bid or fuel limit, or split the job.', retryable: false },
  IM_ACCOUNT_NOT_FOUND: { status: 404, message: 'No such account; an account exists once money has moved to it.', retryable: false },
  IM_WITHDRAWAL_NOT_FOUND: { status: 404, message: 'No such withdrawal.', retryable: false },
  IM_WITHDRAWAL_STATE: { status: 409, message: 'The withdrawal or payout batch is not in a state that allows this.', retryable: false },
  IM_DEV_ONLY: { status: 403, message: 'Dev-only operation (dev fund): the coordinator must run with --network regtest; it is refused on mainnet, testnet and signet.', retryable: false },
  IM_SETTLEMENT_DISABLED: { status: 409, message: 'The coordinator has no treasury configured for this (no account key, chain backend or Lightning node); see docs/settlement.md.', retryable: false },

  // Bitcoin and Lightning
  IM_BTC_INVALID_ADDRESS: { status: 400, message: 'Not a valid bitcoin address (checksum, encoding or unsupported script type).', retryable: false },
  IM_BTC_WRONG_NETWORK: { status: 400, message: 'The address, key or invoice belongs to another bitcoin network than the coordinator\'s.', retryable: false },
  IM_BTC_INVALID_KEY: { status: 400, message: 'The extended public key is malformed or not an account-level BIP84 key (xpub/zpub, tpub/vpub).', retryable: false },
  IM_BTC_BELOW_DUST: { status: 400, message: 'The amount is below the minimum withdrawal (above the dust limit, plus fees); withdraw more.', retryable: false },
  IM_BTC_INVALID_AMOUNT: { status: 400, message: 'Amounts are positive whole numbers (sats on chain, msat in the ledger); negative, fractional or out-of-range amounts are refused.', retryable: false },
  IM_BTC_INSUFFICIENT_UTXOS: { status: 409, message: 'The treasury\'s confirmed coins cannot fund this payout batch and its fee; the batch waits for deposits.', retryable: true },
  IM_BTC_PSBT_INVALID: { status: 400, message: 'The PSBT cannot be parsed, or is not finalized/signed where that is required.', retryable: false },
  IM_BTC_PSBT_MISMATCH: { status: 409, message: 'The PSBT does not pay exactly the approved payouts (an output, amount, input or change differs): it is tampered or foreign; nothing was broadcast.', retryable: false },
  IM_BTC_CHAIN_UNAVAILABLE: { status: 503, message: 'The chain backend (Esplora or bitcoind) could not be reached; retried later.', retryable: true },
  IM_BTC_CHAIN_BAD_RESPONSE: { status: 502, message: 'The chain backend answered something that does not follow its API; see details.', retryable: true },
  IM_LN_INVALID_INVOICE: { status: 400, message: 'Not a valid BOLT11 invoice (encoding, checksum, expiry or missing amount).', retryable: false },
  IM_LN_UNAVAILABLE: { status: 503, message: 'The Lightning node (LND or Core Lightning) could not be reached; retried later.', retryable: true },
  IM_LN_ERROR: { status: 502, message: 'The Lightning node refused the request or answered outside its API; see details.', retryable: false },

  // Split inference (llamacpp-rpc engine)
  IM_TUNNEL_AUTH: { status: 401, message: 'The split tunnel handshake failed: the peer is not the expected node, is not in the group, or a frame did not authenticate; the stream was closed.', retryable: false },
  IM_TUNNEL_CLOSED: { status: 503, message: 'The split tunnel to a peer closed or timed out; the group is rebuilt or the stage replaced.', retryable: true },
  IM_SPLIT_BUILD_FAILED: { status: 500, message: 'Building llama.cpp (ggml-rpc-server, llama-server) failed; needs cmake, git and a C++ compiler; see details for the build output.', retryable: false },
  IM_SPLIT_STAGE_FAILED: { status: 503, message: 'A split stage or the split head failed and could not be replaced; retry when the group is rebuilt.', retryable: true },

  // Split inference (pipeline engine)
  IM_GGUF_INVALID: { status: 400, message: 'The file is not a usable GGUF model (bad magic or version, truncated, a tensor outside the file or of the wrong shape, or an unsupported tensor type); see the message.', retryable: false },
  IM_PIPELINE_FRAME: { status: 400, message: 'A pipeline frame is malformed (magic, version, kind, type or length) or does not fit this stage (width, token id, kind); the peers run different versions or the bytes were cut.', retryable: false },
  IM_PIPELINE_POSITION: { status: 409, message: 'The stage\'s KV cache does not reach the frame\'s position (it restarted or lost its state); reset the stage and replay its inputs from position 0.', retryable: false },

  // Split inference in the mesh (pipeline engine: groups, relayed frames)
  IM_SPLIT_NOT_MEMBER: { status: 403, message: 'Stage frames go only between members of the same split group: the sender or the stage is not in the group (it was rebuilt); take the current plan from a new request.', retryable: false },
  IM_SPLIT_STAGE_GONE: { status: 503, message: 'The agent holding this split stage disconnected or did not answer; the coordinator gives its layers to a spare agent and the head replays into it.', retryable: true },
  IM_SPLIT_NO_GROUP: { status: 503, message: 'No split group can serve the model now: the opted-in agents together lack the memory, or a stage has no replacement; add agents with --split-memory.', retryable: true },

  // Configuration and CLI
  IM_CONFIG_INVALID: { status: 400, message: 'The configuration is invalid; see details.', retryable: false },
  IM_CLI_USAGE: { status: 400, message: 'Invalid command-line usage; see --help.', retryable: false },
  IM_INPUT_INVALID: { status: 400, message: 'The input file is invalid; see details for the line.', retryable: false },
  IM_CONNECTION_FAILED: { status: 503, message: 'Could not reach the coordinator; check the URL and that it is running.', retryable: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** The plain-data shape of an error on the wire. */
export interface WireError {
  code: ErrorCode | string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
  details?: unknown;
}

export class ImError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, opts: { details?: unknown; retryAfterMs?: number; cause?: unknown } = {}) {
    const spec = ERRORS[code];
    super(message ?? spec.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ImError';
    this.code = code;
    this.status = spec.status;
    this.retryable = spec.retryable;
    this.retryAfterMs = opts.retryAfterMs;
    this.details = opts.details;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.retryAfterMs !== undefined) wire.retryAfterMs = this.retryAfterMs;
    if (this.details !== undefined) wire.details = this.details;
    return wire;
  }

  static fromWire(wire: WireError, status?: number): ImError {
    const code: ErrorCode = isErrorCode(wire.code) ? wire.code : 'IM_INTERNAL';
    const opts: { details?: unknown; retryAfterMs?: number } = {};
    if (wire.details !== undefined) opts.details = wire.details;
    if (wire.retryAfterMs !== undefined) opts.retryAfterMs = wire.retryAfterMs;
    const err = new ImError(code, wire.message, opts);
    if (status !== undefined && status !== err.status) Object.defineProperty(err, 'status', { value: status });
    return err;
  }
}

export function errorFrom(code: ErrorCode, message?: string, details?: unknown): WireError {
  return new ImError(code, message, details === undefined ? {} : { details }).toWire();
}
