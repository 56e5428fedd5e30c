/**
 * Wire schemas: every HTTP body and WebSocket message, version 1.
 * Objects are strict: unknown fields are refused, so a typo never passes
 * silently. The OpenAPI document is generated from these (see openapi.ts).
 */
import { z } from 'zod';

// v2: results carry receipts; the agent signs the head of their Merkle tree.
export const PROTOCOL_VERSION = 2;

export const Hash = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');
export const NodeId = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex ed25519 public key');
export const JobId = z.string().regex(/^job_[0-9a-z]{20,40}$/, 'a job id such as job_…');
export const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
export const TaskId = z.string().regex(/^job_[0-9a-z]{20,40}\/\d+$/, 'jobId/index');
export const Millis = z.number().int().nonnegative();

export const WireErrorSchema = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  retryAfterMs: z.number().int().nonnegative().optional(),
  details: z.unknown().optional(),
});
export const ErrorBody = z.object({ error: WireErrorSchema });

// ---- Modules -------------------------------------------------------------

export const ModuleAbi = z.enum(['idlemesh/1', 'wasi_snapshot_preview1']);
export type ModuleAbi = z.infer<typeof ModuleAbi>;

export const ModuleInfo = z.strictObject({
  hash: Hash.describe('sha256 of the module as uploaded'),
  instrumentedHash: Hash.describe('sha256 of the fuel-instrumented module that agents run'),
  size: z.number().int(),
  instrumentedSize: z.number().int(),
  abi: ModuleAbi,
  memory: z.strictObject({ initialPages: z.number().int(), maxPages: z.number().int() }),
  createdAt: Millis,
});
export type ModuleInfo = z.infer<typeof ModuleInfo>;

// ---- Jobs ----------------------------------------------------------------

/**
 * `wasm`: metered WebAssembly tasks. `llm`: one inference request per task,
 * created by the OpenAI-compatible API (never submitted as a job) and leased
 * to an agent that serves the model named by the task's module (its hash).
 */
export const Runtime = z.enum(['wasm', 'llm', 'python', 'js']);

/**
 * `python` and `js` are code-evaluation runtimes (Pyodide, QuickJS): a task's
 * input is a CodeEvalInput (JSON), its output a CodeEvalOutput. Their jobs
 * name no uploaded module: the module is the runtime's own id below.
 */
export const CODE_RUNTIMES = ['python', 'js'] as const;
export const CODE_RUNTIME_MODULE: Record<(typeof CODE_RUNTIMES)[number], string> = {
  python: '7079746f6e2d636f64652d6576616c2d31000000000000000000000000000000',
  js: '6a732d636f64652d6576616c2d31000000000000000000000000000000000000',
};
export const CodeEvalInput = z.strictObject({
  program: z.string().max(1_000_000).describe('the candidate program'),
  tests: z.string().max(1_000_000).describe('test code run after it in the same interpreter; passes when it raises nothing'),
  seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
});
export type CodeEvalInput = z.infer<typeof CodeEvalInput>;
export const CodeEvalOutput = z.strictObject({
  verdict: z.enum(['passed', 'failed', 'timed-out', 'errored']),
  stdout: z.string(),
  stderr: z.string(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
});
export type CodeEvalOutput = z.infer<typeof CodeEvalOutput>;
export type Runtime = z.infer<typeof Runtime>;

export const JobLimits = z.strictObject({
  fuel: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).describe('fuel per task (1 EU = 1e9 fuel)'),
  memoryMb: z.number().int().min(1).max(4096).describe('linear memory cap per task'),
  timeoutMs: z.number().int().min(10).max(3_600_000).describe('wall-clock backstop per task'),
  // Base64 in one signed results message must stay under MAX_AGENT_MESSAGE_BYTES.
  outputBytes: z.number().int().min(0).max(16 * 1024 * 1024).describe('max output per task'),
});
export type JobLimits = z.infer<typeof JobLimits>;

export const Requirements = z.strictObject({
  minMemoryMb: z.number().int().nonnegative().optional(),
  minCores: z.number().int().nonnegative().optional(),
});
export type Requirements = z.infer<typeof Requirements>;

/** BOINC's replication fields: agreeing results needed, sent at first, and at most before the referee settles it. */
const Replication = {
  minQuorum: z.number().int().min(1).max(10).default(2),
  targetResults: z.number().int().min(1).max(10).default(2),
  maxTotalResults: z.number().int().min(1).max(20).default(5),
};

