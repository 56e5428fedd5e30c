import { Option, type Command } from 'commander';
import type { AgentOptionsInput } from '@idlemesh/agent';
import { ImError } from '@idlemesh/protocol';
import { defined, coordinatorFlag, floatArg, intArg, readConfigFile } from '../options.js';
import { note, outJson } from '../output.js';
import { onShutdown } from '../shutdown.js';

/** Load average per core under which the machine counts as idle, when --only-when-idle has no value. */
export const DEFAULT_IDLE_LOAD = 0.5;
const AGENT_LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'silent'] as const;

interface AgentFlags {
  codeRuntimes?: boolean;
  model?: string[];
  backend?: string[];
  gpu?: string;
  splitModel?: string;
  splitMemory?: string;
  splitEngine?: 'pipeline' | 'llamacpp-rpc';
  dataDir?: string;
  keyFile?: string;
  maxTasks?: number;
  maxMemory?: number;
  hours?: string;
  onlyWhenIdle?: number | true;
  onlyWhenCharging?: boolean;
  powerSupplyPath?: string;
  name?: string;
  ask?: number;
  witnessMs?: number;
  inlineMs?: number;
  region?: string;
  config?: string;
  logLevel?: (typeof AGENT_LOG_LEVELS)[number];
  json?: boolean;
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run an agent: lend this machine to a coordinator, within the limits you set (Ctrl-C drains and stops it)')
    .option('--data-dir <dir>', 'where the agent keeps its key and module cache')
    .option('--key-file <file>', 'the node key (created on first run); its public key is the node id')
    .option('--max-tasks <n>', 'tasks run at once (default: one per core)', intArg(1, 1024))
    .option('--max-memory <MB>', 'memory all running tasks may use together, MiB', intArg(1))
    .option('--hours <from-to>', 'only run tasks in these local hours, e.g. 22-07')
    .option('--only-when-idle [load]', `only run tasks while the load average per core is below load (default ${DEFAULT_IDLE_LOAD})`, floatArg(0, 1024))
    .option('--only-when-charging', 'only run tasks while on mains power')
    .option('--power-supply-path <dir>', 'where to read the power state (default /sys/class/power_supply)')
    .option('--name <name>', 'a name for this node, shown in `idlemesh nodes`')
    .option('--region <name>', 'where this machine is (organisation policies may allow only some regions)')
    .option('--witness-ms <ms>', "how often this node checks and cosigns the coordinator's audit log (default 60000; 0 = never)", intArg(0, 24 * 3_600_000))
    .option('--inline-ms <ms>', "a task arriving while every slot is idle first runs on the agent's own thread for up to this long, saving a worker round trip (default 0.5; 0 = always in a worker)", floatArg(0, 100))
    .option('--ask <msat-per-EU>', 'price this node asks per EU (1 EU = 1e9 fuel); only jobs bidding at least this run here (default 0: free)', intArg(0))
    .option('--code-runtimes', 'also run python and js code-evaluation tasks (Pyodide and QuickJS, metered; the first start builds a cache of ~40 MB)')
    .option('--model <path.gguf>', 'serve this GGUF model through the coordinator\'s OpenAI-compatible API (node-llama-cpp); repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--backend <openai=URL>', 'serve the models of an OpenAI-compatible server (Ollama, llama.cpp server, vLLM), e.g. openai=http://127.0.0.1:11434/v1; repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .option('--gpu <auto|off>', 'with --model: offload to a GPU when one is found (auto, the default) or CPU only (off)')
    .option('--split-model <path.gguf>', 'hold some layers of this GGUF in a split group, so machines together serve a model none holds alone (with --split-memory)')
    .option('--split-memory <size>', 'memory lent to the split stage, e.g. 512MB or 6GB (with --split-model)')
    .addOption(new Option('--split-engine <engine>', 'how the split group runs: pipeline (our TypeScript engine, the default) or llamacpp-rpc (real llama.cpp over RPC servers, built once per machine)').choices(['pipeline', 'llamacpp-rpc']))
    .option('--config <file.json>', 'a JSON file of agent options; flags and environment override it')
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(AGENT_LOG_LEVELS))
    .option('--json', 'log as JSON lines')
    .action(async (flags: AgentFlags, cmd: Command) => {
      const { resolveAgentOptions, startAgent } = await import('@idlemesh/agent');
      const file = await readConfigFile(flags.config);
      const input: AgentOptionsInput = defined({
        coordinator: coordinatorFlag(cmd),
        dataDir: flags.dataDir,
        keyFile: flags.keyFile,
        maxTasks: flags.maxTasks,
        maxMemoryMb: flags.maxMemory,
        hours: flags.hours,
        onlyWhenIdle: flags.onlyWhenIdle === true ? DEFAULT_IDLE_LOAD : flags.onlyWhenIdle,
        onlyWhenCharging: flags.onlyWhenCharging,
        powerSupplyPath: flags.powerSupplyPath,
        name: flags.name,
        ask: flags.ask,
        witnessMs: flags.witnessMs,
        region: flags.region,
        logLevel: flags.logLevel,
        json: flags.json,
      });
      const opts = resolveAgentOptions(input, file === undefined ? {} : { file });
      const backends = await modelBackends(flags);
      const split = splitModel(flags);
      const agent = await startAgent({ ...opts, backends, ...(flags.codeRuntimes ? { codeRuntimes: true } : {}), ...(flags.inlineMs !== undefined ? { inlineTaskMs: flags.inlineMs } : {}), ...(split ? { split } : {}) });
      if (flags.json) await outJson({ type: 'started', nodeId: agent.nodeId, coordinator: opts.coordinator });
      else note(`idlemesh agent ${agent.nodeId.slice(0, 12)} serving ${opts.coordinator} (up to ${opts.maxTasks} tasks at once)`);
      onShutdown(async () => {
        note('draining: finishing running tasks (Ctrl-C again to quit now)…');
        await agent.stop({ drain: true });
      });
    });
}

