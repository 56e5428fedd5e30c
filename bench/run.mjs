// npm run bench -- <throughput|latency|metering|ledger|settlement|issuance|all|compare|agents|tail> [--tasks N] [--reps N]
// `all` runs the quick idlemesh-only benches; compare and agents run only when named.
// Each bench prints one JSON line with its figures and the machine.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const [name = 'all', ...rest] = process.argv.slice(2);
const benches = { throughput: 'throughput.mjs', latency: 'latency.mjs', metering: 'metering.mjs', ledger: 'ledger.mjs', settlement: 'settlement.mjs', issuance: 'issuance.mjs' };
// Long benches against peers and at scale: not part of `all`.
const named = { compare: 'compare.mjs', agents: 'agents-scale.mjs', tail: 'tail.mjs' };
if (name === '--help' || name === '-h') {
  console.log('usage: npm run bench -- <throughput|latency|metering|ledger|settlement|issuance|all|compare|agents|tail> [options]\n  settlement --jobs 2000 --tasks 10\n  issuance --nodes 1000000 --seed 1 --maps 0\n  throughput --tasks 20000 --agents 2\n  latency --reps 1000 --warm 5000\n  compare --tasks 100000 --single 2000 --reps 2000 --warm 5000 --kill-tasks 100000 --only idlemesh-sqlite,bullmq\n  agents --agents 10000\n  tail --warm 6000 --jobs 8000 --slow-ms 3');
  process.exit(0);
}
const names = name === 'all' ? Object.keys(benches) : [name];
for (const n of names) {
  const file = benches[n] ?? named[n];
  if (!file) {
    console.error(`unknown bench "${n}"; choose one of ${[...Object.keys(benches), ...Object.keys(named)].join(', ')}, all`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [here + file, ...rest], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
