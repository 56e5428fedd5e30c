/**
 * The verification simulator at CI size (1,000 nodes, 12 simulated hours,
 * 5 % cheaters wrong half the time, 60 tasks per node-hour) through the CLI:
 * adaptive replication meets the targets alone and against
 * colluding groups of 3. The full 10,000-node, 48-hour run is in
 * bench/verify-sim.mjs and docs/verification.md.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './helpers.js';

interface Report { tasks: number; overhead: number; wrongAcceptedRate: number; cheaters: number; cheatersSlashed: number; honestSlashed: number }

async function sim(...args: string[]): Promise<Report> {
  const p = runCli('sim', ['sim', 'verify', '--nodes', '1000', '--hours', '12', '--cheaters', '0.05', '--wrong', '0.5', '--mode', 'adaptive', '--json', ...args]);
  assert.equal(await p.wait(), 0, p.text);
  return JSON.parse(p.output.join('').trim().split('\n').pop()!) as Report;
}

describe('verification simulator (CI size)', () => {
  for (const collude of ['1', '3']) {
    it(`adaptive, colluding groups of ${collude}: wrong accepted ≤ 1e-4, overhead ≤ 1.2×, no honest node slashed`, async () => {
      const r = await sim('--collude', collude, '--seed', '7');
      assert.equal(r.tasks, 1000 * 12 * 60);
      assert.ok(r.wrongAcceptedRate <= 1e-4, `wrong accepted ${r.wrongAcceptedRate}`);
      assert.ok(r.overhead <= 1.2, `overhead ${r.overhead}`);
      assert.equal(r.honestSlashed, 0);
      assert.ok(r.cheatersSlashed > 0.9 * r.cheaters, `caught ${r.cheatersSlashed} of ${r.cheaters}`);
    });
  }

  it('trusted mode catches nobody (what the other modes are for)', async () => {
    const r = await sim('--mode', 'trusted', '--hours', '2');
    assert.ok(r.wrongAcceptedRate > 1e-3);
    assert.equal(r.cheatersSlashed, 0);
  });
});
