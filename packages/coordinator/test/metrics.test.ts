import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics, timed } from '../src/metrics.js';

/** The count and sum of one step of idlemesh_job_path_step_seconds, as /metrics shows them. */
async function step(metrics: ReturnType<typeof createMetrics>, name: string): Promise<{ count: number; sum: number }> {
  const values = (await metrics.pathStep.get()).values.filter((v) => v.labels.step === name);
  return {
    count: values.find((v) => v.metricName === 'idlemesh_job_path_step_seconds_count')?.value ?? 0,
    sum: values.find((v) => v.metricName === 'idlemesh_job_path_step_seconds_sum')?.value ?? 0,
  };
}

describe('job path step timing', () => {
  it('times a step that succeeds and one that throws, and passes results and errors through', async () => {
    const m = createMetrics();
    assert.equal(await timed(m, 'signature', async () => {
      await new Promise((r) => setTimeout(r, 5));
      return 42;
    }), 42);
    await assert.rejects(timed(m, 'results', async () => {
      throw new Error('disk full');
    }), /disk full/);
    const sig = await step(m, 'signature');
    assert.equal(sig.count, 1);
    assert.ok(sig.sum >= 0.004, `a 5 ms step took ${sig.sum} s`);
    assert.equal((await step(m, 'results')).count, 1, 'a failed step is timed too');
    assert.equal((await step(m, 'submit')).count, 0);
    // In seconds, not milliseconds: a 5 ms step is not under 50 µs.
    const text = await m.registry.metrics();
    assert.match(text, /idlemesh_job_path_step_seconds_bucket\{le="0\.00005",step="signature"\} 0/);
    assert.match(text, /idlemesh_job_path_step_seconds_bucket\{le="\+Inf",step="signature"\} 1/);
  });
});
