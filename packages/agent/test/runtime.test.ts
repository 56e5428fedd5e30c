import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { base64ToBytes, sha256Hex, verifyMessage } from '@idlemesh/protocol';
import type { TaskOutcome } from '@idlemesh/protocol';
import { instrumentModule } from '@idlemesh/runtime';
import { resolveAgentOptions, startAgent } from '../src/index.js';
import { FakeCoordinator, makeTasks } from './helpers/fake-coordinator.js';

/** examples/wasi-upper/upper.wasm: a WASI program that upper-cases stdin to stdout. */
const UPPER_WASM = base64ToBytes('AGFzbQEAAAABFgRgBH9/f38Bf2ABfwBgAn9/AX9gAAACZwMWd2FzaV9zbmFwc2hvdF9wcmV2aWV3MQdmZF9yZWFkAAAWd2FzaV9zbmFwc2hvdF9wcmV2aWV3MQhmZF93cml0ZQAAFndhc2lfc25hcHNob3RfcHJldmlldzEJcHJvY19leGl0AAEDAwICAwUDAQACBiMGfwBBAAt/AEEBC38AQQALfwBBCAt/AEGAgAQLfwBBgIAECwcTAgZtZW1vcnkCAAZfc3RhcnQABArZAQJTAQJ/AkADQCABRQ0BIwIgADYCACMCIAE2AgQjASMCQQEjAxABIQIgAgRAIAIPCyMDKAIAIQMgA0UEQEEdDwsgACADaiEAIAEgA2shAQwACwtBAAuCAQEEfwNAIwIjBDYCACMCIwU2AgQjACMCQQEjAxAABEBBARACAAsjAygCACEAIABFBEBBABACAAsjBCEBIwQgAGohAgNAIAEtAAAhAyADQeEAa0EZTQRAIAEgA0EgazoAAAsgAUEBaiEBIAEgAkkNAAsjBCAAEAMEQEEBEAIACwwACwsA0QEEbmFtZQEwBQAHZmRfcmVhZAEIZmRfd3JpdGUCCXByb2NfZXhpdAMJd3JpdGVfYWxsBARtYWluAmsFAAQAAmZkAQRpb3ZzAghpb3ZzX2xlbgMFbnJlYWQBBAACZmQBBGlvdnMCCGlvdnNfbGVuAwhud3JpdHRlbgIBAARjb2RlAwQAAXABAW4CBWVycm5vAwRkb25lBAQAAW4BAXACA2VuZAMBYwcrBgAFU1RESU4BBlNURE9VVAIDSU9WAwVDT1VOVAQDQlVGBQhCVUZfU0laRQ==');

void test('with the real sandbox: calibrates, fetches the instrumented module, runs it, reports fuel', async (t) => {
  const instrumented = await instrumentModule(UPPER_WASM, { maxMemoryMb: 64 });
  const hash = await sha256Hex(instrumented.bytes);
  const coord = await FakeCoordinator.start(new Map([[hash, { bytes: instrumented.bytes, abi: instrumented.abi }]]));
  const dataDir = await mkdtemp(join(tmpdir(), 'im-agent-rt-'));
  const opts = resolveAgentOptions({ coordinator: coord.url, dataDir, maxTasks: 2, logLevel: 'silent' }, { env: {} });
  const agent = await startAgent(opts);
  t.after(async () => {
    await agent.stop({ drain: false });
    await coord.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const auth = await coord.take('auth', () => true, 10_000);
  await verifyMessage(auth, Date.now(), agent.nodeId);
  assert.ok(auth.body.capabilities.benchmark.fuelPerSec > 0, 'calibrated');
  coord.send({ type: 'welcome', nodeId: agent.nodeId, leaseMs: 10_000, heartbeatMs: 1000, serverTime: Date.now() });
  await coord.take('credit');

  const tasks = makeTasks(hash, ['hello, world', 'Mixed Case 123']);
  coord.send({ type: 'lease', tasks });
  const got = new Map<string, TaskOutcome>();
  while (got.size < tasks.length) {
    const msg = await coord.take('results', () => true, 20_000);
    await verifyMessage(msg, Date.now(), agent.nodeId);
    for (const o of msg.results) got.set(o.taskId, o);
  }
  const outputs = tasks.map((task) => {
    const o = got.get(task.taskId);
    assert.equal(o?.ok, true, JSON.stringify(o?.error));
    assert.ok((o?.fuel ?? 0) > 0, 'metered');
    return Buffer.from(base64ToBytes(o?.output ?? '')).toString();
  });
  assert.deepEqual(outputs, ['HELLO, WORLD', 'MIXED CASE 123']);
});
