import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ImError } from '@idlemesh/protocol';
import type { issuance as Issuance } from '@idlemesh/coordinator';
import { floatArg, intArg } from '../options.js';
import { note, out, outJson } from '../output.js';

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

interface IssuanceFlags {
  scenario: Issuance.IssuanceScenario;
  hours: number;
  seed: number;
  json?: boolean;
  chart?: string;
}

// Listed here so that --help does not load the coordinator; the type keeps it in step.
const ISSUANCE_SCENARIOS = ['provider-leaves'] as const satisfies readonly Issuance.IssuanceScenario[];

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

  sim.command('issuance')
    .description('the rolling-24h/1 issuance formula hour by hour through the rolling window: issued msat, pool and each node\'s share (docs/issuance.md)')
    .addOption(new Option('--scenario <name>', 'provider-leaves: a GPU provider with 60 % of the capacity switches off halfway').choices(ISSUANCE_SCENARIOS).makeOptionMandatory())
    .option('--hours <h>', 'simulated hours (the provider leaves after hour ⌊h/2⌋−1)', intArg(2, 24 * 365), 96)
    .option('--seed <n>', 'random seed', intArg(0), 1)
    .option('--json', 'print the report as one JSON object: {formula, leaver, lastActiveHour, hours: [{hour, issued, pool, shares, allocations}]}')
    .option('--chart <file>', 'also write an SVG chart of every node\'s share per hour to this file')
    .action(async (f: IssuanceFlags) => {
      const { issuance } = await import('@idlemesh/coordinator');
      const r = issuance.simulateIssuance({ scenario: f.scenario, hours: f.hours, seed: f.seed });
      if (f.chart !== undefined) {
        try {
          await writeFile(f.chart, issuance.issuanceChartSvg(r));
        } catch (err) {
          throw new ImError('IM_CLI_USAGE', `cannot write the chart to ${f.chart}: ${(err as Error).message}`, { cause: err });
        }
        note(`chart written to ${f.chart}`);
      }
      if (f.json) return outJson(r);
      const lines = [
        `${f.scenario}: ${r.leaver} off after hour ${r.lastActiveHour}; ${r.hours.length} hours, seed ${f.seed}, ${r.formula}`,
        `${'hour'.padStart(5)}  ${'issued msat'.padStart(14)}  ${'pool msat'.padStart(14)}  top shares`,
      ];
      for (const h of r.hours) {
        const top = Object.entries(h.shares).sort((a, b) => b[1] - a[1]).slice(0, 3)
          .map(([id, s]) => `${id} ${(s * 100).toFixed(1)} %`).join('  ');
        lines.push(`${String(h.hour).padStart(5)}  ${String(h.issued).padStart(14)}  ${String(h.pool).padStart(14)}  ${top}`);
      }
      await out(`${lines.join('\n')}\n`);
    });
}
