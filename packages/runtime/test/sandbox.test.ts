import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sandbox, calibrate } from '../src/index.js';
import { ECHO_WAT, SPIN_WAT, bytes, instrumented, limits, text } from './helpers.js';

async function withSandbox(workers: number, fn: (sb: Sandbox) => Promise<void>): Promise<void> {
  const sb = new Sandbox({ workers });
  try {
    await fn(sb);
  } finally {
    await sb.close();
  }
}

void test('many small tasks in parallel all come back correct', async () => {
  const echo = await instrumented(ECHO_WAT);
  await withSandbox(3, async (sb) => {
    await sb.addModule(echo.hash, echo.bytes, echo.abi);
    assert.ok(sb.hasModule(echo.hash));
    const n = 2000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => sb.run({ moduleHash: echo.hash, input: bytes(`\u0003task ${i}`), limits: limits() })));
    const fuels = new Set<number>();
    results.forEach((r, i) => {
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(text(r.output), `\u0003task ${i}`);
      fuels.add(r.fuel);
    });
    // Same loop count for every input: one fuel figure, whichever worker ran it.
    assert.equal(fuels.size, 1);
  });
});

void test('a wall-clock timeout stops the task and the sandbox keeps serving', async () => {
  const spin = await instrumented(SPIN_WAT);
  const echo = await instrumented(ECHO_WAT);
  await withSandbox(1, async (sb) => {
    await sb.addModule(spin.hash, spin.bytes, spin.abi);
    await sb.addModule(echo.hash, echo.bytes, echo.abi);
    const hung = sb.run({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 200 }) });
    const next = sb.run({ moduleHash: echo.hash, input: bytes('\u0000after'), limits: limits() });
    const r = await hung;
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'IM_TIMEOUT');
    const n = await next;
    assert.ok(n.ok);
    assert.equal(text(n.output), '\u0000after');
  });
});

void test('aborting a running task stops it; aborting a queued one never runs it', async () => {
  const spin = await instrumented(SPIN_WAT);
  const echo = await instrumented(ECHO_WAT);
  await withSandbox(1, async (sb) => {
    await sb.addModule(spin.hash, spin.bytes, spin.abi);
    await sb.addModule(echo.hash, echo.bytes, echo.abi);
    const running = new AbortController();
    const queued = new AbortController();
    const a = sb.run({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 60_000 }) }, running.signal);
    const b = sb.run({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 60_000 }) }, queued.signal);
    queued.abort();
    setTimeout(() => running.abort(), 100);
    for (const r of [await b, await a]) {
      assert.equal(r.ok, false);
      if (!r.ok) assert.deepEqual([r.error.code, r.error.message], ['IM_AGENT_ERROR', 'aborted']);
    }
    const after = await sb.run({ moduleHash: echo.hash, input: bytes('\u0000still here'), limits: limits() });
    assert.ok(after.ok);
    const pre = new AbortController();
    pre.abort();
    const c = await sb.run({ moduleHash: echo.hash, input: bytes('\u0000x'), limits: limits() }, pre.signal);
    assert.equal(c.ok, false);
  });
});

void test('fuel exhaustion inside the sandbox is reported like runTask does', async () => {
  const spin = await instrumented(SPIN_WAT);
  await withSandbox(2, async (sb) => {
    await sb.addModule(spin.hash, spin.bytes, spin.abi);
    const r = await sb.run({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: 10_000 }) });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'IM_FUEL_EXHAUSTED');
    assert.equal(r.fuel, 10_000);
  });
});

void test('addModule checks the hash; run refuses unknown modules and a closed sandbox', async () => {
  const echo = await instrumented(ECHO_WAT);
  const sb = new Sandbox({ workers: 1 });
  await assert.rejects(sb.addModule('0'.repeat(64), echo.bytes, echo.abi), { code: 'IM_WASM_INVALID' });
  await assert.rejects(sb.run({ moduleHash: echo.hash, input: new Uint8Array(0), limits: limits() }), { code: 'IM_MODULE_NOT_FOUND' });
  await sb.close();
  await assert.rejects(sb.run({ moduleHash: echo.hash, input: new Uint8Array(0), limits: limits() }), { code: 'IM_UNAVAILABLE' });
});

void test('close settles tasks still in flight', async () => {
  const spin = await instrumented(SPIN_WAT);
  const sb = new Sandbox({ workers: 1 });
  await sb.addModule(spin.hash, spin.bytes, spin.abi);
  const pending = sb.run({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 60_000 }) });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await sb.close();
  const r = await pending;
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.error.code, 'IM_AGENT_ERROR');
});

