/**
 * Inference capacity measured by the coordinator: a node serving a model
 * gets short timed completions in the probe rounds, and its measured
 * capacity (tokens × size weight per second, in capacity units) is
 * published with the frozen hour and counted in `capMeasured`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeRandomLlama } from '@idlemesh/llm';
import { startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

interface HourDoc {
  hour: number;
  rows: Array<{ node: string; capMeasured: string }>;
  probes?: Array<{ kind?: string; nodes: Record<string, { units: number; fuel?: number; done?: boolean | number }> }>;
}

describe('inference capacity probes', () => {
  const dir = tempDir('infprobe');
  let coord: CoordinatorProc;
  let agent: Proc;

  before(async () => {
    const file = join(dir.path, 'probe-4block.gguf');
    writeFileSync(file, writeRandomLlama({ blocks: 4, hidden: 128, heads: 4, kvHeads: 2, ff: 256, vocab: 512, ctx: 256, seed: 5, type: 'f32' }));
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--issuance-hour-ms', '4000', '--probe-interval-ms', '1000'] });
    agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, args: ['--model', file, '--gpu', 'off'] });
  });
  after(async () => {
    await agent.stop();
    await coord.stop();
    dir.remove();
  });

  it('times a short completion on every model-serving node and counts it in the hour\'s measured capacity', { timeout: 120_000 }, async () => {
    let node = '';
    await waitUntil(async () => {
      node = (await coord.client.nodes())[0]?.id ?? '';
      return node !== '';
    }, 30_000);
    let found: { hour: HourDoc; units: number } | undefined;
    await waitUntil(async () => {
      const latest = await fetch(`${coord.url}/v1/issuance/hours/latest`);
      if (latest.status !== 200) return false;
      const last = (await latest.json()) as HourDoc;
      for (let h = last.hour; h > last.hour - 5 && !found; h--) {
        const res = await fetch(`${coord.url}/v1/issuance/hours/${h}`);
        if (res.status !== 200) continue;
        const doc = (await res.json()) as HourDoc;
        const p = doc.probes?.find((x) => x.kind === 'inference' && (x.nodes[node]?.units ?? 0) > 0);
        if (p) found = { hour: doc, units: p.nodes[node]!.units };
      }
      return found !== undefined;
    }, 90_000, () => `no inference probe measured ${node}\n${coord.text.slice(-3000)}\n${agent.text.slice(-2000)}`);
    const { hour, units } = found!;
    const probe = hour.probes!.find((x) => x.kind === 'inference' && x.nodes[node] !== undefined)!;
    assert.equal(probe.nodes[node]?.done, true);
    assert.ok((probe.nodes[node]?.fuel ?? 0) > 0, 'the answer carried completion tokens');
    const row = hour.rows.find((r) => r.node === node);
    assert.ok(row && BigInt(row.capMeasured) >= BigInt(units), `capMeasured ${row?.capMeasured} counts the inference measurement ${units}`);
    // Probes are nobody's purchase: no buyer was charged for them.
    const jobs = (await coord.client.listJobs({ limit: 100 })).filter((j) => j.runtime === 'llm');
    assert.ok(jobs.length > 0 && jobs.every((j) => j.name?.startsWith('inference probe')), 'the only llm jobs are the probes');
    const check = (await (await fetch(`${coord.url}/v1/ledger/check`)).json()) as { ok: boolean };
    assert.equal(check.ok, true);
  });
});