/**
 * How a job's results are verified. `trusted`: accepted as is (your own
 * machines). `spot-check`: the coordinator re-executes a random fraction
 * `rate` of accepted results as the referee; a contradicted receipt is proof
 * of fraud. `replicate`: every task runs on `targetResults` nodes of distinct
 * operators and IP prefixes until `minQuorum` agree on output and effort;
 * disputes go to the referee. `adaptive`: replicated until the node earned
 * `trustStreak` valid replicated results in a row, then with probability
 * 1/streak. `optimistic`: accepted at once, earnings pending for `windowMs`;
 * the referee re-executes a fraction `rate`, and a contradiction voids the
 * operator's pending earnings and re-runs its results still in the window
 * (see docs/verification.md).
 */
export const Verification = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('trusted') }),
  z.strictObject({ mode: z.literal('spot-check'), rate: z.number().min(0).max(1).default(0.05) }),
  z.strictObject({ mode: z.literal('replicate'), ...Replication }),
  z.strictObject({ mode: z.literal('adaptive'), ...Replication, trustStreak: z.number().int().min(1).max(1000).default(10) }),
  z.strictObject({
    mode: z.literal('optimistic'), rate: z.number().min(0).max(1).default(0.1),
    windowMs: z.number().int().min(1000).max(30 * 24 * 3_600_000).default(3_600_000),
  }),
]);
export type Verification = z.infer<typeof Verification>;

export const SubmitJobBody = z.strictObject({
  module: Hash.optional().describe('hash of an uploaded module (POST /v1/modules); not for the python and js runtimes'),
  runtime: Runtime.default('wasm'),
  name: z.string().max(200).optional(),
  inputs: z.array(Base64).min(1).max(1_000_000).describe('one base64 input per task'),
  limits: JobLimits.partial().optional(),
  bid: z.number().int().nonnegative().optional().describe('max msat per EU the buyer pays'),
  label: z.enum(['private', 'overflow', 'public']).optional().describe("where it may run (organisation policy); default: the policy's defaultLabel"),
  dataClasses: z.array(z.string().min(1).max(64)).max(20).optional().describe('data classes of the inputs; the policy may keep some inside the organisation'),
  maxAttempts: z.number().int().min(1).max(20).optional(),
  retryBackoffMs: z.number().int().min(0).max(3_600_000).optional(),
  priority: z.number().int().min(1).max(100).optional().describe('fair-share weight'),
  requirements: Requirements.optional(),
  idempotencyKey: z.string().min(1).max(200).optional(),
  verification: Verification.optional().describe("how results are verified; default: the coordinator's --verify"),
});
export type SubmitJobBody = z.input<typeof SubmitJobBody>;

