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
  IM_RATE_LIMITED: { status: 429, message: 'Too many requests; retry after the given delay.', retryable: true },
  IM_UNAVAILABLE: { status: 503, message: 'The service is shutting down or not ready; retry shortly.', retryable: true },
  IM_INTERNAL: { status: 500, message: 'Internal error; the request may be retried. Report it if it persists.', retryable: true },

  // Signatures and replay protection
  IM_BAD_SIGNATURE: { status: 401, message: 'The signature does not verify against the node key.', retryable: false },
  IM_REPLAYED: { status: 401, message: 'This signed message (nonce) was already seen; sign a fresh message.', retryable: false },
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

  // Jobs and leases
  IM_JOB_CANCELLED: { status: 409, message: 'The job was cancelled.', retryable: false },
  IM_JOB_FINISHED: { status: 409, message: 'The job has already finished.', retryable: false },
  IM_LEASE_LOST: { status: 409, message: 'The lease is no longer held by this agent (expired, handed back or already completed).', retryable: false },
  IM_DUPLICATE_RESULT: { status: 409, message: 'A result for this task was already accepted.', retryable: false },

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
