import { Option, type Command } from 'commander';
import { floatArg, intArg } from '../options.js';
import { out, outJson } from '../output.js';

interface SimFlags {
  nodes: number;
  cheaters: number;
  hours: number;
  mode: 'trusted' | 'replicate' | 'adaptive' | 'spot-check' | 'optimistic';
  seed: number;
  tasksPerNodeHour: number;
  wrong: number;
  collude: number;
  churn?: number;
  json?: boolean;
}

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('simulations that drive the real pure cores with virtual time');
  sim.command('verify')
    .description('honest nodes, cheaters and colluding groups against a verification mode: wrong results accepted, overhead, slashing (docs/verification.md)')
    .option('--nodes <n>', 'nodes', intArg(1, 1_000_000), 1000)
    .option('--cheaters <fraction>', 'fraction of nodes that cheat', floatArg(0, 1), 0.05)
    .option('--hours <h>', 'simulated hours', intArg(1, 24 * 365), 12)
    .addOption(new Option('--mode <mode>', 'verification mode').choices(['trusted', 'replicate', 'adaptive', 'spot-check', 'optimistic']).default('adaptive'))
    .option('--seed <n>', 'random seed', intArg(0), 1)
    .option('--tasks-per-node-hour <n>', 'load', intArg(1, 100_000), 60)
    .option('--wrong <p>', 'probability a cheater returns a wrong output', floatArg(0, 1), 0.5)
    .option('--collude <g>', 'colluding group size (1 = alone)', intArg(1, 1000), 1)
    .option('--churn <fraction>', 'node slots replaced by fresh identities each hour', floatArg(0, 1))
    .option('--json', 'print the report as one JSON object')
    .action(async (f: SimFlags) => {
      const { sim: s } = await import('@idlemesh/coordinator');
      const r = s.simulate({
        nodes: f.nodes, cheaters: f.cheaters, hours: f.hours, mode: f.mode, seed: f.seed, tasksPerNodeHour: f.tasksPerNodeHour,
        wrong: f.wrong, collude: f.collude, ...(f.churn !== undefined ? { churn: f.churn } : {}),
      });
      if (f.json) return outJson(r);
      await out([
        `${r.mode}: ${r.nodes} nodes × ${r.hours} h, seed ${r.seed}`,
        `  tasks ${r.tasks}, executions ${r.executions} (overhead ${r.overhead.toFixed(3)}×, referee runs ${r.refereeRuns})`,
        `  wrong accepted ${r.wrongAccepted} (${r.wrongAcceptedRate.toExponential(2)}), reversed ${r.wrongReversed}, unverifiable ${r.unverifiable}`,
        `  cheaters ${r.cheaters}, slashed ${r.cheatersSlashed}; honest slashed ${r.honestSlashed}; mean hours to detection ${r.meanHoursToDetection === null ? "-" : r.meanHoursToDetection.toFixed(3)}`,
        '',
      ].join('\n'));
    });
}