export const JobState = z.enum(['queued', 'running', 'completed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;

export const JobCounts = z.strictObject({
  total: z.number().int(),
  queued: z.number().int(),
  leased: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
});
export type JobCounts = z.infer<typeof JobCounts>;

export const JobView = z.strictObject({
  id: JobId,
  name: z.string().optional(),
  state: JobState,
  module: Hash,
  runtime: Runtime,
  limits: JobLimits,
  bid: z.number().int(),
  maxAttempts: z.number().int(),
  retryBackoffMs: z.number().int(),
  priority: z.number().int(),
  requirements: Requirements,
  counts: JobCounts,
  fuelUsed: z.number().int().describe('fuel of accepted results, summed'),
  createdAt: Millis,
  updatedAt: Millis,
  finishedAt: Millis.optional(),
  buyer: z.string().optional().describe('the ledger account charged (paid jobs)'),
  holdMsat: z.string().regex(/^\d+$/).optional().describe('escrow held at submit for the max cost, msat'),
  settledAt: Millis.optional().describe('when the charges were settled in the ledger'),
  label: z.string().optional(),
  dataClasses: z.array(z.string()).optional(),
  verification: Verification.optional(),
});
export type JobView = z.infer<typeof JobView>;

export const JobList = z.strictObject({ jobs: z.array(JobView) });

export const TaskState = z.enum(['queued', 'leased', 'succeeded', 'failed', 'cancelled']);
export type TaskState = z.infer<typeof TaskState>;

export const TaskResultView = z.strictObject({
  index: z.number().int(),
  state: TaskState,
  output: Base64.optional(),
  fuel: z.number().int().optional(),
  error: WireErrorSchema.optional(),
  attempts: z.number().int(),
  nodeId: NodeId.optional(),
  finishedAt: Millis.optional(),
});
export type TaskResultView = z.infer<typeof TaskResultView>;

export const ResultsPage = z.strictObject({
  results: z.array(TaskResultView),
  next: z.number().int().nullable().describe('pass as ?after= for the next page; null at the end'),
});
export type ResultsPage = z.infer<typeof ResultsPage>;

export const ResultsQuery = z.strictObject({
  after: z.coerce.number().int().min(-1).default(-1),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  state: TaskState.optional(),
  wait: z.coerce.number().int().min(0).max(60_000).optional().describe('hold the request until the job ends, up to this many ms (long poll)'),
});
export const SubmitQuery = z.strictObject({
  wait: z.coerce.number().int().min(0).max(60_000).optional().describe('hold the request until the job ends, up to this many ms; the answer then carries the first page of results'),
});
/** A submitted job; with ?wait= and a job that ended in time, its first page of results too. */
export const SubmittedJob = JobView.extend({
  results: z.array(TaskResultView).optional().describe('present when ?wait= was given and the job ended within it'),
  next: z.number().int().nullable().optional().describe('as in ResultsPage: pass as ?after= to GET /v1/jobs/{id}/results for the rest'),
});
export type SubmittedJob = z.infer<typeof SubmittedJob>;
export const JobsQuery = z.strictObject({
  state: JobState.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** Server-sent events on GET /v1/jobs/:id/events. */
export const JobEvent = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('progress'), job: JobView }),
  z.strictObject({ type: z.literal('end'), job: JobView }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

// ---- Nodes ---------------------------------------------------------------

export const Gpu = z.strictObject({ name: z.string().max(200), memoryMb: z.number().int().nonnegative() });

/** Weight of a model's tokens in effort (and price): by parameter count. */
export const ModelSizeClass = z.enum(['xs', 's', 'm', 'l', 'xl']);
export type ModelSizeClass = z.infer<typeof ModelSizeClass>;
export const SIZE_CLASS_WEIGHT: Record<ModelSizeClass, number> = { xs: 1, s: 2, m: 4, l: 8, xl: 16 };
/** Fuel per token of a weight-1 model: 1,000 tokens of an `xs` model are one EU (FUEL_PER_EU = 1e9). */
export const FUEL_PER_TOKEN = 1_000_000;

/** A model an agent serves. */
export const ModelOffer = z.strictObject({
  id: z.string().min(1).max(200).regex(/^[\w.:/-]+$/, 'letters, digits and . _ : / -'),
  hash: Hash.describe('sha256 of the model file (GGUF); backends without a file give a hash of their id'),
  sizeClass: ModelSizeClass,
  contextSize: z.number().int().min(1).max(10_000_000),
  device: z.enum(['gpu', 'cpu']),
  backend: z.enum(['llama.cpp', 'openai']),
  tokensPerSec: z.number().nonnegative().optional(),
  licence: z.string().min(1).max(200).optional().describe("the model's licence as its file states it (GGUF general.license)"),
});
export type ModelOffer = z.infer<typeof ModelOffer>;

// ---- Split inference (issue 10): a model served by a group of agents, each holding a range of its layers.

/** How a split group runs: `pipeline` (our TypeScript engine, hidden states relayed as frames) or `llamacpp-rpc`. */
export const SplitEngine = z.enum(['pipeline', 'llamacpp-rpc']);
export type SplitEngine = z.infer<typeof SplitEngine>;

/** An agent's offer to host part of a model (`idlemesh agent --split-model x.gguf --split-memory 6GB`). */
export const SplitOffer = z.strictObject({
  engine: SplitEngine,
  model: ModelOffer.shape.id.describe('the model id clients ask for: the GGUF file name without .gguf'),
  hash: Hash.describe('sha256 of the GGUF: only agents holding the same file form a group'),
  blocks: z.number().int().min(1).max(100_000).describe('the model\'s layers (llama.block_count)'),
  layerBytes: z.number().int().min(1).describe('memory one layer takes on a stage: its weights as loaded plus its KV cache'),
  edgeBytes: z.number().int().min(0).describe('memory the ends take on top (embedding, final norm, head); every stage keeps room for them'),
  memoryBytes: z.number().int().min(1).describe('memory the owner lends to split stages (--split-memory)'),
  contextSize: z.number().int().min(1).max(10_000_000),
  sizeClass: ModelSizeClass,
});
export type SplitOffer = z.infer<typeof SplitOffer>;

/** The largest stage frame relayed through the coordinator (a prompt's hidden states, a replay, logits). */
export const MAX_STAGE_FRAME_BYTES = 16 * 1024 * 1024;
const StageFrameData = Base64.max(Math.ceil(MAX_STAGE_FRAME_BYTES / 3) * 4);
/** What a frame asks of a stage: run a frame, empty the request's KV cache, or free it (the request ended). */
export const StageOp = z.enum(['forward', 'reset', 'end']);
export type StageOp = z.infer<typeof StageOp>;
export const GroupId = z.string().regex(/^grp_[0-9a-z]{8,40}$/, 'a split group id such as grp_…');
/** A stage of a split group: the node and the layers [from, to) it holds. */
export const StagePlan = z.strictObject({ nodeId: NodeId, from: z.number().int().min(0), to: z.number().int().min(1) });
export type StagePlan = z.infer<typeof StagePlan>;

// Engine llamacpp-rpc: byte streams between two members of a group, relayed by the coordinator. The
// bytes are the split tunnel's ciphertext (end to end between the agents' node keys): the coordinator
// checks membership and sizes, and cannot read or forge them.
/** The largest chunk of one relayed tunnel stream per message (larger writes are cut). */
export const MAX_TUNNEL_CHUNK_BYTES = 1024 * 1024;
const TunnelData = Base64.max(Math.ceil(MAX_TUNNEL_CHUNK_BYTES / 3) * 4);
/** A relayed stream's id, chosen by the opener (agent side) or the coordinator (stage side); unique per connection. */
export const TunnelStreamId = z.string().regex(/^[a-z0-9]{1,32}$/, 'a stream id such as o12');
const TunnelError = z.strictObject({ code: z.string().max(64), message: z.string().max(2000) });
/** Tunnel messages an agent sends (the opener: the head; either side: data and close). */
export const TunnelAgentMessages = [
  z.strictObject({ type: z.literal('tunnel-open'), group: GroupId, to: NodeId, stream: TunnelStreamId })
    .describe('open a byte stream to another member of the group (a split stage); refused with tunnel-close IM_SPLIT_NOT_MEMBER unless both are members'),
  z.strictObject({ type: z.literal('tunnel-data'), stream: TunnelStreamId, data: TunnelData }).describe('bytes on an open relayed stream'),
  z.strictObject({ type: z.literal('tunnel-close'), stream: TunnelStreamId, error: TunnelError.optional() }).describe('this side ended the stream'),
] as const;
/** Tunnel messages the coordinator sends, and the group's current stages (who may tunnel to whom). */
export const TunnelServerMessages = [
  z.strictObject({ type: z.literal('tunnel-open'), group: GroupId, from: NodeId, stream: TunnelStreamId })
    .describe('a member opened a stream to this agent: run the tunnel handshake on it (allow-list: the group\'s members)'),
  z.strictObject({ type: z.literal('tunnel-data'), stream: TunnelStreamId, data: TunnelData }),
  z.strictObject({ type: z.literal('tunnel-close'), stream: TunnelStreamId, error: WireErrorSchema.optional() }),
  z.strictObject({ type: z.literal('split-members'), group: GroupId, stages: z.array(StagePlan).max(1024) })
    .describe('the stages of the split group this agent belongs to, sent when they change: the tunnel allow-list, and where the head finds each stage'),
] as const;

export const Capabilities = z.strictObject({
  runtimes: z.array(Runtime).min(1),
  cores: z.number().int().min(1).max(4096),
  memoryMb: z.number().int().min(1),
  arch: z.string().max(32),
  os: z.string().max(32),
  gpus: z.array(Gpu).max(64),
  maxTasks: z.number().int().min(1).max(1024).describe('tasks run at once'),
  benchmark: z.strictObject({ fuelPerSec: z.number().nonnegative() }).describe('calibration score'),
  agentVersion: z.string().max(64),
  name: z.string().max(200).optional(),
  ask: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional().describe('msat per EU the operator asks; 0 or absent = free'),
  region: z.string().min(1).max(64).optional().describe("where the machine is (an org policy may allow only some regions)"),
  models: z.array(ModelOffer).max(64).optional().describe('LLMs this agent serves (OpenAI-compatible API)'),
  split: SplitOffer.optional().describe('a model this agent hosts part of in a split group'),
});
export type Capabilities = z.infer<typeof Capabilities>;

export const NodeState = z.enum(['online', 'paused', 'draining', 'offline']);
export type NodeState = z.infer<typeof NodeState>;

export const NodeView = z.strictObject({
  id: NodeId,
  state: NodeState,
  pauseReason: z.string().optional(),
  capabilities: Capabilities,
  running: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  firstSeen: Millis,
  lastSeen: Millis,
  org: z.string().optional().describe("the organisation whose private pool the node is in"),
  domain: z.string().optional().describe('the capacity domain it enrolled with'),
  availability: z.number().min(0).max(1).optional().describe("share of the latest issuance epoch's 24-hour window the node was available"),
  reliability: z.number().min(0).max(1).optional().describe("accepted ÷ (accepted + failed + 1) over that window: what the issuance weighs"),
});
export type NodeView = z.infer<typeof NodeView>;
export const NodeList = z.strictObject({ nodes: z.array(NodeView) });

export const InfoView = z.strictObject({
  name: z.literal('idlemesh'),
  version: z.string(),
  protocol: z.number().int(),
  coordinatorId: z.string(),
  store: z.string(),
  durability: z.string(),
  leaseMs: z.number().int(),
  heartbeatMs: z.number().int(),
});
export type InfoView = z.infer<typeof InfoView>;

// ---- WebSocket: coordinator -> agent ---------------------------------------

export const LeasedTask = z.strictObject({
  taskId: TaskId,
  jobId: JobId,
  index: z.number().int().nonnegative(),
  attempt: z.number().int().min(1),
  runtime: Runtime,
  module: Hash.describe('instrumented module hash; fetch GET /v1/modules/:hash/instrumented'),
  input: Base64,
  limits: JobLimits,
  leaseExpiresAt: Millis,
});
export type LeasedTask = z.infer<typeof LeasedTask>;

export const ResultAck = z.strictObject({
  taskId: TaskId,
  attempt: z.number().int(),
  status: z.enum(['accepted', 'duplicate', 'rejected']),
  error: WireErrorSchema.optional(),
});
export type ResultAck = z.infer<typeof ResultAck>;

export const ServerMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('hello'), v: z.number().int(), challenge: z.string(), serverTime: Millis, coordinatorId: z.string() }),
  z.strictObject({ type: z.literal('welcome'), nodeId: NodeId, leaseMs: z.number().int(), heartbeatMs: z.number().int(), serverTime: Millis }),
  z.strictObject({ type: z.literal('lease'), tasks: z.array(LeasedTask) }),
  z.strictObject({ type: z.literal('ack'), batch: z.string(), results: z.array(ResultAck) }),
  z.strictObject({ type: z.literal('revoke'), taskIds: z.array(TaskId), reason: z.string() }),
  z.strictObject({ type: z.literal('error'), error: WireErrorSchema, ref: z.string().optional() }),
  // Split inference (see docs/split-inference.md, "In the mesh").
  z.strictObject({
    type: z.literal('split-assign'),
    assignment: z.strictObject({
      group: GroupId, engine: SplitEngine, model: SplitOffer.shape.model, hash: Hash, blocks: z.number().int().min(1),
      stage: z.number().int().min(0), from: z.number().int().min(0), to: z.number().int().min(1),
    }).nullable().describe('null: this agent holds no stage now'),
  }).describe('the stage this agent holds in a split group: load those layers now (once), keep them until the next split-assign'),
  z.strictObject({
    type: z.literal('stage-frame'), group: GroupId, stage: z.number().int().min(0), relay: z.number().int().min(0),
    request: z.string().min(1).max(128), op: StageOp, data: StageFrameData.optional(),
  }).describe("a frame from the group's head for the stage this agent holds: answer with stage-reply and the same relay"),
  z.strictObject({
    type: z.literal('stage-reply'), group: GroupId, stage: z.number().int().min(0), seq: z.number().int().min(0),
    ok: z.boolean(), node: NodeId.optional().describe('the member that answered'), data: StageFrameData.optional(), error: WireErrorSchema.optional(),
  }).describe("a stage's answer to the head's stage-frame with this seq"),
  ...TunnelServerMessages,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

// ---- WebSocket: agent -> coordinator ---------------------------------------

/** The fields every signed agent message carries around its body. */
const signedEnvelope = {
  nodeId: NodeId,
  nonce: z.string().regex(/^[0-9a-f]{32}$/, '16 random bytes, hex'),
  ts: Millis.describe('signer clock, ms since epoch'),
  sig: z.string().regex(/^[0-9a-f]{128}$/, 'ed25519 signature, hex'),
};

export const AuthBody = z.strictObject({
  v: z.number().int(),
  challenge: z.string().max(128),
  capabilities: Capabilities,
});
export type AuthBody = z.infer<typeof AuthBody>;

export const TaskOutcome = z.strictObject({
  taskId: TaskId,
  attempt: z.number().int().min(1),
  ok: z.boolean(),
  output: Base64.optional(),
  fuel: z.number().int().nonnegative(),
  error: z.strictObject({ code: z.string().max(64), message: z.string().max(2000) }).optional(),
  startedAt: Millis,
  endedAt: Millis,
  inputHash: Hash.describe('sha256 of the input bytes the agent ran'),
  runtime: z.string().max(64),
  runtimeVersion: z.string().max(64),
});
export type TaskOutcome = z.infer<typeof TaskOutcome>;

/** What the agent signs in a results message: the head of the Merkle tree over its receipts (see receipts.ts). */
export const ResultsBody = z.strictObject({
  root: z.string().regex(/^[0-9a-f]{64}$/, 'RFC 6962 tree head over the receipts, hex'),
  n: z.number().int().min(1).max(10_000),
});
export type ResultsBody = z.infer<typeof ResultsBody>;

export const AgentState = z.enum(['active', 'paused', 'draining']);
export type AgentState = z.infer<typeof AgentState>;

export const AgentMessage = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('auth'), body: AuthBody, ...signedEnvelope }),
  z.strictObject({ type: z.literal('results'), body: ResultsBody, results: z.array(TaskOutcome).min(1).max(10_000), ...signedEnvelope }),
  z.strictObject({ type: z.literal('credit'), n: z.number().int().min(0).max(100_000) }),
  z.strictObject({ type: z.literal('heartbeat'), state: AgentState, reason: z.string().max(200).optional(), running: z.number().int().nonnegative() }),
  z.strictObject({
    type: z.literal('holding'),
    tasks: z.array(z.strictObject({ taskId: TaskId, attempt: z.number().int() })).max(100_000),
  }).describe('sent after every welcome: the leases the agent still holds (queued, running, or with a result not yet acked); the coordinator hands back the rest'),
  z.strictObject({
    type: z.literal('stream'),
    taskId: TaskId,
    attempt: z.number().int().min(1),
    seq: z.number().int().min(0),
    data: z.string().max(256 * 1024).describe('one OpenAI chunk (JSON text) of a streaming llm task'),
  }),
  z.strictObject({
    type: z.literal('release'),
    tasks: z.array(z.strictObject({ taskId: TaskId, attempt: z.number().int() })).max(100_000),
    reason: z.string().max(200),
  }),
  z.strictObject({
    type: z.literal('slots'),
    maxTasks: Capabilities.shape.maxTasks,
  }).describe('the agent now runs this many tasks at once (its owner changed its CPU share): replaces capabilities.maxTasks and resets its credit, which the agent grants again for the new window'),
  // Split inference: the head's frames to a stage of its group, and a stage's answers (relayed by the coordinator).
  z.strictObject({
    type: z.literal('stage-frame'), group: GroupId, stage: z.number().int().min(0), seq: z.number().int().min(0),
    request: z.string().min(1).max(128).describe('the KV cache the stage keeps for this request'), op: StageOp, data: StageFrameData.optional(),
  }).describe('the head sends a frame to a stage of its group; only members of the group may send and be sent frames'),
  z.strictObject({
    type: z.literal('stage-reply'), relay: z.number().int().min(0), ok: z.boolean(), data: StageFrameData.optional(),
    error: z.strictObject({ code: z.string().max(64), message: z.string().max(2000) }).optional(),
  }).describe('a stage answers the stage-frame with this relay'),
  ...TunnelAgentMessages,
]);
export type AgentMessage = z.infer<typeof AgentMessage>;
export type SignedType = 'auth' | 'results';
export type SignedMessage = Extract<AgentMessage, { type: SignedType }>;

