// Issuance (rolling-24h/1) at scale: a window of 24 synthetic hourly tables
// over N nodes (seeded), held by the incremental RollingWindow; times adding
// one more hour (which also drops the oldest) and one epoch over every node
// (epochColumns: per-node arrays; with --maps 1, epoch: per-node Maps).
// Prints one JSON line. Usage: npx tsc -b packages/coordinator && node bench/issuance.mjs [--nodes 1000000] [--seed 1] [--maps 0|1]
import { arg, machine } from './lib.mjs';
import { RollingWindow, WINDOW_HOURS } from '../packages/coordinator/dist/src/issuance/index.js';
import { createRng } from '../packages/coordinator/dist/src/verify/rng.js';

const NODES = Number(arg('nodes', 1_000_000));
const SEED = Number(arg('seed', 1));
// --maps 1 times epoch() (per-node Maps) instead of epochColumns() (arrays aligned with the node list).
const MAPS = Number(arg('maps', 0)) !== 0;
const NODES_PER_OPERATOR = 8;
const H0 = 490_000;
const params = { alpha: [7n, 10n], windowHours: WINDOW_HOURS, scale: 10n ** 18n, bondPerCapUnitMsat: 1000n };

const rng = createRng(SEED);
const int = (n) => Math.floor(rng() * n);
const nodes = [];
const operatorOf = new Map();
const cap = new Uint16Array(NODES);
const slots = new Uint8Array(NODES);
for (let i = 0; i < NODES; i++) {
  const id = `node-${i.toString(36).padStart(4, '0')}`;
  const operator = `op-${Math.floor(i / NODES_PER_OPERATOR)}`;
  nodes.push({ id, operator });
  operatorOf.set(id, operator);
  cap[i] = 1 + int(500);
  slots[i] = 1 + int(8);
}
const operatorIds = [...new Set(nodes.map((n) => n.operator))];
// One operator in ten is under-bonded, so the cap binds for it (the slow path of the cap rule).
const bonds = new Map(operatorIds.map((op, k) => [op, k % 10 === 0 ? BigInt(1000 * 500) : 10n ** 12n]));
const operators = operatorIds.map((id, k) => ({ id, slashed: k % 997 === 0 }));
// Small counts share their bigint instances, as any store's decoder could.
const small = Array.from({ length: 501 }, (_, k) => BigInt(k));
const reliability = nodes.map((n) => ({ node: n.id, accepted: small[1 + int(500)], failed: small[int(20)] }));

// Hours arrive as columns of numbers (HourColumns), the form a store hands
// over for a million rows; the buffers are reused hour to hour because the
// window keeps only its own typed arrays.
const ids = nodes.map((n) => n.id);
const cols = { paidMsat: new Float64Array(NODES), availSec: new Float64Array(NODES), capMeasured: new Float64Array(NODES), busySec: new Float64Array(NODES), slotSec: new Float64Array(NODES) };
function table(hour) {
  for (let i = 0; i < NODES; i++) {
    const slot = slots[i] * 3600;
    const busy = int(slot + 1);
    cols.paidMsat[i] = busy * (50 + int(100));
    cols.availSec[i] = 3000 + int(601);
    cols.capMeasured[i] = cap[i];
    cols.busySec[i] = busy;
    cols.slotSec[i] = slot;
  }
  return { hour, bonds, nodes: ids, ...cols };
}

let peakRss = 0;
const sample = () => { peakRss = Math.max(peakRss, process.memoryUsage().rss); };
const window = new RollingWindow(params);
for (let h = 0; h < WINDOW_HOURS; h++) { window.addHourColumns(table(H0 + h), operatorOf); sample(); }
const next = table(H0 + WINDOW_HOURS);
let t0 = process.hrtime.bigint();
window.addHourColumns(next, operatorOf);
const addHourMs = Number(process.hrtime.bigint() - t0) / 1e6;
sample();

const epochHour = H0 + WINDOW_HOURS;
const ctx = { epochHour, params, poolMsat: 7_000_000_000_000n, operators, nodes, reliability };
t0 = process.hrtime.bigint();
const r = MAPS ? window.epoch(ctx) : window.epochColumns(ctx);
const epochMs = Number(process.hrtime.bigint() - t0) / 1e6;
sample();

let sum = 0n;
for (const a of r.allocations.values()) sum += a;
if (sum !== r.issuedMsat) throw new Error(`allocations add up to ${sum}, issued ${r.issuedMsat}`);

const target = { epochMs: 2000, rssMB: 1024 };
const rssMB = Math.round(peakRss / 2 ** 20);
console.log(JSON.stringify({
  bench: 'issuance',
  nodes: NODES,
  hours: window.stats().hours,
  rows: window.stats().rows,
  epochMs: Math.round(epochMs),
  result: MAPS ? 'maps' : 'arrays',
  addHourMs: Math.round(addHourMs),
  rssMB,
  issuedMsat: r.issuedMsat.toString(),
  target,
  targetsMet: epochMs <= target.epochMs && rssMB <= target.rssMB,
  machine: machine(),
}));
