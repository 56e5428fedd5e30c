// Placeholder: the agent implementation replaces this file, keeping these exports.
export interface AgentOptions {
  coordinator: string;
  dataDir: string;
  keyFile: string;
  maxTasks: number;
  maxMemoryMb: number;
  hours?: string;
  onlyWhenIdle?: number;
  onlyWhenCharging: boolean;
  powerSupplyPath: string;
  name?: string;
  prefetch: number;
  drainTimeoutMs: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug' | 'silent';
  json: boolean;
}
export type AgentOptionsInput = Partial<AgentOptions>;
export type AgentEvent = { type: string; [k: string]: unknown };
export interface Agent {
  readonly nodeId: string;
  on(listener: (e: AgentEvent) => void): () => void;
  stop(opts?: { drain?: boolean; timeoutMs?: number }): Promise<void>;
}
export function resolveAgentOptions(_flags: AgentOptionsInput, _opts?: { env?: NodeJS.ProcessEnv; file?: Record<string, unknown> }): AgentOptions {
  throw new Error('not implemented yet');
}
export async function startAgent(_opts: AgentOptions): Promise<Agent> {
  throw new Error('not implemented yet');
}