/** Largest WebSocket message a coordinator accepts from an agent. */
export const MAX_AGENT_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Signed messages older or newer than this (ms) are refused as stale. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

// ---- money (settlement) ------------------------------------------------------
// Amounts in msat are decimal strings: they are 64-bit integers, beyond JSON's exact range.

export const Msat = z.string().regex(/^-?\d{1,20}$/, 'an integer number of msat, as a decimal string');
export const AccountId = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

export const AccountView = z.strictObject({
  id: AccountId,
  kind: z.string(),
  frozen: z.boolean(),
  /** credits posted − debits posted. */
  balanceMsat: Msat,
  /** What may be spent or withdrawn now: balance − pending debits (holds). */
  availableMsat: Msat,
  /** Held for jobs, withdrawals or unbonding (pending debits). */
  heldMsat: Msat,
  /** Earned but not final yet (pending credits). */
  pendingMsat: Msat,
});
export type AccountView = z.infer<typeof AccountView>;

export const TransferView = z.strictObject({
  id: z.string(),
  type: z.enum(['single', 'pending', 'post', 'void', 'expire']),
  debitAccount: z.string(),
  creditAccount: z.string(),
  amountMsat: Msat,
  code: z.string(),
  ref: z.string().optional(),
  meta: z.record(z.string(), z.string()).optional(),
  pendingId: z.string().optional(),
  timestamp: Millis,
  seq: z.number().int(),
});
export type TransferView = z.infer<typeof TransferView>;

