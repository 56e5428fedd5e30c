// Verification simulator: cheaters, colluders, adaptive replication, referee.
// Prints one JSON line: the simulator's figures, the targets, timing, machine.
// Usage: npx tsc -b packages/coordinator && node bench/verify-sim.mjs \
//   [--nodes 10000] [--cheaters 0.05] [--hours 48] [--mode adaptive] [--seed 1]
//   [--tasks-per-node-hour 60] [--wrong 0.5] [--collude 1] [--churn 0] [--inflate 0.1] [--retroactive 1]
import './lib.mjs'; // --help
import { cpus, totalmem } from 'node:os';
import { simulate } from '../packages/coordinator/dist/src/sim/index.js';

const KNOWN = ['nodes', 'cheaters', 'hours', 'mode', 'seed', 'tasks-per-node-hour', 'wrong', 'collude', 'churn', 'inflate', 'retroactive'];
const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i]?.replace(/^--/, '');
  if (!KNOWN.includes(k) || process.argv[i + 1] === undefined) {
    console.error(`unknown or incomplete flag ${process.argv[i]}; known: ${KNOWN.map((x) => `--${x}`).join(' ')}`);
    process.exit(2);
  }
  args[k] = process.argv[i + 1];
}
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));

const opts = {
  nodes: num('nodes', 10_000),
  cheaters: num('cheaters', 0.05),
  hours: num('hours', 48),
  mode: args.mode ?? 'adaptive',
  seed: num('seed', 1),
  tasksPerNodeHour: num('tasks-per-node-hour', 60),
  wrong: num('wrong', 0.5),
  collude: num('collude', 1),
  churn: num('churn', 0),
  inflate: num('inflate', 0.1),
  retroactive: num('retroactive', 1) !== 0,
};

const t0 = process.hrtime.bigint();
const r = simulate(opts);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const targets = { wrongAcceptedRateMax: 1e-4, overheadMax: 1.2, honestSlashedMax: 0 };
const met = r.wrongAcceptedRate <= targets.wrongAcceptedRateMax && r.overhead <= targets.overheadMax && r.honestSlashed <= targets.honestSlashedMax;

console.log(JSON.stringify({
  bench: 'verify-sim',
  ...r,
  cheaterFraction: opts.cheaters,
  tasksPerNodeHour: opts.tasksPerNodeHour,
  wrong: opts.wrong,
  collude: opts.collude,
  churn: opts.churn,
  inflate: opts.inflate,
  retroactive: opts.retroactive,
  seconds: Math.round(seconds * 100) / 100,
  tasksPerSec: Math.round(r.tasks / seconds),
  targets,
  targetsMet: met,
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, platform: process.platform },
}));
