import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { inWindows, parseHours } from '../src/hours.js';
import type { HourWindow } from '../src/hours.js';
import { LimitsEvaluator } from '../src/limits.js';
import { resolveAgentOptions } from '../src/config.js';

function at(h: number, m = 0): number {
  return h * 60 + m;
}

function windows(spec: string): HourWindow[] {
  const w = parseHours(spec);
  if (typeof w === 'string') assert.fail(`expected ${spec} to parse, got ${w}`);
  return w;
}

void test('a window that wraps midnight: 22-07 is 22:00 to 06:59', () => {
  const w = windows('22-07');
  assert.equal(inWindows(w, at(22)), true);
  assert.equal(inWindows(w, at(23, 59)), true);
  assert.equal(inWindows(w, at(0)), true);
  assert.equal(inWindows(w, at(6, 59)), true);
  assert.equal(inWindows(w, at(7)), false);
  assert.equal(inWindows(w, at(12)), false);
  assert.equal(inWindows(w, at(21, 59)), false);
});

void test('a daytime window: 9-17 ends before 17:00', () => {
  const w = windows('9-17');
  assert.equal(inWindows(w, at(8, 59)), false);
  assert.equal(inWindows(w, at(9)), true);
  assert.equal(inWindows(w, at(16, 59)), true);
  assert.equal(inWindows(w, at(17)), false);
});

void test('minutes, several windows and all day', () => {
  const w = windows('08:30-09:15,18-20');
  assert.equal(inWindows(w, at(8, 29)), false);
  assert.equal(inWindows(w, at(8, 30)), true);
  assert.equal(inWindows(w, at(9, 15)), false);
  assert.equal(inWindows(w, at(19)), true);
  const all = windows('0-24');
  assert.equal(inWindows(all, at(0)), true);
  assert.equal(inWindows(all, at(23, 59)), true);
});

void test('invalid hours are refused', () => {
  for (const bad of ['', '22', '25-03', '9-17-20', 'a-b', '9:60-10', '24-3', '7-7', '9-17,', ' - ']) {
    assert.equal(typeof parseHours(bad), 'string', `"${bad}" should be refused`);
    assert.throws(() => resolveAgentOptions({ hours: bad }, { env: {} }), (e: unknown) => e instanceof ImError && e.code === 'IM_CONFIG_INVALID', bad);
  }
});

void test('the limits evaluator pauses outside hours by the injected clock (local time)', async () => {
  let now = new Date(2024, 0, 10, 23, 30).getTime();
  const limits = new LimitsEvaluator(
    { hours: '22-07', onlyWhenCharging: false },
    { clock: { now: () => now }, power: { charging: async () => true }, load: () => 0, cores: 4 },
  );
  assert.equal(await limits.check(undefined), undefined);
  now = new Date(2024, 0, 11, 7, 0).getTime();
  assert.match((await limits.check(undefined)) ?? '', /outside hours 22-07/);
  now = new Date(2024, 0, 11, 6, 59).getTime();
  assert.equal(await limits.check(undefined), undefined);
});

void test('only-when-idle discounts the agent\'s own tasks and resumes with hysteresis', async () => {
  let now = 0;
  let load = 0;
  const limits = new LimitsEvaluator(
    { onlyWhenIdle: 0.5, onlyWhenCharging: false },
    { clock: { now: () => now }, power: { charging: async () => undefined }, load: () => load, cores: 4 },
  );
  // Someone else's work: 3 busy cores out of 4.
  load = 3;
  assert.match((await limits.check(undefined)) ?? '', /^busy/);
  // Just under the threshold, but while paused for load the bar is lower.
  load = 1.9;
  assert.match((await limits.check('busy: …')) ?? '', /^busy/);
  assert.equal(await limits.check(undefined), undefined);
  // Our own 4 tasks for a long while: the load they cause is not held against us.
  for (let i = 0; i < 600; i++) {
    now += 1000;
    limits.sampleOwnLoad(4);
  }
  load = 4;
  assert.equal(await limits.check(undefined), undefined);
  load = 7;
  assert.match((await limits.check(undefined)) ?? '', /^busy/);
});

void test('only-when-charging pauses on battery only; unknown does not pause', async () => {
  let charging: boolean | undefined = true;
  const limits = new LimitsEvaluator(
    { onlyWhenCharging: true },
    { clock: { now: () => 0 }, power: { charging: async () => charging }, load: () => 0, cores: 1 },
  );
  assert.equal(await limits.check(undefined), undefined);
  charging = false;
  assert.equal(await limits.check(undefined), 'on battery');
  charging = undefined;
  assert.equal(await limits.check(undefined), undefined);
});
