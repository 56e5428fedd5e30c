import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { issuanceChartSvg, simulateIssuance } from '../src/issuance/index.js';
import type { IssuanceSimHour } from '../src/issuance/index.js';

const report = simulateIssuance({ scenario: 'provider-leaves', hours: 96, seed: 1 });
const T = report.lastActiveHour;
const at = (hour: number): IssuanceSimHour => report.hours[hour] as IssuanceSimHour;
const others = Object.keys(at(0).shares).filter((id) => id !== report.leaver);

describe('sim: issuance, provider-leaves', () => {
  it('reports the agreed shape: the provider leaves after hour 47 of 96', () => {
    assert.deepEqual(Object.keys(report), ['formula', 'leaver', 'lastActiveHour', 'hours']);
    assert.equal(report.formula, 'rolling-24h/1');
    assert.equal(T, 47);
    assert.equal(report.hours.length, 96);
    report.hours.forEach((h, i) => {
      assert.deepEqual(Object.keys(h), ['hour', 'issued', 'pool', 'shares', 'allocations']);
      assert.equal(h.hour, i);
    });
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
    // The leaver holds 60 % of the capacity (and about as much of the paid work) while it is there.
    assert.ok(Math.abs((at(T).shares[report.leaver] as number) - 0.6) < 0.03, `share ${at(T).shares[report.leaver]}`);
  });

  it('the leaver\'s share falls strictly each hour for 23 hours after it leaves, then is 0', () => {
    for (let h = T + 1; h < T + 24; h++) {
      assert.ok((at(h).shares[report.leaver] as number) < (at(h - 1).shares[report.leaver] as number), `hour ${h}`);
      assert.ok((at(h).shares[report.leaver] as number) > 0, `hour ${h}`);
    }
    for (let h = T + 24; h < report.hours.length; h++) {
      assert.equal(at(h).shares[report.leaver], 0, `hour ${h}`);
      assert.equal(at(h).allocations[report.leaver], 0, `hour ${h}`);
    }
  });

  it('the others gain what the leaver loses', () => {
    for (const id of others) assert.ok((at(T + 24).shares[id] as number) > (at(T).shares[id] as number), id);
    const othersShare = (h: number): number => others.reduce((s, id) => s + (at(h).shares[id] as number), 0);
    for (let h = T + 1; h <= T + 24; h++) assert.ok(othersShare(h) > othersShare(h - 1), `hour ${h}`);
  });

  it('every hour the allocations add up to the issued amount, which the pool covers; the pool gets a steady inflow', () => {
    for (const h of report.hours) {
      assert.equal(Object.values(h.allocations).reduce((a, b) => a + b, 0), h.issued);
      assert.ok(h.issued > 0 && h.issued <= h.pool);
    }
    const inflow = at(1).pool - (at(0).pool - at(0).issued);
    assert.ok(inflow > 0);
    for (let h = 1; h < report.hours.length; h++) assert.equal(at(h).pool - (at(h - 1).pool - at(h - 1).issued), inflow);
  });

  it('is deterministic from its seed', () => {
    assert.deepEqual(simulateIssuance({ scenario: 'provider-leaves', hours: 96, seed: 1 }), report);
    assert.notDeepEqual(simulateIssuance({ scenario: 'provider-leaves', hours: 96, seed: 2 }), report);
  });

  it('refuses an unknown scenario and too few hours with IM_VALIDATION', () => {
    const isValidation = (err: unknown): boolean => err instanceof ImError && err.code === 'IM_VALIDATION';
    assert.throws(() => simulateIssuance({ scenario: 'nope' as 'provider-leaves' }), isValidation);
    assert.throws(() => simulateIssuance({ scenario: 'provider-leaves', hours: 1 }), isValidation);
  });

  it('charts every node\'s share with axes, a legend and a marker at the leaver\'s last active hour', () => {
    const svg = issuanceChartSvg(report);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    const lines = [...svg.matchAll(/<polyline class="share" data-node="([^"]+)"[^>]* points="([^"]+)"/g)];
    assert.deepEqual(lines.map((m) => m[1]), Object.keys(at(0).shares));
    for (const m of lines) assert.equal((m[2] as string).split(' ').length, report.hours.length);
    for (const id of Object.keys(at(0).shares)) assert.match(svg, new RegExp(`class="legend"[^>]*>${id}`));
    assert.equal((svg.match(/class="axis"/g) ?? []).length, 2);
    const marker = /<line class="marker" x1="([\d.]+)"/.exec(svg);
    assert.ok(marker, 'a marker line');
    // The marker sits at hour 47 of 0…95 on the plot's x scale (left 56, width 900 − 56 − 170).
    assert.equal(Number(marker[1]), Number((56 + (47 / 95) * (900 - 56 - 170)).toFixed(1)));
    assert.match(svg, />gpu-provider off after hour 47</);
  });
});
