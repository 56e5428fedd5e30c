import { availableParallelism, homedir, totalmem } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ImError } from '@idlemesh/protocol';
import { parseHours } from './hours.js';

/** The coordinators named by the `coordinator` option, in order. */
export function coordinatorUrls(spec: string): string[] {
  return spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function isCoordinatorUrl(s: string): boolean {
  try {
    return /^(https?|wss?):$/.test(new URL(s).protocol);
  } catch {
    return false;
  }
}

/** Everything an agent can be told. Defaults live in resolveAgentOptions only. */
export const AgentOptionsSchema = z.strictObject({
  /**
   * Coordinator base URL (http(s)://, or ws(s):// for the same host), or a
   * comma-separated list of coordinators sharing one store: the agent uses one
   * and fails over to the next when it goes away.
   */
  coordinator: z.string().refine((s) => coordinatorUrls(s).length > 0 && coordinatorUrls(s).every(isCoordinatorUrl), 'one or more comma-separated http(s):// or ws(s):// URLs'),
  /** Key file and module cache live here. */
  dataDir: z.string().min(1),
  /** PKCS#8 ed25519 key; created (mode 0600) when missing. */
  keyFile: z.string().min(1),
  /** Tasks run at once. */
  maxTasks: z.number().int().min(1).max(1024),
  /** Memory advertised to the coordinator (capped at the machine's total). */
  maxMemoryMb: z.number().int().min(1),
  /** Only work inside these local hours, e.g. "22-07". */
  hours: z.string().superRefine((v, ctx) => {
    const r = parseHours(v);
    if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: `invalid hours: ${r}` });
  }).optional(),
  /** Pause while the 1-minute load average per core (excluding our own tasks) is above this. */
  onlyWhenIdle: z.number().positive().max(1024).optional(),
  /** Pause while running on battery. */
  onlyWhenCharging: z.boolean(),
  powerSupplyPath: z.string().min(1),
  /** A human name shown on the coordinator's node list. */
  name: z.string().min(1).max(200).optional(),
  /** msat per EU this node asks; it only gets jobs bidding at least this. 0 = free. */
  ask: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** Where the machine is (e.g. eu-west); organisation policies may allow only some regions. */
  region: z.string().min(1).max(64).optional(),
  /** Tasks held locally (running + queued) at most; the credit window. */
  prefetch: z.number().int().min(1).max(100_000),
  drainTimeoutMs: z.number().int().min(0).max(24 * 3_600_000),
  /** How often the agent witnesses (cosigns) the coordinator's audit log; 0 = never. */
  witnessMs: z.number().int().min(0).max(24 * 3_600_000),
  logLevel: z.enum(['error', 'warn', 'info', 'debug', 'silent']),
  /** Log lines as JSON. */
  json: z.boolean(),
});
export type AgentOptions = z.infer<typeof AgentOptionsSchema>;
export type AgentOptionsInput = Partial<AgentOptions>;

type Key = keyof AgentOptions;
const NUMERIC = new Set<Key>(['maxTasks', 'maxMemoryMb', 'onlyWhenIdle', 'prefetch', 'drainTimeoutMs', 'ask', 'witnessMs']);
const BOOLEAN = new Set<Key>(['onlyWhenCharging', 'json']);
const KEYS = Object.keys(AgentOptionsSchema.shape) as Key[];
const ENV_PREFIX = 'IDLEMESH_AGENT_';

/** maxTasks -> IDLEMESH_AGENT_MAX_TASKS */
function envName(key: Key): string {
  return ENV_PREFIX + key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

function envValue(key: Key, raw: string): unknown {
  if (NUMERIC.has(key)) return raw.trim() === '' ? Number.NaN : Number(raw);
  if (BOOLEAN.has(key)) {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    return raw;
  }
  return raw;
}

function invalid(message: string, details?: unknown): ImError {
  return new ImError('IM_CONFIG_INVALID', message, details === undefined ? {} : { details });
}

/**
 * Layers defaults → config file object → environment (IDLEMESH_COORDINATOR,
 * IDLEMESH_DATA_DIR, IDLEMESH_AGENT_*) → flags. The only place the agent
 * reads process.env. Unknown keys, unknown IDLEMESH_AGENT_* variables and bad
 * values throw ImError('IM_CONFIG_INVALID').
 */
export function resolveAgentOptions(
  flags: AgentOptionsInput = {},
  opts: { env?: NodeJS.ProcessEnv; file?: Record<string, unknown> } = {},
): AgentOptions {
  const env = opts.env ?? process.env;
  const file = opts.file ?? {};

  const fromEnv: Record<string, unknown> = {};
  const known = new Map(KEYS.map((k) => [envName(k), k]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || raw === '') continue;
    const key = known.get(name);
    if (key === undefined) {
      throw invalid(`unknown environment variable ${name}; known: ${[...known.keys()].join(', ')}`, { variable: name });
    }
    fromEnv[key] = envValue(key, raw);
  }
  if (env.IDLEMESH_COORDINATOR !== undefined && env.IDLEMESH_COORDINATOR !== '' && fromEnv.coordinator === undefined) {
    fromEnv.coordinator = env.IDLEMESH_COORDINATOR;
  }

  // Layer the explicitly given values first: some defaults depend on them.
  const given: Record<string, unknown> = { ...file, ...fromEnv, ...stripUndefined(flags) };
  const cores = availableParallelism();
  const baseDir = typeof given.dataDir === 'string' ? given.dataDir : nonEmpty(env.IDLEMESH_DATA_DIR) ?? join(homedir(), '.idlemesh', 'agent');
  const maxTasks = typeof given.maxTasks === 'number' ? given.maxTasks : cores;
  const defaults: Record<string, unknown> = {
    coordinator: 'http://127.0.0.1:7070',
    dataDir: baseDir,
    keyFile: join(baseDir, 'node.key'),
    maxTasks: cores,
    ask: 0,
    maxMemoryMb: Math.max(1, Math.floor(totalmem() / (2 * 1024 * 1024))),
    onlyWhenCharging: false,
    powerSupplyPath: '/sys/class/power_supply',
    // A ceiling: the agent holds less when tasks are long (see Agent.window).
    prefetch: Math.max(128, Number.isFinite(maxTasks) ? Math.min(100_000, Math.floor(maxTasks) * 128) : 128),
    drainTimeoutMs: 30_000,
    witnessMs: 60_000,
    logLevel: 'info',
    json: false,
  };
  const parsed = AgentOptionsSchema.safeParse({ ...defaults, ...given });
  if (!parsed.success) {
    throw invalid(`invalid agent configuration: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
  }
  return parsed.data;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
