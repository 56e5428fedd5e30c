/**
 * `idlemesh serve-model` as a user runs it: a child process that prints its
 * ready line, answers the official client, and stops cleanly on SIGTERM.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import OpenAI from 'openai';
import { FIXTURE, NEEDS_FIXTURE, REPO_ROOT, TINY } from './helpers.js';

const BIN = join(REPO_ROOT, 'packages', 'cli', 'bin', 'idlemesh.js');

describe('idlemesh serve-model', { skip: NEEDS_FIXTURE }, () => {
  it('prints a ready line, serves the OpenAI API, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve-model', FIXTURE, '--port', '0', '--json', '--threads', '1', '--context-size', '512', '--gpu', 'off', '--api-key', 'cli-key'], {
      env: { ...process.env, IDLEMESH_API_KEY: '', IDLEMESH_EXIT_WITH_PARENT: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'exit');
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      const lines = createInterface({ input: child.stdout });
      const [first] = (await Promise.race([once(lines, 'line'), exited.then(() => { throw new Error(`serve-model exited early: ${stderr}`); })])) as [string];
      const ready = JSON.parse(first) as { type: string; url: string; models: Array<{ id: string; hash: string; device: string }> };
      assert.equal(ready.type, 'ready');
      assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      assert.deepEqual(ready.models.map((m) => [m.id, m.device]), [[TINY, 'cpu']]);

      const openai = new OpenAI({ baseURL: ready.url, apiKey: 'cli-key', maxRetries: 0 });
      assert.deepEqual((await openai.models.list()).data.map((m) => m.id), [TINY]);
      const r = await openai.chat.completions.create({ model: TINY, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 6, temperature: 0 });
      assert.ok((r.choices[0]?.message.content ?? '').length > 0);
      assert.equal(r.usage?.completion_tokens, 6);
      await assert.rejects(new OpenAI({ baseURL: ready.url, apiKey: 'other', maxRetries: 0 }).models.list(), (e: unknown) => e instanceof OpenAI.APIError && e.status === 401);

      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, stderr);
      assert.match(stderr, /stopping/);
    } finally {
      clearTimeout(guard);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
