/**
 * Random small networks for the issuance property tests: fast-check picks
 * the shape and a seed, a seeded Rng fills in the rows, so a failure
 * replays from what fast-check prints.
 */
import fc from 'fast-check';
import { createRng, randomInt } from '../src/verify/rng.js';
import type { Rng } from '../src/verify/rng.js';
import { RollingWindow, WINDOW_HOURS } from '../src/issuance/index.js';
import type { EpochInput, EpochResult, HourRow, HourTable, IssuanceParams, NodeReliability } from '../src/issuance/index.js';

export const PARAMS: IssuanceParams = { alpha: [7n, 10n], windowHours: WINDOW_HOURS, scale: 10n ** 18n, bondPerCapUnitMsat: 1000n };
export const H = 490_000;

export interface Shape {
  readonly seed: number;
  readonly operators: number;
  readonly nodes: number;
  /** Offsets back from the epoch hour (0 … 23) that have a table. */
  readonly offsets: readonly number[];
  readonly slashedChance: number;
  readonly noWork: boolean;
  readonly noCapacity: boolean;
}

export const shapeArb: fc.Arbitrary<Shape> = fc.record({
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  operators: fc.integer({ min: 1, max: 4 }),
  nodes: fc.integer({ min: 1, max: 8 }),
  offsets: fc.uniqueArray(fc.integer({ min: 0, max: WINDOW_HOURS - 1 }), { maxLength: WINDOW_HOURS }),
  slashedChance: fc.constantFrom(0, 0, 0.3),
  noWork: fc.constantFrom(false, false, false, true),
  noCapacity: fc.constantFrom(false, false, false, true),
});

const big = (rng: Rng, n: number): bigint => BigInt(randomInt(rng, n));

/** Bond: none, tight (the cap binds), or plenty. */
function bond(rng: Rng): bigint {
  const u = rng();
  return u < 0.15 ? 0n : u < 0.45 ? 1000n * big(rng, 1500) : 10n ** 12n;
}

export function row(rng: Rng, node: string, shape: Pick<Shape, 'noWork' | 'noCapacity'>): HourRow {
  const slotSec = big(rng, 30_000);
  return {
    node,
    paidMsat: shape.noWork || rng() < 0.2 ? 0n : big(rng, 1_000_000),
    availSec: shape.noCapacity ? 0n : big(rng, 3601),
    capMeasured: big(rng, 1001),
    busySec: slotSec === 0n ? 0n : big(rng, Number(slotSec) + 1),
    slotSec,
  };
}

export function network(shape: Shape): EpochInput {
  const rng = createRng(shape.seed);
  const operators = Array.from({ length: shape.operators }, (_, k) => ({ id: `op-${k}`, slashed: rng() < shape.slashedChance }));
  const nodes = Array.from({ length: shape.nodes }, (_, k) => ({ id: `node-${k}`, operator: `op-${randomInt(rng, shape.operators)}` }));
  const hours: HourTable[] = [...shape.offsets].sort((a, b) => b - a).map((off) => ({
    hour: H - off,
    bonds: new Map(operators.map((o) => [o.id, bond(rng)])),
    rows: nodes.filter(() => rng() < 0.85).map((n) => row(rng, n.id, shape)),
  }));
  const reliability: NodeReliability[] = nodes.filter(() => rng() < 0.9)
    .map((n) => ({ node: n.id, accepted: big(rng, 300), failed: big(rng, 30) }));
  return { epochHour: H, params: PARAMS, poolMsat: big(rng, 1e13), operators, nodes, hours, reliability };
}

/** The epoch through the rolling window, its hours added one by one in order. */
export function viaWindow(input: EpochInput, columns = false): EpochResult {
  const w = new RollingWindow(input.params);
  const operatorOf = new Map(input.nodes.map((n) => [n.id, n.operator]));
  for (const t of [...input.hours].sort((a, b) => a.hour - b.hour)) {
    if (!columns) { w.addHour(t, operatorOf); continue; }
    w.addHourColumns({
      hour: t.hour, bonds: t.bonds, nodes: t.rows.map((r) => r.node),
      paidMsat: t.rows.map((r) => Number(r.paidMsat)), availSec: t.rows.map((r) => Number(r.availSec)),
      capMeasured: t.rows.map((r) => Number(r.capMeasured)), busySec: t.rows.map((r) => Number(r.busySec)),
      slotSec: t.rows.map((r) => Number(r.slotSec)),
    }, operatorOf);
  }
  return w.epoch(input);
}

export function sum(values: Iterable<bigint>): bigint {
  let s = 0n;
  for (const v of values) s += v;
  return s;
}
