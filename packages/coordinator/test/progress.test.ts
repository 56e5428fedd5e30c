import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressHub } from '../src/progress.js';
import type { JobRecord } from '../src/store/index.js';

/** A hub over one job whose state the test sets, counting the reads it makes. */
function hub() {
  let state = 'running';
  let reads = 0;
  const h = new ProgressHub(async (id) => {
    reads++;
    return { id, state } as unknown as JobRecord;
  }, 0);
  const tick = () => new Promise((r) => setImmediate(r));
  return { h, tick, set: (s: string) => (state = s), reads: () => reads };
}

describe('progress hub', () => {
  it('a watcher of the end only is not read for on a lease, and hears the end', async () => {
    const { h, tick, set, reads } = hub();
    const heard: Array<[string, boolean]> = [];
    h.watch('j1', (job, final) => heard.push([job.state, final]), { finalOnly: true });
    h.notify(['j1'], true); // a lease: cannot have ended the job
    await tick();
    assert.equal(reads(), 0);
    h.notify(['j1']); // results that did not end it
    await tick();
    assert.equal(reads(), 1);
    assert.deepEqual(heard, []);
    set('completed');
    h.notify(['j1']);
    await tick();
    assert.deepEqual(heard, [['completed', true]]);
  });

  it('a progress watcher beside it hears the lease; the end-only one still hears only the end', async () => {
    const { h, tick, set, reads } = hub();
    const progress: boolean[] = [];
    const end: boolean[] = [];
    h.watch('j1', (_job, final) => progress.push(final));
    const stop = h.watch('j1', (_job, final) => end.push(final), { finalOnly: true });
    h.notify(['j1'], true);
    await tick();
    assert.equal(reads(), 1);
    assert.deepEqual(progress, [false]);
    assert.deepEqual(end, []);
    set('cancelled');
    h.notify(['j1']);
    await tick();
    assert.deepEqual(progress, [false, true]);
    assert.deepEqual(end, [true]);
    stop();
    h.notify(['j1'], true);
    await tick();
    assert.equal(progress.length, 3, 'the progress watcher is still there');
    h.close();
  });
});