export const AccountDetail = z.strictObject({ account: AccountView, transfers: z.array(TransferView) });
export type AccountDetail = z.infer<typeof AccountDetail>;

export const MarketRuntimeView = z.strictObject({
  runtime: z.string(),
  spotMsatPerEu: z.number().nullable().describe('median clearing price (ask) of paid executions in the last hour'),
  executions: z.number().int(),
  supplySlots: z.number().int().describe('free task slots of connected agents'),
  demandEu: z.number().describe('queued tasks × fuel limit, in EU'),
  queuedTasks: z.number().int(),
});
export const MarketView = z.strictObject({
  windowMs: z.number().int(),
  fees: z.strictObject({ coordinatorFeeBps: z.number().int(), poolFeeBps: z.number().int() }),
  runtimes: z.array(MarketRuntimeView),
});
export type MarketView = z.infer<typeof MarketView>;

/** One model of the registry (`GET /v1/registry/models`, `idlemesh models`). */
export const ModelRegistryEntry = z.strictObject({
  id: z.string(),
  hashes: z.array(z.string()).describe('model file hashes hosted under this id'),
  sizeClass: ModelSizeClass,
  licence: z.string().nullable(),
  contextSize: z.number().int(),
  hosts: z.array(z.strictObject({
    nodeId: z.string(), device: z.enum(['gpu', 'cpu']), backend: z.enum(['llama.cpp', 'openai']),
    ask: z.number().int().describe('msat per EU'), inFlight: z.number().int(), tokensPerSec: z.number().nullable(),
  })),
  demand: z.strictObject({
    windowHours: z.number(),
    requests: z.number().int(),
    tokens: z.number().int().describe('prompt + completion tokens answered in the window'),
    waiting: z.number().int().describe('requests queued or running now'),
    load: z.number().describe("requests in flight ÷ the hosts' capacity, on this coordinator"),
  }),
  price: z.strictObject({ askMin: z.number().int(), askMedian: z.number().int() }).nullable(),
});
export type ModelRegistryEntry = z.infer<typeof ModelRegistryEntry>;
export const ModelRegistryView = z.strictObject({ models: z.array(ModelRegistryEntry) });
export type ModelRegistryView = z.infer<typeof ModelRegistryView>;

