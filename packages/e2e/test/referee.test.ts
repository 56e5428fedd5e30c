/**
 * The referee end to end: a coordinator spot-checking every result, a
 * cheating node (a raw protocol client with a real key and a real bond) that
 * signs receipts for a wrong output and for inflated effort, and an honest
 * agent. The referee re-executes, proves both lies from the signed receipts,
 * replaces the results, slashes the cheater's bond (the buyer refunded first)
 * and publishes replayable evidence; the honest node is never accused.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { signResults, verifyReceiptDocument } from '@idlemesh/protocol';
import type { Capabilities, LeasedTask, ServerMessage, TaskOutcome } from '@idlemesh/protocol';
import { loadOrCreateKey } from '@idlemesh/agent';
import { b64, example, fromB64, metric, runCli, startAgentProc, startCoordinatorProc, tempDir, waitForNodes, waitUntil } from './helpers.js';
import { connectRawAgent } from './raw-agent.js';

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 4,
  benchmark: { fuelPerSec: 1 }, agentVersion: 'cheater-test',
};

const sha256hex = (x: string | Uint8Array): string => createHash('sha256').update(x).digest('hex');

interface Evidence { nodeId: string; task: string; contradiction: string; fuelExcess: number; slashedMsat: string; refundedTo?: string; receipt: unknown }

describe('referee', () => {
  it('proves a wrong output and inflated effort from signed receipts, slashes the cheater, spares the honest node', async () => {
    const dir = tempDir('referee');
    const coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--verify', 'spot-check:1'] });
    const keyFile = `${dir.path}/cheater.key`;
    const { key } = await loadOrCreateKey(keyFile);
    const cheater = key.publicKeyHex;
    let ws: WebSocket | undefined;
    let honest: ReturnType<typeof startAgentProc> | undefined;
    try {
      // The cheater bonds 600 sats, like any public node must.
      await coord.client.devFund({ account: `operator:${cheater}`, sats: 1000 });
      const staked = runCli('stake', ['--coordinator', coord.url, 'stake', 'add', '600', '--key-file', keyFile]);
      assert.equal(await staked.wait(), 0, staked.text);
      await coord.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });

      // The cheater connects with the raw protocol and asks for work.
      const raw = await connectRawAgent(coord.url, key, CAPS);
      ws = raw.ws;
      const { inbox, take } = raw;
      ws.send(JSON.stringify({ type: 'heartbeat', state: 'active', running: 0 }));

      const mod = await coord.client.uploadModule(example('sha256/sha256.wasm'));
      const inputs = ['one', 'two', 'three'];
      const job = await coord.client.submitJob({ module: mod.hash, inputs: inputs.map((x) => b64(x)), bid: 1000 });
      ws.send(JSON.stringify({ type: 'credit', n: 3 }));
      const leased: LeasedTask[] = [];
      await waitUntil(async () => {
        const m = inbox.findIndex((x) => x.type === 'lease');
        if (m >= 0) leased.push(...(inbox.splice(m, 1)[0] as Extract<ServerMessage, { type: 'lease' }>).tasks);
        return leased.length === 3;
      }, 10_000);
      const lies: TaskOutcome[] = leased.map((t) => {
        const input = Buffer.from(t.input, 'base64');
        const honestOut = Buffer.from(sha256hex(input));
        const base = { taskId: t.taskId, attempt: t.attempt, ok: true, startedAt: Date.now(), endedAt: Date.now(), inputHash: sha256hex(input), runtime: 'wasm', runtimeVersion: 'cheater/1' };
        // Task 0: a made-up answer. Task 1: the right answer, ten times the effort. Task 2: garbage too.
        if (t.index === 1) return { ...base, output: honestOut.toString('base64'), fuel: 50_000_000 };
        return { ...base, output: Buffer.from('not the hash').toString('base64'), fuel: 1000 };
      });
      ws.send(JSON.stringify(await signResults(key, lies, Date.now())));
      const ack = await take('ack');
      assert.deepEqual(ack.results.map((r) => r.status), ['accepted', 'accepted', 'accepted'], 'the lies look fine until re-executed');

      // The referee re-executes every result (rate 1) and convicts three times.
      const evidence = async (node?: string): Promise<Evidence[]> =>
        ((await (await fetch(`${coord.url}/v1/evidence${node ? `?node=${node}` : ''}`)).json()) as { evidence: Evidence[] }).evidence;
      await waitUntil(async () => (await evidence(cheater)).filter((e) => e.slashedMsat !== '0').length === 3, 30_000, () => `three convictions; coordinator log: ${coord.text.slice(-2000)}`);
      const proven = await evidence(cheater);
      const byTask = new Map(proven.map((e) => [e.task, e]));
      assert.equal(byTask.get(`${job.id}/0`)?.contradiction, 'output');
      assert.equal(byTask.get(`${job.id}/2`)?.contradiction, 'output');
      const inflated = byTask.get(`${job.id}/1`);
      assert.equal(inflated?.contradiction, 'effort');
      assert.ok((inflated?.fuelExcess ?? 0) > 0, 'the inflation is measured');
      // Each piece of evidence is the cheater's own signature over the lie: anyone can check it offline.
      for (const e of proven) assert.ok((await verifyReceiptDocument(e.receipt)).ok, 'evidence carries a valid signed receipt');
      assert.equal(proven[0]?.refundedTo, 'buyer:anonymous');

      // The buyer keeps the referee's results: the right hashes, honest fuel.
      await waitUntil(async () => (await coord.client.getJob(job.id)).state === 'completed', 10_000);
      const results = (await coord.client.results(job.id)).results;
      assert.deepEqual(results.map((r) => fromB64(r.output)), inputs.map((x) => sha256hex(x)));
      assert.ok(results.every((r) => (r.fuel ?? 0) < 50_000_000), 'inflated fuel replaced by the measured fuel');

      // Half of what was left of the bond, three times: 600 → 300 → 150 → 75 sats remain.
      const stakes = await coord.client.stakes(cheater);
      assert.equal(stakes.bonds[0]?.remainingMsat, '75000');
      assert.equal(stakes.bonds[0]?.slashedMsat, '525000');
      assert.equal(metric(await (await fetch(`${coord.url}/metrics`)).text(), 'idlemesh_referee_checks_total', { result: 'fraud' }), 3);
      ws.close();

      // An honest agent's results all agree with the referee: no evidence against it.
      honest = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/honest` });
      await waitForNodes(coord.client, 1);
      const fair = await coord.client.submitJob({ module: mod.hash, inputs: ['a', 'b', 'c', 'd', 'e'].map((x) => b64(x)), bid: 1000 }, { wait: 20_000 });
      assert.equal(fair.counts.succeeded, 5);
      await waitUntil(async () => metric(await (await fetch(`${coord.url}/metrics`)).text(), 'idlemesh_referee_checks_total', { result: 'agree' }) === 5, 20_000);
      const honestNode = fair.results?.[0]?.nodeId;
      assert.ok(honestNode);
      assert.deepEqual(await evidence(honestNode), []);
      const check = await (await fetch(`${coord.url}/v1/ledger/check`)).json() as { ok: boolean };
      assert.equal(check.ok, true, 'the ledger balances after the slashes');
    } finally {
      ws?.close();
      await honest?.stop();
      await coord.stop();
      dir.remove();
    }
  });
});
