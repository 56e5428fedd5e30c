/**
 * Code evaluation on the mesh: `idlemesh eval` sends the example problem set
 * (examples/code-eval) to an agent running the python runtime; every
 * candidate — correct, failing, an infinite loop, a memory bomb, a syntax
 * error — gets the verdict it should, the agent stays up, and the same
 * candidate costs the same fuel on a second run.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, b64, runCli, startAgentProc, startCoordinatorProc, tempDir, waitForNodes } from './helpers.js';

describe('code evaluation', () => {
  it('gives every example candidate its expected verdict, deterministically, and refuses malformed code tasks', async () => {
    const dir = tempDir('code-eval');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord` });
    const agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, maxTasks: 1, args: ['--code-runtimes'] });
    try {
      await waitForNodes(coord.client, 1);
      const candidates = join(ROOT, 'examples/code-eval/candidates.jsonl');
      const problems = join(ROOT, 'examples/code-eval/problems.jsonl');
      const expected = new Map(readFileSync(candidates, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; expected: string }).map((c) => [c.id, c.expected]));
      const run = async (out: string): Promise<Array<{ id: string; verdict: string; fuel: number }>> => {
        const p = runCli('eval', ['--coordinator', coord.url, 'eval', candidates, '--tests', problems, '--out', out, '--json', '--k', '1']);
        assert.equal(await p.wait(), 0, p.text);
        const report = JSON.parse(p.text) as { summary: { candidates: number; passed: number; passAtK: Record<string, number> } };
        assert.equal(report.summary.candidates, expected.size);
        return readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; verdict: string; fuel: number });
      };
      const first = await run(`${dir.path}/r1.jsonl`);
      for (const r of first) assert.equal(r.verdict, expected.get(r.id), `${r.id}: ${JSON.stringify(r)}`);
      const second = await run(`${dir.path}/r2.jsonl`);
      assert.deepEqual(second.map((r) => [r.id, r.verdict, r.fuel]), first.map((r) => [r.id, r.verdict, r.fuel]), 'same fuel whatever ran before');
      assert.equal((await coord.client.nodes())[0]?.state, 'online', 'the agent stayed up');

      const bad = await fetch(`${coord.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ runtime: 'python', inputs: [b64('print(1)')] }) });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'IM_VALIDATION');
    } finally {
      await agent.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