export const LedgerCheckView = z.strictObject({
  ok: z.boolean(),
  accounts: z.number().int(),
  transfers: z.number().int(),
  violations: z.array(z.strictObject({ kind: z.string(), message: z.string(), account: z.string().optional(), transfer: z.string().optional() })),
  totals: z.strictObject({ debitsMsat: Msat, creditsMsat: Msat }),
});
export type LedgerCheckView = z.infer<typeof LedgerCheckView>;

export const DevFundBody = z.strictObject({
  account: AccountId.describe('buyer:<caller> or operator:<node id>; created if missing'),
  sats: z.number().int().positive().max(21e14).describe('whole sats'),
  idempotencyKey: z.string().min(1).max(200).optional(),
});
export type DevFundBody = z.input<typeof DevFundBody>;

export const StakeOp = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('bond'), amountMsat: z.string().regex(/^[1-9]\d{0,18}$/, 'a positive whole number of msat'), capacityUnits: z.number().int().min(0).max(1_000_000).optional() }),
  z.strictObject({ op: z.literal('unbond'), bondId: z.string().min(1).max(128) }),
  z.strictObject({ op: z.literal('release'), bondId: z.string().min(1).max(128) }),
]);
export type StakeOp = z.infer<typeof StakeOp>;

/** A request signed with the node key (see signRequest), around its body. */
export function signedRequest<T extends z.ZodType>(body: T) {
  return z.strictObject({
    body,
    nodeId: NodeId,
    nonce: z.string().regex(/^[0-9a-f]{32}$/),
    ts: Millis,
    sig: z.string().regex(/^[0-9a-f]{128}$/, 'ed25519 signature, hex'),
  });
}

