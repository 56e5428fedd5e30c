import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseInputsJsonl } from '@idlemesh/sdk';
import { cli } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

void test('up --exit-after-demo runs a real local mesh and the sha256 demo, then exits 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'im-up-'));
  try {
    const r = await cli(['up', '--port', '0', '--data-dir', dir, '--agents', '1', '--exit-after-demo', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; [k: string]: unknown });
    assert.deepEqual(lines.map((l) => l.type), ['coordinator', 'nodes', 'demo']);
    assert.match(String(lines[0]?.url), /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((lines[1]?.nodes as string[]).length, 1);
    const inputs = parseInputsJsonl(await readFile(join(ROOT, 'examples/sha256/inputs.jsonl'), 'utf8'));
    const results = lines[2]?.results as { index: number; state: string; outputText: string | null }[];
    assert.equal(results.length, inputs.length);
    for (const res of results) {
      assert.equal(res.state, 'succeeded', `task ${res.index}`);
      const expected = createHash('sha256').update(inputs[res.index] ?? new Uint8Array()).digest('hex');
      assert.equal(res.outputText?.trim(), expected, `sha256 of input ${res.index}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
