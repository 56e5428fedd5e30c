import { Command, CommanderError, Option } from 'commander';
import { ImError } from '@idlemesh/protocol';
import { reportError } from './output.js';
import { DEFAULT_COORDINATOR } from './options.js';
import { registerAgent } from './commands/agent.js';
import { registerCancel } from './commands/cancel.js';
import { registerCoordinator } from './commands/coordinator.js';
import { registerJob } from './commands/job.js';
import { registerJobs } from './commands/jobs.js';
import { registerNodes } from './commands/nodes.js';
import { registerModels } from './commands/models.js';
import { registerMoney } from './commands/money.js';
import { registerTreasury } from './commands/treasury.js';
import { registerIdentity } from './commands/identity.js';
import { registerSim } from './commands/sim.js';
import { registerServeModel } from './commands/serve-model.js';
import { registerEval } from './commands/eval.js';
import { registerSubmit } from './commands/submit.js';
import { registerUp } from './commands/up.js';

export const VERSION = '0.1.0';

/** The whole command tree. Settings given here are inherited by every subcommand. */
export function buildProgram(): Command {
  const program = new Command('idlemesh')
    .description('idlemesh: one compute cluster made of idle machines')
    .version(VERSION, '-V, --version')
    .addOption(new Option('--api-key <key>', 'API key (env IDLEMESH_API_KEY); needed once the coordinator is bootstrapped'))
    .addOption(new Option('--coordinator <url>', `coordinator URL (env IDLEMESH_COORDINATOR, default ${DEFAULT_COORDINATOR}); for an agent, a comma-separated list fails over in turn`))
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showSuggestionAfterError(true)
    .exitOverride()
    // Commander's own error line is replaced by `error IM_CLI_USAGE: …` in run().
    .configureOutput({ outputError: () => undefined });
  program.addHelpText('after', `
Start here:
  idlemesh up                                  a local mesh: coordinator + agent + demo job
  idlemesh submit mod.wasm --inputs in.jsonl   run a module over many inputs
Docs: docs/cli.md`);

  registerUp(program);
  registerCoordinator(program);
  registerEval(program);
  registerAgent(program);
  registerServeModel(program);
  registerSubmit(program);
  registerJobs(program);
  registerJob(program);
  registerCancel(program);
  registerNodes(program);
  registerModels(program);
  registerMoney(program);
  registerTreasury(program);
  registerIdentity(program);
  registerSim(program);
  return program;
}

/** Runs the CLI; resolves with the process exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  let json = argv.slice(2).includes('--json');
  program.hook('preAction', (_root, action) => {
    json = action.opts<{ json?: boolean }>().json === true;
  });
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      // `idlemesh` alone: commander already printed the help to stderr.
      const message = err.code === 'commander.help' ? 'missing command; see the list above' : err.message.replace(/^error: /, '');
      return reportError(new ImError('IM_CLI_USAGE', message), json);
    }
    return reportError(err, json);
  }
}
