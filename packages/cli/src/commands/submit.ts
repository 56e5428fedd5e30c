import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ImError, bytesToBase64 } from '@idlemesh/protocol';
import { parseInputsJsonl, type SubmitJobBody } from '@idlemesh/sdk';
import { followJob } from '../follow.js';
import { bytes, num } from '../format.js';
import { clientFor, intArg } from '../options.js';
import { note, out, outJson } from '../output.js';
import { summaryText, writeResults } from '../results.js';

interface SubmitOpts {
  inputs: string;
  fuel?: number;
  memoryMb?: number;
  timeoutMs?: number;
  bid?: number;
  label?: 'private' | 'overflow' | 'public';
  dataClass?: string[];
  maxAttempts?: number;
  name?: string;
  priority?: number;
  idempotencyKey?: string;
  detach?: boolean;
  out?: string;
  json?: boolean;
}

export function registerSubmit(program: Command): void {
  program
    .command('submit')
    .description('upload a WebAssembly module and run it once per input; prints the results (exit 1 if any task failed)')
    .argument('<module.wasm>', 'the WebAssembly module (task ABI idlemesh/1 or WASI)')
    .requiredOption('--inputs <file.jsonl>', 'one input per line: "text", {"base64":"…"}, {"hex":"…"} or any JSON value (passed as its text)')
    .option('--fuel <n>', 'fuel limit per task (1 EU = 1e9 fuel)', intArg(1))
    .option('--memory-mb <n>', 'memory limit per task, MiB (1-4096)', intArg(1, 4096))
    .option('--timeout-ms <n>', 'wall-clock backstop per task, ms', intArg(10, 3_600_000))
    .option('--bid <n>', 'max msat per EU you pay', intArg(0))
    .addOption(new Option('--label <label>', "where it may run under your organisation's policy (default: the policy's)").choices(['private', 'overflow', 'public']))
    .option('--data-class <name...>', 'data classes of the inputs (a policy may keep some inside the organisation)')
    .option('--max-attempts <n>', 'attempts per task before it fails (1-20)', intArg(1, 20))
    .option('--name <name>', 'a name to recognise the job by')
    .option('--priority <n>', 'fair-share weight (1-100)', intArg(1, 100))
    .option('--idempotency-key <key>', 'submitting again with the same key returns the same job instead of a new one')
    .option('--detach', 'print the job id and return at once; follow later with `idlemesh job <id> --watch`')
    .option('--out <file>', 'write the results as JSON lines to this file and print a summary')
    .option('--json', 'JSON lines on stdout: one result per line {index,state,output,outputText,fuel,error}')
    .action(async (modulePath: string, opts: SubmitOpts, cmd: Command) => {
      // Read and check both files before touching the network.
      const wasm = await readInputFile(modulePath, 'module');
      const inputs = await readInputs(opts.inputs);
      const client = clientFor(cmd);
      const mod = await client.uploadModule(wasm);
      const body: SubmitJobBody = { module: mod.hash, inputs: inputs.map(bytesToBase64) };
      if (opts.name !== undefined) body.name = opts.name;
      const limits: NonNullable<SubmitJobBody['limits']> = {};
      if (opts.fuel !== undefined) limits.fuel = opts.fuel;
      if (opts.memoryMb !== undefined) limits.memoryMb = opts.memoryMb;
      if (opts.timeoutMs !== undefined) limits.timeoutMs = opts.timeoutMs;
      if (Object.keys(limits).length > 0) body.limits = limits;
      if (opts.bid !== undefined) body.bid = opts.bid;
      if (opts.label !== undefined) body.label = opts.label;
      if (opts.dataClass !== undefined) body.dataClasses = opts.dataClass;
      if (opts.maxAttempts !== undefined) body.maxAttempts = opts.maxAttempts;
      if (opts.priority !== undefined) body.priority = opts.priority;
      const job = await client.submitJob(body, opts.idempotencyKey === undefined ? {} : { idempotencyKey: opts.idempotencyKey });

      if (opts.detach) {
        if (opts.json) await outJson(job);
        else await out(`${job.id}\n`);
        note(`submitted ${job.id}: ${num(inputs.length)} tasks. Follow it with: idlemesh job ${job.id} --watch`);
        return;
      }
      note(`submitted ${job.id}: ${num(inputs.length)} tasks, module ${mod.hash.slice(0, 12)} (${bytes(mod.size)})`);
      const final = await followJob(client, job);
      const summary = await writeResults(client, final.id, { json: opts.json === true, ...(opts.out === undefined ? {} : { file: opts.out }) });
      if (opts.out !== undefined && opts.json) await outJson({ job: final.id, state: final.state, summary });
      else if (opts.out !== undefined) await out(`${summaryText(summary)}\n`);
      else note(summaryText(summary));
      if (final.counts.failed > 0 || final.state === 'cancelled') process.exitCode = 1;
    });
}

async function readInputFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'it is a directory' : e.message;
    throw new ImError('IM_INPUT_INVALID', `cannot read ${what} file ${path}: ${why}`, { details: { file: path } });
  }
}

async function readInputs(path: string): Promise<Uint8Array[]> {
  const text = new TextDecoder().decode(await readInputFile(path, 'inputs'));
  let inputs: Uint8Array[];
  try {
    inputs = parseInputsJsonl(text);
  } catch (err) {
    if (err instanceof ImError) {
      throw new ImError(err.code, `${path} ${err.message}`, { details: { file: path, ...(err.details as object) } });
    }
    throw err;
  }
  if (inputs.length === 0) throw new ImError('IM_INPUT_INVALID', `${path} has no inputs; write one JSON value per line`, { details: { file: path } });
  return inputs;
}