/** --model and --backend as the agent's model backends (@idlemesh/llm, loaded only when asked for). */
async function modelBackends(flags: AgentFlags): Promise<import('@idlemesh/llm').AgentModelBackend[]> {
  const models = flags.model ?? [];
  const others = flags.backend ?? [];
  if (models.length === 0 && others.length === 0) return [];
  if (flags.gpu !== undefined && flags.gpu !== 'auto' && flags.gpu !== 'off') throw new ImError('IM_CLI_USAGE', '--gpu is auto or off');
  const llm = await import('@idlemesh/llm');
  const out: import('@idlemesh/llm').AgentModelBackend[] = [];
  if (models.length > 0) out.push(llm.agentBackend(await llm.LlamaCppBackend.load({ models, gpu: flags.gpu === 'off' ? false : 'auto' })));
  for (const b of others) {
    const m = /^openai=(.+)$/.exec(b);
    if (!m) throw new ImError('IM_CLI_USAGE', `--backend ${b}: expected openai=<base URL ending in /v1>`);
    out.push(llm.agentBackend(new llm.OpenAiCompatibleBackend({ baseUrl: m[1]! })));
  }
  return out;
}

/** --split-model and --split-memory: both or neither. */
function splitModel(flags: AgentFlags): { model: string; memoryBytes: number; engine?: 'pipeline' | 'llamacpp-rpc' } | undefined {
  if (flags.splitModel === undefined && flags.splitMemory === undefined) {
    if (flags.splitEngine !== undefined) throw new ImError('IM_CLI_USAGE', '--split-engine needs --split-model <path.gguf> and --split-memory <size>');
    return undefined;
  }
  if (flags.splitModel === undefined) throw new ImError('IM_CLI_USAGE', '--split-memory needs --split-model <path.gguf>: the model whose layers this agent holds');
  if (flags.splitMemory === undefined) throw new ImError('IM_CLI_USAGE', '--split-model needs --split-memory <size>, e.g. 6GB: how much memory the stage may use');
  return { model: flags.splitModel, memoryBytes: parseByteSize(flags.splitMemory, '--split-memory'), ...(flags.splitEngine ? { engine: flags.splitEngine } : {}) };
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A size such as 512MB, 6GB, 1.5GiB or 1048576 (bytes); MB and GB are powers of 10, MiB and GiB of 2. */
export function parseByteSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = UNITS[m?.[2]?.toLowerCase() ?? 'x'];
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new ImError('IM_CLI_USAGE', `${flag} ${JSON.stringify(text)}: expected a size such as 512MB, 6GB or 1.5GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`);
  }
  return bytes;
}
