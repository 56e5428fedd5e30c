/**
 * @idlemesh/agent — runs on an operator's machine: connects to a coordinator,
 * takes task leases within the owner's limits, runs metered WebAssembly in the
 * sandbox and returns signed results.
 */
export { resolveAgentOptions, AgentOptionsSchema } from './config.js';
export type { AgentOptions, AgentOptionsInput } from './config.js';
export { startAgent } from './agent.js';
export type { Agent, StartAgentOptions } from './agent.js';
export type { AgentEvent, AgentEventType } from './events.js';
export type { Clock } from './limits.js';
export type { PowerSource } from './power.js';
export { sysfsPowerSource } from './power.js';
export { parseHours, inWindows } from './hours.js';
export type { HourWindow } from './hours.js';
export { loadOrCreateKey } from './key.js';
export { createLogger } from './log.js';
export type { Logger, LogLevel } from './log.js';
export type { TaskSandbox, RunResult } from './sandbox.js';
export { AGENT_VERSION } from './capabilities.js';
export { InferenceHost } from './inference.js';
export type { ModelBackend, InferenceUsage } from './inference.js';
// Split inference, engine llamacpp-rpc: build, tunnel, stage, head (see split/index.ts).
export * from './split/index.js';
// Split inference, engine pipeline: this agent holds some layers of a model in a group.
export { PipelineHost } from './pipeline-host.js';
export type { SplitModelOptions } from './pipeline-host.js';
