/**
 * The referee re-runs python and js tasks in the same metered interpreters
 * the agents use: the same output bytes and the same fuel as an agent's run,
 * so a node's receipt for a code task can be proven wrong like a wasm one.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODE_RUNTIME_MODULE, newJobId, sha256HexSync } from '@idlemesh/protocol';
import { CodeSandbox, runCodeTask } from '@idlemesh/runtime';
import { Referee } from '../src/referee.js';
import { SqliteStore } from '../src/store/index.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const LIMITS = { fuel: 5_000_000_000, memoryMb: 256, timeoutMs: 60_000, outputBytes: 65_536 };

describe('referee for code tasks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'idlemesh-refcode-'));
  const store = new SqliteStore(join(dir, 'r.db'));
  const referee = new Referee(store, undefined as never, undefined as never, quiet as never, () => Date.now(), { mode: 'trusted' });
  const agentSide = new CodeSandbox({ pythonPool: 1, jsPool: 1 });
  after(async () => {
    await referee.close();
    await agentSide.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [language, program, tests] of [
    ['python', 'def add(a, b):\n    total = 0\n    for _ in range(1000):\n        total += 1\n    return a + b\nprint("hi")', 'assert add(2, 3) == 5'],
    ['js', 'function add(a, b) { let t = 0; for (let i = 0; i < 1000000; i++) t++; return a + b; }\nconsole.log("hi");', 'if (add(2, 3) !== 5) throw new Error("wrong");'],
    ['python', 'def add(a, b):\n    return a - b', 'assert add(2, 3) == 5'],
  ] as const) {
    it(`re-runs a ${language} task to the agent's bytes and fuel (${tests.slice(0, 20)}…, ${program.includes('-') && language === 'python' ? 'failing' : 'passing'})`, { timeout: 120_000 }, async () => {
      await store.migrate();
      const id = newJobId(Date.now());
      const input = new TextEncoder().encode(JSON.stringify({ program, tests }));
      await store.createJob({
        id, caller: 'test', requestHash: '', module: CODE_RUNTIME_MODULE[language], instrumentedModule: CODE_RUNTIME_MODULE[language], runtime: language,
        limits: LIMITS, bid: 0, maxAttempts: 1, retryBackoffMs: 0, priority: 1, requirements: {}, createdAt: Date.now(),
      }, [input]);
      const agent = await runCodeTask(agentSide, language, { input, limits: LIMITS });
      assert.ok(agent.ok);
      const judged = await referee.rerun(id, 0);
      assert.ok(judged, 'the referee can run code tasks');
      assert.equal(judged.measured.outcome, 'ok');
      assert.equal(judged.measured.fuel, agent.fuel, 'the same fuel');
      assert.ok(agent.fuel > 0);
      assert.equal(judged.measured.outputHash, sha256HexSync(agent.output), 'the same output bytes');
      const verdict = (JSON.parse(new TextDecoder().decode(judged.output)) as { verdict: string }).verdict;
      assert.equal(verdict, program.includes('a - b') ? 'failed' : 'passed');
    });
  }
});
