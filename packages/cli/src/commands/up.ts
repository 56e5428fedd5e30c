import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { Option, type Command } from 'commander';
import { ImError, base64ToBytes, bytesToBase64 } from '@idlemesh/protocol';
import { decodeUtf8, IdlemeshClient, parseInputsJsonl, type JobView, type TaskResultView } from '@idlemesh/sdk';
import { followJob } from '../follow.js';
import { duration, num, preview, table } from '../format.js';
import { DEFAULT_COORDINATOR, defined, intArg, LOG_LEVELS } from '../options.js';
import { note, out, outJson } from '../output.js';
import { BIN_PATH, REPO_ROOT } from '../paths.js';
import { resultLine } from '../results.js';
import { sats } from './money.js';
import { onShutdown } from '../shutdown.js';
import { startCoordinatorCli } from '../start-coordinator.js';

interface UpFlags {
  port?: number;
  dataDir?: string;
  agents: number;
  demo: boolean;
  exitAfterDemo?: boolean;
  logLevel?: (typeof LOG_LEVELS)[number];
  json?: boolean;
}

const NODES_TIMEOUT_MS = 30_000;
const AGENT_STOP_TIMEOUT_MS = 10_000;
const DEMO_ROWS = 20;
const DEMO_MODULE = join('examples', 'sha256', 'sha256.wasm');
const DEMO_INPUTS = join('examples', 'sha256', 'inputs.jsonl');
/** The demo market (msat per EU): local agents ask 1,000 sat per EU, the demo buyer bids twice that, with regtest faucet sats. */
const DEMO_ASK = 1_000_000;
const DEMO_BID = 2_000_000;
const DEMO_FUND_SATS = 10_000;
const DEMO_FUEL = 100_000_000;

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run a local mesh: a coordinator and agents on this machine, then a demo job (what `npm start` runs)')
    .option('--port <port>', 'coordinator port, 0 for any free port (default 7070)', intArg(0, 65535))
    .option('--data-dir <dir>', 'coordinator SQLite file and one agent-<i>/ folder per agent (default ./.idlemesh)')
    .option('--agents <n>', 'how many agent processes to start', intArg(0, 64), 1)
    .option('--no-demo', 'do not run the demo job')
    .option('--exit-after-demo', 'stop the mesh and exit after the demo (exit 1 if a demo task failed); for tests and CI')
    .addOption(new Option('--log-level <level>', 'coordinator and agent log verbosity (default warn)').choices(LOG_LEVELS))
    .option('--json', 'JSON lines on stdout: {"type":"coordinator"|"nodes"|"demo"|"ready",…}')
    .action(async (flags: UpFlags) => {
      const json = flags.json === true;
      const mesh = await startMesh(flags);
      try {
        if (json) await outJson({ type: 'coordinator', url: mesh.url, dataDir: mesh.dataDir, ...(mesh.bootstrapToken ? { bootstrapToken: mesh.bootstrapToken } : {}) });
        else {
          note(`coordinator on ${mesh.url} (data in ${mesh.dataDir})`);
          note(`dashboard: open ${mesh.url.replace('127.0.0.1', 'localhost')}/ (contribute this browser: /contribute)`);
          if (mesh.bootstrapToken) note(`open to this machine until an admin exists: idlemesh bootstrap --token ${mesh.bootstrapToken} --org <name>`);
        }
        const client = new IdlemeshClient({ url: mesh.url });
        const nodes = await waitForNodes(client, mesh, flags.agents);
        if (json) await outJson({ type: 'nodes', nodes });
        else if (flags.agents > 0) note(`${flags.agents} agent${flags.agents === 1 ? '' : 's'} connected: ${nodes.map((id) => id.slice(0, 12)).join(', ')}`);
        if (flags.demo) {
          const ok = await runDemo(client, json, flags.exitAfterDemo === true);
          if (!ok) process.exitCode = 1;
        }
      } catch (err) {
        await mesh.stop();
        throw err;
      }
      if (flags.exitAfterDemo) {
        await mesh.stop();
        // Whatever a component left open must not keep a CI job waiting.
        setTimeout(() => process.exit(), 2000).unref();
        return;
      }
      if (json) await outJson({ type: 'ready', url: mesh.url });
      else note(whatNext(mesh.url));
      onShutdown(async () => {
        note('stopping the mesh…');
        await mesh.stop();
      });
    });
}

interface Mesh {
  url: string;
  dataDir: string;
  startedAt: number;
  agents: ChildProcess[];
  bootstrapToken: string | undefined;
  /** Why an agent ended early, if one did. */
  exited: (string | undefined)[];
  stop(): Promise<void>;
}

