/**
 * Issuance simulator: hourly tables for a small network, fed hour by hour
 * through the same `RollingWindow` and epoch the coordinator runs, with the
 * reward pool evolving between epochs (a steady inflow of fees; each epoch's
 * issuance leaves it). Deterministic from its seed.
 *
 * Scenario `provider-leaves`: a GPU provider holding 60 % of the measured
 * capacity (and doing about as much of the paid work) switches off after
 * hour ⌊hours/2⌋−1 (47 of 96); five CPU nodes of three operators carry on
 * with small seeded noise. Its share then rolls off over the next 23 hours
 * as its hours leave the window, and is 0 from 24 hours after it left —
 * what docs/issuance.md calls the roll-off.
 */
import { createRng, randomInt } from '../verify/rng.js';
import type { Rng } from '../verify/rng.js';
import { FORMULA, WINDOW_HOURS, invalid } from '../issuance/formula.js';
import type { Formula, HourRow, IssuanceParams, NodeInfo, NodeReliability, OperatorInfo } from '../issuance/formula.js';
import { RollingWindow } from '../issuance/window.js';

export const ISSUANCE_SCENARIOS = ['provider-leaves'] as const;
export type IssuanceScenario = (typeof ISSUANCE_SCENARIOS)[number];

export interface IssuanceSimOptions {
  readonly scenario: IssuanceScenario;
  /** Simulated hours (default 96; at least 2). */
  readonly hours?: number;
  readonly seed?: number;
}

export interface IssuanceSimHour {
  readonly hour: number;
  /** msat issued at the end of the hour. */
  readonly issued: number;
  /** The pool's balance the epoch saw (after the hour's inflow, before its issuance). */
  readonly pool: number;
  /** s_n / S per node, rounded to 1e-9 (0 when nobody scores). */
  readonly shares: Record<string, number>;
  readonly allocations: Record<string, number>;
}

export interface IssuanceSimReport {
  readonly formula: Formula;
  readonly leaver: string;
  readonly lastActiveHour: number;
  readonly hours: IssuanceSimHour[];
}

const PARAMS: IssuanceParams = { alpha: [7n, 10n], windowHours: WINDOW_HOURS, scale: 10n ** 18n, bondPerCapUnitMsat: 1000n };

interface SimNode {
  readonly id: string;
  readonly operator: string;
  readonly capMeasured: number;
  readonly slots: number;
}

const LEAVER = 'gpu-provider';
/** 300 of 500 capacity units: the GPU provider holds 60 %. */
const NODES: readonly SimNode[] = [
  { id: LEAVER, operator: 'op-gpu', capMeasured: 300, slots: 8 },
  { id: 'cpu-a1', operator: 'op-a', capMeasured: 40, slots: 2 },
  { id: 'cpu-a2', operator: 'op-a', capMeasured: 40, slots: 2 },
  { id: 'cpu-b1', operator: 'op-b', capMeasured: 40, slots: 2 },
  { id: 'cpu-c1', operator: 'op-c', capMeasured: 40, slots: 2 },
  { id: 'cpu-c2', operator: 'op-c', capMeasured: 40, slots: 2 },
];
/** Fees flowing into the pool each hour. */
const INFLOW_MSAT = 10_000_000n;
/** Starting balance: about where inflow and issuance balance out. */
const INITIAL_POOL_MSAT = 24n * INFLOW_MSAT;
/** msat paid per capacity unit and busy fraction per hour. */
const PRICE_MSAT = 10_000;
const BOND_MSAT = 1_000_000_000n;

export function simulateIssuance(opts: IssuanceSimOptions): IssuanceSimReport {
  if (!(ISSUANCE_SCENARIOS as readonly string[]).includes(opts.scenario)) {
    throw invalid(`unknown scenario ${JSON.stringify(opts.scenario)}; choose one of ${ISSUANCE_SCENARIOS.join(', ')}`);
  }
  const hours = opts.hours ?? 96;
  if (!Number.isSafeInteger(hours) || hours < 2) throw invalid(`hours must be an integer ≥ 2, got ${hours}`);
  const rng: Rng = createRng(opts.seed ?? 1);
  const lastActiveHour = Math.floor(hours / 2) - 1;

  const operators: OperatorInfo[] = [...new Set(NODES.map((n) => n.operator))].map((id) => ({ id, slashed: false }));
  const nodes: NodeInfo[] = NODES.map((n) => ({ id: n.id, operator: n.operator }));
  const operatorOf = new Map(nodes.map((n) => [n.id, n.operator]));
  const bonds = new Map(operators.map((o) => [o.id, BOND_MSAT]));
  const window = new RollingWindow(PARAMS);
  // Node-fault outcomes per hour, to sum over the window.
  const outcomes: { accepted: number[]; failed: number[] }[] = [];
  let pool = INITIAL_POOL_MSAT;
  const out: IssuanceSimHour[] = [];

  for (let hour = 0; hour < hours; hour++) {
    const rows: HourRow[] = [];
    const accepted: number[] = [], failed: number[] = [];
    for (const n of NODES) {
      // Draw for every node every hour, so the others' noise does not depend on whether the leaver is there.
      const busyFrac = 0.5 + (rng() - 0.5) * 0.1;
      const avail = 3600 - randomInt(rng, 60);
      const acc = 20 + randomInt(rng, 5);
      const fail = rng() < 0.1 ? 1 : 0;
      const active = n.id !== LEAVER || hour <= lastActiveHour;
      accepted.push(active ? acc : 0);
      failed.push(active ? fail : 0);
      if (!active) continue;
      const slotSec = n.slots * 3600;
      rows.push({
        node: n.id,
        paidMsat: BigInt(Math.round(n.capMeasured * busyFrac * PRICE_MSAT)),
        availSec: BigInt(avail),
        capMeasured: BigInt(n.capMeasured),
        busySec: BigInt(Math.round(slotSec * busyFrac)),
        slotSec: BigInt(slotSec),
      });
    }
    outcomes.push({ accepted, failed });
    window.addHour({ hour, bonds, rows }, operatorOf);

    const reliability: NodeReliability[] = NODES.map((n, k) => {
      let a = 0, f = 0;
      for (let h = Math.max(0, hour - WINDOW_HOURS + 1); h <= hour; h++) {
        a += (outcomes[h] as { accepted: number[] }).accepted[k] as number;
        f += (outcomes[h] as { failed: number[] }).failed[k] as number;
      }
      return { node: n.id, accepted: BigInt(a), failed: BigInt(f) };
    });
    pool += INFLOW_MSAT;
    const r = window.epoch({ epochHour: hour, params: PARAMS, poolMsat: pool, operators, nodes, reliability });
    const S = r.totals.score;
    const shares: Record<string, number> = {};
    const allocations: Record<string, number> = {};
    for (const n of NODES) {
      const s = r.scores.get(n.id) ?? 0n;
      shares[n.id] = S === 0n ? 0 : Number((s * 1_000_000_000n) / S) / 1e9;
      allocations[n.id] = Number(r.allocations.get(n.id) ?? 0n);
    }
    out.push({ hour, issued: Number(r.issuedMsat), pool: Number(pool), shares, allocations });
    pool -= r.issuedMsat;
  }
  return { formula: FORMULA, leaver: LEAVER, lastActiveHour, hours: out };
}