export const SignedStakeRequest = signedRequest(StakeOp);

export const BondView = z.strictObject({
  id: z.string(),
  node: z.string(),
  capacityUnits: z.number().int(),
  bondedAt: Millis,
  bondedMsat: Msat,
  slashedMsat: Msat,
  releasedMsat: Msat,
  remainingMsat: Msat,
  status: z.enum(['active', 'unbonding', 'released', 'slashed']),
  unlockAt: Millis.optional(),
});
export type BondView = z.infer<typeof BondView>;
export const StakeView = z.strictObject({ nodeId: NodeId, bonds: z.array(BondView), stake: AccountView, operator: AccountView });
export type StakeView = z.infer<typeof StakeView>;

export const DepositAddressBody = z.strictObject({ account: AccountId.optional().describe('default: your buyer account') });
export const DepositAddressView = z.strictObject({
  address: z.string(), index: z.number().int(), account: AccountId, reused: z.boolean(), network: z.string(), minConf: z.number().int(),
});
export type DepositAddressView = z.infer<typeof DepositAddressView>;
export const LightningDepositBody = z.strictObject({
  sats: z.number().int().positive().max(21e14).describe('whole sats'),
  account: AccountId.optional().describe('default: your buyer account'),
});
export const LightningInvoiceView = z.strictObject({ bolt11: z.string(), paymentHash: z.string(), expiresAt: Millis, account: AccountId, amountMsat: Msat });
export type LightningInvoiceView = z.infer<typeof LightningInvoiceView>;
export const DepositView = z.strictObject({
  outpoint: z.string(), address: z.string(), valueSats: z.string(), state: z.string(), confirmations: z.number().int(), account: z.string().optional(),
});
export const DepositList = z.strictObject({ deposits: z.array(DepositView) });
export type DepositList = z.infer<typeof DepositList>;