async function startMesh(flags: UpFlags): Promise<Mesh> {
  const { resolveCoordinatorOptions } = await import('@idlemesh/coordinator');
  const logLevel = flags.logLevel ?? 'warn';
  const opts = resolveCoordinatorOptions(defined({ port: flags.port, dataDir: flags.dataDir, logLevel }));
  const startedAt = Date.now();
  const coordinator = await startCoordinatorCli(opts);
  const agentLevel = logLevel === 'fatal' ? 'error' : logLevel === 'trace' ? 'debug' : logLevel;
  const agents: ChildProcess[] = [];
  const exited: (string | undefined)[] = [];
  let stopping = false;
  for (let i = 1; i <= flags.agents; i++) {
    const name = `agent-${i}`;
    const child = spawn(process.execPath, [
      BIN_PATH, 'agent',
      '--coordinator', coordinator.url,
      '--data-dir', join(opts.dataDir, name),
      '--name', `local-${i}`,
      '--ask', String(DEMO_ASK),
      '--log-level', agentLevel,
    ], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group: a terminal's Ctrl-C reaches only `up`, which then stops
      // each agent exactly once (SIGTERM = drain); a second signal would mean "quit now".
      detached: true,
    });
    const tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        process.stderr.write(`[${name}] ${line}\n`);
      });
    }
    exited.push(undefined);
    child.on('exit', (code, signal) => {
      const why = `${name} exited (${signal ?? `code ${code}`})${tail.length ? `:\n  ${tail.slice(-5).join('\n  ')}` : ''}`;
      exited[i - 1] = why;
      if (!stopping) note(why);
    });
    agents.push(child);
  }
  // Detached agents outlive a crashed `up` unless told otherwise.
  process.once('exit', () => {
    for (const child of agents) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  return {
    url: coordinator.url,
    dataDir: opts.dataDir,
    startedAt,
    agents,
    bootstrapToken: coordinator.bootstrapToken,
    exited,
    async stop() {
      if (stopping) return;
      stopping = true;
      await Promise.all(agents.map(stopChild));
      await coordinator.close();
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), AGENT_STOP_TIMEOUT_MS);
  await exit;
  clearTimeout(timer);
}

/** Resolves with the ids of the agents once all have connected; fails if one exits or they take too long. */
async function waitForNodes(client: IdlemeshClient, mesh: Mesh, count: number): Promise<string[]> {
  if (count === 0) return [];
  const deadline = Date.now() + NODES_TIMEOUT_MS;
  for (;;) {
    const died = mesh.exited.find((e) => e !== undefined);
    if (died !== undefined) throw new ImError('IM_UNAVAILABLE', `an agent stopped before connecting: ${died}`);
    const nodes = await client.nodes();
    const fresh = nodes.filter((n) => n.state !== 'offline' && n.lastSeen >= mesh.startedAt - 1000 && n.capabilities.name?.startsWith('local-'));
    if (fresh.length >= count) return fresh.map((n) => n.id);
    if (Date.now() > deadline) {
      throw new ImError('IM_UNAVAILABLE', `only ${fresh.length} of ${count} agents connected within ${duration(NODES_TIMEOUT_MS)}; see the [agent-…] lines above`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the sha256 example over its inputs and prints input → output. Resolves false if a task failed. */
async function runDemo(client: IdlemeshClient, json: boolean, strict: boolean): Promise<boolean> {
  const wasmPath = join(REPO_ROOT, DEMO_MODULE);
  const inputsPath = join(REPO_ROOT, DEMO_INPUTS);
  try {
    await access(wasmPath);
  } catch {
    const err = new ImError('IM_INPUT_INVALID', `the demo module ${wasmPath} is missing; run \`npm run build\` at the repository root first (or start with --no-demo)`);
    if (strict) throw err;
    note(`warning ${err.code}: ${err.message}`);
    return true;
  }
  const inputs = parseInputsJsonl(await readFile(inputsPath, 'utf8'));
  const mod = await client.uploadModule(await readFile(wasmPath));
  // The demo pays, in regtest sats from the dev faucet (once per data directory), so the market shows.
  await client.devFund({ account: 'buyer:anonymous', sats: DEMO_FUND_SATS, idempotencyKey: 'demo-seed' });
  const submitted = await client.submitJob({ module: mod.hash, name: 'demo: sha256', inputs: inputs.map(bytesToBase64), bid: DEMO_BID, limits: { fuel: DEMO_FUEL } });
  if (!json) note(`demo: sha256 of ${num(inputs.length)} inputs as job ${submitted.id}, bidding ${DEMO_BID} msat/EU (escrow ${sats(submitted.holdMsat ?? '0')})`);
  const job = await followJob(client, submitted, { quiet: json });
  const results: TaskResultView[] = [];
  for await (const r of client.allResults(job.id)) results.push(r);
  const cost = await demoCost(client, job.id);
  if (json) {
    await outJson({ type: 'demo', job, results: results.map(resultLine), cost });
  } else {
    await out(demoTable(inputs, results));
    note(demoSummary(job));
    if (cost) note(`paid ${sats(cost.buyerMsat)} (regtest): operators ${sats(cost.operatorMsat)}, coordinator fee ${sats(cost.feeMsat)}, reward pool ${sats(cost.poolMsat)}; the rest of the escrow went back`);
  }
  return job.counts.failed === 0 && job.state === 'completed';
}

/** What the demo job cost once settled (the coordinator settles within a sweep). */
async function demoCost(client: IdlemeshClient, jobId: string): Promise<{ buyerMsat: string; operatorMsat: string; feeMsat: string; poolMsat: string } | undefined> {
  const deadline = Date.now() + 10_000;
  while ((await client.getJob(jobId)).settledAt === undefined) {
    if (Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
  const t = (await client.account(undefined, { limit: 1000 })).transfers.filter((x) => x.ref === jobId);
  const buyerMsat = t.filter((x) => x.type === 'post').reduce((s, x) => s + BigInt(x.amountMsat), 0n);
  const escrow = (await client.account('escrow', { limit: 1000 })).transfers.filter((x) => x.ref === jobId && x.debitAccount === 'escrow');
  const sum = (code: string): string => escrow.filter((x) => x.code === code).reduce((s, x) => s + BigInt(x.amountMsat), 0n).toString();
  return { buyerMsat: buyerMsat.toString(), operatorMsat: sum('payment'), feeMsat: sum('fee'), poolMsat: sum('pool') };
}

function demoTable(inputs: readonly Uint8Array[], results: readonly TaskResultView[]): string {
  const rows = results.slice(0, DEMO_ROWS).map((r) => {
    const input = inputs[r.index];
    const text = input === undefined ? undefined : decodeUtf8(bytesToBase64(input));
    const shown = text === null || text === undefined ? `hex:${Buffer.from(input ?? []).toString('hex')}` : JSON.stringify(text);
    const output = r.error !== undefined ? `${r.error.code}: ${r.error.message}` : r.output === undefined ? '-' : outputText(r.output);
    return [`#${r.index}`, preview(shown, 32), '→', preview(output, 80)];
  });
  let text = table(['#', 'INPUT', '', 'OUTPUT'], rows);
  if (results.length > DEMO_ROWS) text += `… and ${num(results.length - DEMO_ROWS)} more\n`;
  return text;
}

function outputText(b64: string): string {
  return decodeUtf8(b64) ?? `hex:${Buffer.from(base64ToBytes(b64)).toString('hex')}`;
}

function demoSummary(job: JobView): string {
  const took = job.finishedAt === undefined ? '' : ` in ${duration(job.finishedAt - job.createdAt)}`;
  return `demo ${job.state}: ${num(job.counts.succeeded)} succeeded, ${num(job.counts.failed)} failed, ${num(job.fuelUsed)} fuel${took}`;
}

function whatNext(url: string): string {
  const c = url === DEFAULT_COORDINATOR ? '' : ` --coordinator ${url}`;
  const mod = relative(process.cwd(), join(REPO_ROOT, DEMO_MODULE)) || DEMO_MODULE;
  const inputs = relative(process.cwd(), join(REPO_ROOT, DEMO_INPUTS)) || DEMO_INPUTS;
  const rows: [string, string][] = [
    [`npx idlemesh submit ${mod} --inputs ${inputs}${c}`, 'run a job'],
    [`npx idlemesh jobs${c}`, 'list jobs'],
    [`npx idlemesh nodes${c}`, 'list agents'],
    [`npx idlemesh market${c}`, 'spot prices, supply and demand'],
    [`npx idlemesh balance${c}`, 'your (regtest) balance and transfers'],
    [`npx idlemesh agent --coordinator ${url}`, 'lend another machine (or this one again)'],
  ];
  const width = Math.max(...rows.map(([cmd]) => cmd.length));
  return `\nThe mesh is running at ${url} — Ctrl-C stops it. In another terminal:\n${rows.map(([cmd, what]) => `  ${cmd.padEnd(width)}   # ${what}`).join('\n')}\n`;
}
