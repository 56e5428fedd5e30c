import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sysfsPowerSource } from '../src/power.js';

async function fakeSysfs(supplies: Record<string, Record<string, string>>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'im-power-'));
  for (const [name, attrs] of Object.entries(supplies)) {
    await mkdir(join(dir, name));
    for (const [k, v] of Object.entries(attrs)) await writeFile(join(dir, name, k), `${v}\n`);
  }
  return dir;
}

void test('laptop on mains, on battery, and charging states', async (t) => {
  const cases: [string, Record<string, Record<string, string>>, boolean][] = [
    ['mains online', { AC: { type: 'Mains', online: '1' }, BAT0: { type: 'Battery', status: 'Discharging' } }, true],
    ['mains offline, discharging', { AC: { type: 'Mains', online: '0' }, BAT0: { type: 'Battery', status: 'Discharging' } }, false],
    ['battery charging', { BAT0: { type: 'Battery', status: 'Charging' } }, true],
    ['battery full', { BAT1: { type: 'Battery', status: 'Full' } }, true],
    ['battery discharging', { BAT0: { type: 'Battery', status: 'Discharging' } }, false],
    ['usb-c online', { ucsi: { type: 'USB', online: '1' }, BAT0: { type: 'Battery', status: 'Discharging' } }, true],
    ['only a mouse battery', { hidpp: { type: 'Battery', scope: 'Device', status: 'Discharging' } }, true],
    ['desktop: mains only', { AC: { type: 'Mains', online: '1' } }, true],
    ['no supplies at all', {}, true],
  ];
  for (const [name, supplies, expected] of cases) {
    const dir = await fakeSysfs(supplies);
    t.after(() => rm(dir, { recursive: true, force: true }));
    assert.equal(await sysfsPowerSource(dir).charging(), expected, name);
  }
});

void test('a machine without the sysfs directory counts as charging', async () => {
  assert.equal(await sysfsPowerSource(join(tmpdir(), 'im-no-such-dir-', String(Math.random()))).charging(), true);
});