export const WithdrawBody = z.strictObject({
  account: AccountId.optional().describe('default: your buyer account; operator:<node id> needs the node-signed form'),
  sats: z.number().int().positive().max(21e14).optional().describe('whole sats (on chain; for Lightning the invoice amount)'),
  address: z.string().min(1).max(200).optional().describe('an on-chain address of the coordinator network'),
  invoice: z.string().min(1).max(4000).optional().describe('a BOLT11 invoice with an amount'),
  idempotencyKey: z.string().min(1).max(200).optional(),
});
export type WithdrawBody = z.infer<typeof WithdrawBody>;
export const SignedWithdrawRequest = signedRequest(WithdrawBody);
export const WithdrawalView = z.strictObject({
  id: z.string(), account: z.string(), method: z.enum(['chain', 'lightning']), state: z.string(), amountMsat: Msat,
  address: z.string().optional(), invoice: z.string().optional(), paymentHash: z.string().optional(), batchId: z.string().optional(),
  txid: z.string().optional(), feeMsat: Msat.optional(), reason: z.string().optional(), createdAt: Millis,
});
export type WithdrawalView = z.infer<typeof WithdrawalView>;
export const WithdrawalList = z.strictObject({ withdrawals: z.array(WithdrawalView) });
export const PayoutBatchView = z.strictObject({
  id: z.string(), state: z.string(), txid: z.string(), psbt: z.string().describe('base64 PSBT for the treasury signer'),
  withdrawals: z.array(z.string()),
  approved: z.array(z.strictObject({ id: z.string(), address: z.string(), valueSats: z.string() })).describe('exactly the outputs the PSBT may pay besides change'),
  feeSats: z.string(), treasuryFeeSats: z.string(), createdAt: Millis, reason: z.string().optional(),
  anchor: z.strictObject({ size: z.number().int(), root: z.string() }).optional().describe('the audit checkpoint (size, root hex) committed in the OP_RETURN output'),
  approval: z.strictObject({ publicKey: z.string(), sig: z.string() }).optional()
    .describe('the coordinator payout key signs {batch, txid, approved} (payoutApprovalBytes); the treasury signer pins the key'),
});
export type PayoutBatchView = z.infer<typeof PayoutBatchView>;
export const PayoutBatchList = z.strictObject({ batches: z.array(PayoutBatchView) });
export const SignedPsbtBody = z.strictObject({ psbt: z.string().min(1).max(4_000_000) });
export const RejectBatchBody = z.strictObject({ reason: z.string().min(1).max(500) });
