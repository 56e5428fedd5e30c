import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli } from './helpers.js';

describe('idlemesh sim issuance', () => {
  it('--json prints the report; --chart writes the SVG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-sim-issuance-'));
    try {
      const chart = join(dir, 'shares.svg');
      const r = await cli(['sim', 'issuance', '--scenario', 'provider-leaves', '--hours', '48', '--seed', '3', '--json', '--chart', chart]);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout) as { formula: string; leaver: string; lastActiveHour: number; hours: unknown[] };
      assert.equal(report.formula, 'rolling-24h/1');
      assert.equal(report.lastActiveHour, 23);
      assert.equal(report.hours.length, 48);
      assert.match(readFileSync(chart, 'utf8'), /^<svg[^]*<\/svg>\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints a table by default: one line per hour with issued, pool and top shares', async () => {
    const r = await cli(['sim', 'issuance', '--scenario', 'provider-leaves']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] as string, /gpu-provider off after hour 47/);
    assert.match(lines[1] as string, /hour\s+issued msat\s+pool msat\s+top shares/);
    assert.equal(lines.length, 2 + 96);
    assert.match(lines[2] as string, /^\s+0\s+\d+\s+\d+\s+gpu-provider \d+\.\d %/);
  });

  it('a bad or missing --scenario is a usage error (exit 2, IM_CLI_USAGE); --help describes the command', async () => {
    const bad = await cli(['sim', 'issuance', '--scenario', 'nope']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error IM_CLI_USAGE: .*provider-leaves/);
    const missing = await cli(['sim', 'issuance']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /IM_CLI_USAGE: required option '--scenario/);
    const help = await cli(['sim', 'issuance', '--help']);
    assert.equal(help.code, 0);
    for (const s of ['--scenario', 'provider-leaves', '--hours', '--seed', '--json', '--chart']) assert.ok(help.stdout.includes(s), s);
  });
});