void test('calibrate reports a positive fuel rate', async () => {
  const { fuelPerSec } = await calibrate({ durationMs: 100 });
  assert.ok(Number.isFinite(fuelPerSec) && fuelPerSec > 0, String(fuelPerSec));
});

/** The sandbox runs one task inline per event-loop turn. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

void test('inline: a tiny task on idle workers runs on the calling thread, with the result and fuel a worker gives; longer tasks go to a worker', async () => {
  const echo = await instrumented(ECHO_WAT);
  const spin = await instrumented(SPIN_WAT);
  const input = bytes('\u00c8two hundred loops');
  const inWorker = new Sandbox({ workers: 1 });
  const inline = new Sandbox({ workers: 1, inlineFuel: 10_000 });
  try {
    for (const sb of [inWorker, inline]) {
      await sb.addModule(echo.hash, echo.bytes, echo.abi);
      await sb.addModule(spin.hash, spin.bytes, spin.abi);
    }
    const reference = await inWorker.run({ moduleHash: echo.hash, input, limits: limits() });
    assert.ok(reference.ok);
    /** Each run in a turn of its own, so it has the whole inline fuel. */
    const later = async (task: Parameters<Sandbox['run']>[0]): ReturnType<Sandbox['run']> => {
      await nextTurn();
      return inline.run(task);
    };
    assert.equal(inWorker.inlineRuns, 0);
    const r = await later({ moduleHash: echo.hash, input, limits: limits() });
    assert.deepEqual(r, reference);
    assert.equal(inline.inlineRuns, 1);
    // More fuel than inline allows: the same answer, from the worker.
    inline.setInlineFuel(reference.fuel - 1);
    assert.deepEqual(await later({ moduleHash: echo.hash, input, limits: limits() }), reference);
    assert.equal(inline.inlineRuns, 1);
    // ...and that module is not tried inline for a while.
    inline.setInlineFuel(10_000);
    assert.deepEqual(await later({ moduleHash: echo.hash, input, limits: limits() }), reference);
    assert.equal(inline.inlineRuns, 1);
    // Fuel exhausted under the task's own limit is the task's answer, inline.
    const out = await later({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: 500 }) });
    assert.equal(out.ok, false);
    if (!out.ok) assert.equal(out.error.code, 'IM_FUEL_EXHAUSTED');
    assert.equal(out.fuel, 500);
    assert.equal(inline.inlineRuns, 2);
    // A spin past the inline fuel runs to its own limit in the worker.
    const long = await later({ moduleHash: spin.hash, input: new Uint8Array(0), limits: limits({ fuel: 5_000_000 }) });
    assert.equal(long.fuel, 5_000_000);
    assert.equal(inline.inlineRuns, 2);
  } finally {
    await Promise.all([inWorker.close(), inline.close()]);
  }
});

void test('inline: a burst runs inline until its turn\'s fuel is spent, the rest in the workers; the next turn has fuel again', async () => {
  const echo = await instrumented(ECHO_WAT);
  const loops = (i: number): Uint8Array => bytes(`\u00c8burst ${i}`);
  const tiny = (i: number): Uint8Array => bytes(`\u0002tiny ${i}`);
  const probe = new Sandbox({ workers: 1 });
  let F = 0;
  try {
    await probe.addModule(echo.hash, echo.bytes, echo.abi);
    F = (await probe.run({ moduleHash: echo.hash, input: loops(0), limits: limits() })).fuel;
  } finally {
    await probe.close();
  }
  const sb = new Sandbox({ workers: 2, inlineFuel: Math.floor(2.5 * F) });
  try {
    await sb.addModule(echo.hash, echo.bytes, echo.abi);
    // Each task takes F: two fit in the turn's 2.5 F, a third is tried with what is left and goes on in a worker.
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => sb.run({ moduleHash: echo.hash, input: loops(i), limits: limits() })));
    burst.forEach((r, i) => {
      assert.equal(r.ok && text(r.output), `\u00c8burst ${i}`);
      assert.equal(r.fuel, F);
    });
    assert.equal(sb.inlineRuns, 2);
    // Running short of the turn's fuel does not count against the module: the next turn runs it inline again.
    await nextTurn();
    assert.ok((await sb.run({ moduleHash: echo.hash, input: loops(9), limits: limits() })).ok);
    assert.equal(sb.inlineRuns, 3);
    // Tiny tasks: a whole burst inline.
    await nextTurn();
    const small = await Promise.all(Array.from({ length: 8 }, (_, i) => sb.run({ moduleHash: echo.hash, input: tiny(i), limits: limits() })));
    small.forEach((r, i) => assert.equal(r.ok && text(r.output), `\u0002tiny ${i}`));
    assert.equal(sb.inlineRuns, 11);
  } finally {
    await sb.close();
  }
});
