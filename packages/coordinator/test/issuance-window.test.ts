/**
 * The edges of the issuance core: what the reference and the rolling window
 * refuse, that a refused table leaves the window as it was, and the exact
 * paths for large values (contributions past 2^32 and products past 2^53).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { RollingWindow, computeEpoch, parseEpochDocument } from '../src/issuance/index.js';
import type { EpochInput, HourRow, HourTable } from '../src/issuance/index.js';
import { H, PARAMS, network, viaWindow } from './issuance-networks.js';

const invalid = (fn: () => unknown, pattern: RegExp): void => {
  assert.throws(fn, (err: unknown) => err instanceof ImError && err.code === 'IM_VALIDATION' && pattern.test(err.message));
};

const row = (node: string, over: Partial<HourRow> = {}): HourRow => ({ node, paidMsat: 1000n, availSec: 3600n, capMeasured: 10n, busySec: 100n, slotSec: 3600n, ...over });
const base: EpochInput = {
  epochHour: H,
  params: PARAMS,
  poolMsat: 48_000_000n,
  operators: [{ id: 'op-a', slashed: false }, { id: 'op-b', slashed: false }],
  nodes: [{ id: 'n1', operator: 'op-a' }, { id: 'n2', operator: 'op-a' }, { id: 'n3', operator: 'op-b' }],
  hours: [
    { hour: H - 1, bonds: new Map([['op-a', 10n ** 9n], ['op-b', 10n ** 9n]]), rows: [row('n1'), row('n2', { paidMsat: 3000n }), row('n3')] },
    { hour: H, bonds: new Map([['op-a', 15_000n], ['op-b', 10n ** 9n]]), rows: [row('n1'), row('n3', { capMeasured: 30n })] },
  ],
  reliability: [{ node: 'n1', accepted: 10n, failed: 0n }, { node: 'n2', accepted: 5n, failed: 1n }, { node: 'n3', accepted: 7n, failed: 2n }],
};
const operatorOf = new Map(base.nodes.map((n) => [n.id, n.operator]));

describe('issuance: what is refused', () => {
  it('the reference refuses inconsistent inputs with IM_VALIDATION', () => {
    invalid(() => computeEpoch({ ...base, params: { ...PARAMS, windowHours: 12 } }), /24-hour window/);
    invalid(() => computeEpoch({ ...base, params: { ...PARAMS, alpha: [11n, 10n] } }), /alpha/);
    invalid(() => computeEpoch({ ...base, params: { ...PARAMS, bondPerCapUnitMsat: 0n } }), /bondPerCapUnitMsat/);
    invalid(() => computeEpoch({ ...base, hours: [{ ...(base.hours[0] as HourTable), hour: H - 24 }] }), /outside the window/);
    invalid(() => computeEpoch({ ...base, hours: [{ ...(base.hours[0] as HourTable), hour: H + 1 }] }), /outside the window/);
    invalid(() => computeEpoch({ ...base, hours: [base.hours[1] as HourTable, base.hours[1] as HourTable] }), /given twice/);
    invalid(() => computeEpoch({ ...base, hours: [{ hour: H, bonds: new Map(), rows: [row('n9')] }] }), /not listed/);
    invalid(() => computeEpoch({ ...base, hours: [{ hour: H, bonds: new Map(), rows: [row('n1'), row('n1')] }] }), /two rows/);
    invalid(() => computeEpoch({ ...base, hours: [{ hour: H, bonds: new Map(), rows: [row('n1', { busySec: 3601n })] }] }), /exceeds slotSec/);
    invalid(() => computeEpoch({ ...base, hours: [{ hour: H, bonds: new Map(), rows: [row('n1', { paidMsat: -1n })] }] }), /negative/);
    invalid(() => computeEpoch({ ...base, operators: [...base.operators, { id: 'op-a', slashed: true }] }), /listed twice/);
    invalid(() => computeEpoch({ ...base, nodes: [...base.nodes, { id: 'n4', operator: 'op-z' }] }), /not listed/);
    invalid(() => computeEpoch({ ...base, reliability: [...base.reliability, { node: 'n1', accepted: 1n, failed: 0n }] }), /twice/);
    invalid(() => computeEpoch({ ...base, reliability: [...base.reliability, { node: 'n9', accepted: 1n, failed: 0n }] }), /not listed/);
  });

  it('the parser refuses unknown keys, numbers where decimal strings belong, and another formula', () => {
    const json = { formula: 'rolling-24h/1', epochHour: 1, params: { alpha: [7, 10], windowHours: 24, scale: '1', bondPerCapUnitMsat: '1' }, poolMsat: '0', operators: [], nodes: [], hours: [], reliability: [] };
    assert.equal(parseEpochDocument(json).input.epochHour, 1);
    invalid(() => parseEpochDocument({ ...json, extra: 1 }), /extra/);
    invalid(() => parseEpochDocument({ ...json, poolMsat: 5 }), /poolMsat/);
    invalid(() => parseEpochDocument({ ...json, poolMsat: '05' }), /poolMsat/);
    invalid(() => parseEpochDocument({ ...json, formula: 'rolling-24h/2' }), /formula/);
  });

  it('the window refuses an hour out of order, an unknown operator, a node twice, an epoch before its last hour and other params', () => {
    const w = new RollingWindow(PARAMS);
    w.addHour(base.hours[1] as HourTable, operatorOf);
    invalid(() => w.addHour(base.hours[0] as HourTable, operatorOf), /not after/);
    invalid(() => w.addHour({ hour: H + 1, bonds: new Map(), rows: [row('n1')] }, new Map()), /operator is not known/);
    invalid(() => w.epoch({ ...base, epochHour: H - 1 }), /before the last hour/);
    invalid(() => w.epoch({ ...base, params: { ...PARAMS, bondPerCapUnitMsat: 7n } }), /differ/);
    invalid(() => w.epoch({ ...base, nodes: [{ id: 'n1', operator: 'op-a' }] }), /not listed/);
    invalid(() => w.epoch({ ...base, nodes: [...base.nodes, { id: 'n1', operator: 'op-a' }] }), /twice/);
    invalid(() => w.addHourColumns({ hour: H + 1, bonds: new Map(), nodes: ['n1'], paidMsat: [1], availSec: [1], capMeasured: [1], busySec: [1], slotSec: [] }, operatorOf), /column slotSec/);
    invalid(() => w.addHourColumns({ hour: H + 1, bonds: new Map(), nodes: ['n1'], paidMsat: [0.5], availSec: [1], capMeasured: [1], busySec: [1], slotSec: [1] }, operatorOf), /integers/);
  });

  it('a refused table leaves the window exactly as it was', () => {
    const w = new RollingWindow(PARAMS);
    w.addHour(base.hours[0] as HourTable, operatorOf);
    const before = w.stats();
    // n4 is new: registered while the table is read, released when its second n1 row is refused.
    const withN4 = new Map([...operatorOf, ['n4', 'op-b']]);
    invalid(() => w.addHour({ hour: H, bonds: new Map(), rows: [row('n4'), row('n1'), row('n1')] }, withN4), /two rows/);
    invalid(() => w.addHour({ hour: H, bonds: new Map(), rows: [row('n4'), row('n1', { busySec: 4000n })] }, withN4), /exceeds/);
    assert.deepEqual(w.stats(), before);
    assert.equal(before.slots, 3);
    w.addHour(base.hours[1] as HourTable, operatorOf);
    assert.deepStrictEqual(w.epoch(base), computeEpoch(base));
  });
});

describe('issuance: the rolling window', () => {
  it('matches the reference on contributions past 2^32 and products past 2^53, with and without a binding cap', () => {
    const huge = (node: string, paid: bigint, cap: bigint): HourRow => row(node, { paidMsat: paid, capMeasured: cap });
    const input: EpochInput = {
      ...base,
      hours: [
        { hour: H - 2, bonds: new Map([['op-a', 10n ** 30n], ['op-b', 10n ** 30n]]), rows: [huge('n1', 2n ** 52n, 2n ** 45n), huge('n2', 2n ** 33n + 7n, 3n), huge('n3', 5n, 2n ** 40n)] },
        // op-a capped, with cap·m past 2^53: the bigint branch of the cap rule.
        { hour: H - 1, bonds: new Map([['op-a', 1000n * 2n ** 44n], ['op-b', 0n]]), rows: [huge('n1', 1n, 2n ** 45n), huge('n2', 2n ** 40n, 2n ** 44n + 1n), huge('n3', 2n ** 50n, 9n)] },
        { hour: H, bonds: new Map([['op-a', 1000n * 1000n], ['op-b', 10n ** 30n]]), rows: [huge('n1', 9n, 1999n), huge('n2', 10n, 1n)] },
      ],
    };
    assert.deepStrictEqual(viaWindow(input), computeEpoch(input));
    assert.deepStrictEqual(viaWindow(input, true), computeEpoch(input));
  });

  it('refuses row values of 2^53 or more and availSec × capacity past 2^64, which the reference takes', () => {
    const input: EpochInput = { ...base, hours: [{ hour: H, bonds: new Map(), rows: [row('n1', { paidMsat: 2n ** 53n })] }] };
    assert.ok(computeEpoch(input).issuedMsat > 0n);
    invalid(() => viaWindow(input), /2\^53/);
    const wide: EpochInput = { ...base, hours: [{ hour: H, bonds: new Map([['op-a', 10n ** 40n]]), rows: [row('n1', { availSec: 2n ** 40n, capMeasured: 2n ** 30n, busySec: 0n })] }] };
    assert.ok(computeEpoch(wide).totals.capacity === 2n ** 70n);
    invalid(() => viaWindow(wide), /2\^64/);
    invalid(() => viaWindow(wide, true), /2\^64/);
  });

  it('drops hours as they leave the window, frees churned nodes and reuses their slots', () => {
    const nodes = Array.from({ length: 8 }, (_, k) => ({ id: `c${k}`, operator: 'op-a' }));
    const ctx = { ...base, operators: [{ id: 'op-a', slashed: false }], nodes, reliability: nodes.map((n) => ({ node: n.id, accepted: 3n, failed: 0n })) };
    const opOf = new Map(nodes.map((n) => [n.id, n.operator]));
    const w = new RollingWindow(PARAMS);
    const tables: HourTable[] = [];
    for (let h = H - 60; h <= H; h++) {
      // Two nodes at a time, rotating every 20 hours: old ones leave the window entirely.
      const k = Math.floor((h - (H - 60)) / 20) * 2;
      const t: HourTable = { hour: h, bonds: new Map([['op-a', 10n ** 9n]]), rows: [row(`c${k}`), row(`c${k + 1}`, { paidMsat: BigInt(h % 97) })] };
      tables.push(t);
      w.addHour(t, opOf);
      const inWindow = tables.filter((x) => x.hour > h - 24);
      assert.deepStrictEqual(w.epoch({ ...ctx, epochHour: h }), computeEpoch({ ...ctx, epochHour: h, hours: inWindow }));
      assert.equal(w.stats().activeNodes, new Set(inWindow.flatMap((x) => x.rows.map((r) => r.node))).size);
      assert.equal(w.stats().rows, inWindow.length * 2);
      assert.equal(w.stats().slots, w.stats().activeNodes, 'churned nodes give their slots back');
    }
  });

  it('epochColumns is epoch as arrays aligned with the node list', () => {
    const input = network({ seed: 5, operators: 3, nodes: 8, offsets: [0, 1, 2, 3, 7, 20], slashedChance: 0, noWork: false, noCapacity: false });
    const w = new RollingWindow(PARAMS);
    const opOf = new Map(input.nodes.map((n) => [n.id, n.operator]));
    for (const t of [...input.hours].sort((a, b) => a.hour - b.hour)) w.addHour(t, opOf);
    const c = w.epochColumns(input);
    const m = w.epoch(input);
    assert.deepEqual(c.allocations, input.nodes.map((n) => m.allocations.get(n.id)));
    assert.deepEqual(c.scores, input.nodes.map((n) => m.scores.get(n.id)));
    assert.equal(c.issuedMsat, m.issuedMsat);
  });
});
