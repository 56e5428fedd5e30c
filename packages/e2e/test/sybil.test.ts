/**
 * Sybil resistance: one network prefix may enrol only so many new node
 * identities per hour; nodes the coordinator already knows reconnect freely.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, startAgentProc, startCoordinatorProc, tempDir, waitForNodes } from './helpers.js';

describe('enrolment rate limit', () => {
  it('refuses the third new node from one /24 in an hour, not a known node coming back', async () => {
    const dir = tempDir('sybil');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--enrol-per-prefix-per-hour', '2'] });
    const a1 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a1`, name: 'a1' });
    const a2 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a2`, name: 'a2' });
    let a3: ReturnType<typeof startAgentProc> | undefined;
    let back: ReturnType<typeof startAgentProc> | undefined;
    try {
      await waitForNodes(coord.client, 2);
      a3 = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a3`, name: 'a3' });
      await a3.waitFor(/IM_RATE_LIMITED|too many new nodes/, 20_000);
      await sleep(300);
      assert.equal((await coord.client.nodes()).length, 2, 'the third identity was not enrolled');
      // A known node reconnects whatever the count.
      await a1.stop();
      back = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/a1`, name: 'a1-again' });
      await back.waitFor(/serving|connected/, 20_000);
      await waitForNodes(coord.client, 2);
    } finally {
      await back?.stop();
      await a3?.stop();
      await a2.stop();
      await a1.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
