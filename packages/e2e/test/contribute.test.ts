/**
 * A browser tab as a node (/contribute in Debian Chromium) beside a Node
 * agent, on a real coordinator: it enrols with its own Ed25519 key, completes
 * tasks of real jobs with exactly the fuel the Node runtime counts for the
 * same input, and signs receipts that verify. It obeys its owner: with
 * navigator.getBattery stubbed to discharging, and with the tab hidden, it
 * takes no lease; charging or visible again, it resumes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { verifyReceiptDocument } from '@idlemesh/protocol';
import type { JobLimits, ModuleAbi, NodeView } from '@idlemesh/protocol';
import { RUNTIME_VERSION, runTask } from '@idlemesh/runtime';
import { ROOT, b64, example, sleep, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const CHROMIUM = process.env.IDLEMESH_CHROMIUM ?? '/usr/bin/chromium';
// @types/node does not declare WebAssembly; runTask takes the compiled module as it is.
const WA = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<Parameters<typeof runTask>[0]> } }).WebAssembly;
const WEB_DIST = join(ROOT, 'packages/web/dist/index.html');

function missing(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set IDLEMESH_CHROMIUM)`;
  if (!existsSync(WEB_DIST)) return `the web app is not built (${WEB_DIST}): npm run build -w @idlemesh/web`;
  return undefined;
}

/**
 * Runs before the app: the battery says "discharging" until __setCharging(true);
 * the page's visibility follows __setHidden (with the visibilitychange event a
 * real tab switch sends).
 */
const OWNER_STUB = `(() => {
  const battery = new EventTarget();
  battery.charging = false; battery.level = 0.42; battery.chargingTime = Infinity; battery.dischargingTime = 5400;
  Object.defineProperty(navigator, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
  window.__setCharging = (c) => { battery.charging = c; battery.dispatchEvent(new Event('chargingchange')); };
  let hidden = false;
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
  window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event('visibilitychange')); };
})();`;

describe('browser node (/contribute)', { skip: process.env.IDLEMESH_REQUIRE_BROWSER ? false : missing() }, () => {
  const dir = tempDir('contribute');
  let coord: CoordinatorProc;
  let browser: Browser;
  let page: Page;
  let agent: Proc | undefined;
  const errors: string[] = [];

  before(async () => {
    const why = missing();
    if (why !== undefined) throw new Error(why);
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--heartbeat-ms', '300'] });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript(OWNER_STUB);
    page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await coord?.stop();
    dir.remove();
  });

  const status = async (): Promise<{ status: string | null; reason: string | null; nodeId: string | null }> => {
    const el = page.locator('.node-status');
    return { status: await el.getAttribute('data-status'), reason: await el.getAttribute('data-pause-reason'), nodeId: await el.getAttribute('data-node-id') };
  };
  const apiNode = async (id: string): Promise<NodeView | undefined> => (await coord.client.nodes()).find((n) => n.id === id);
  const fuelOf = new Map<string, number>();
  /** The fuel the Node runtime counts for this input, from the instrumented module the coordinator serves. */
  const referenceFuel = async (moduleHash: string, input: string, limits: JobLimits): Promise<number> => {
    const key = `${moduleHash}:${input}`;
    const known = fuelOf.get(key);
    if (known !== undefined) return known;
    const res = await fetch(`${coord.url}/v1/modules/${moduleHash}/instrumented`);
    const module = await WA.compile(new Uint8Array(await res.arrayBuffer()));
    const r = runTask(module, res.headers.get('x-idlemesh-abi') as ModuleAbi, new TextEncoder().encode(input), limits);
    fuelOf.set(key, r.fuel);
    return r.fuel;
  };

  let nodeId = '';
  let mod = '';

  it('on battery: enrols paused and takes no lease; charging: completes the job', async () => {
    mod = (await coord.client.uploadModule(example('nbody/nbody.wasm'))).hash;
    await page.goto(`${coord.url.replace('127.0.0.1', 'localhost')}/contribute`);
    await page.getByRole('button', { name: 'Start contributing' }).click();
    await waitUntil(async () => (await status()).status === 'paused', 20_000);
    const s = await status();
    nodeId = s.nodeId ?? '';
    assert.match(nodeId, /^[0-9a-f]{64}$/, 'a WebCrypto Ed25519 node id');
    assert.match(s.reason ?? '', /battery/);
    await waitUntil(async () => (await apiNode(nodeId))?.state === 'paused');
    assert.match((await apiNode(nodeId))?.pauseReason ?? '', /battery/, 'the coordinator is told why');

    const job = await coord.client.submitJob({ module: mod, inputs: Array.from({ length: 6 }, () => b64('500000')) });
    await sleep(1500);
    const waiting = await coord.client.getJob(job.id);
    assert.equal(waiting.counts.leased + waiting.counts.succeeded, 0, 'no lease while discharging');
    assert.equal(await page.locator('[data-stat=running] .stat-hint').textContent(), '0 leased so far');

    await page.evaluate('window.__setCharging(true)');
    await waitUntil(async () => (await status()).status === 'active');
    const done = await coord.client.waitForJob(job.id);
    assert.equal(done.counts.succeeded, 6);
    const results = (await coord.client.results(job.id)).results;
    assert.ok(results.every((r) => r.nodeId === nodeId), 'the browser ran them all');
    const ref = await referenceFuel(mod, '500000', done.limits);
    assert.deepEqual(results.map((r) => r.fuel), results.map(() => ref), 'the fuel the Node runtime counts');
  });

  it('hidden: pauses and takes no lease; visible again: resumes', async () => {
    await page.evaluate('window.__setHidden(true)');
    await waitUntil(async () => (await status()).status === 'paused');
    assert.equal((await status()).reason, 'tab hidden');
    await waitUntil(async () => (await apiNode(nodeId))?.state === 'paused');
    const before = await apiNode(nodeId);

    const job = await coord.client.submitJob({ module: mod, inputs: Array.from({ length: 4 }, () => b64('400000')) });
    await sleep(1500);
    const waiting = await coord.client.getJob(job.id);
    assert.equal(waiting.counts.leased + waiting.counts.succeeded, 0, 'no lease while hidden');
    assert.equal((await apiNode(nodeId))?.completed, before?.completed);

    await page.evaluate('window.__setHidden(false)');
    const done = await coord.client.waitForJob(job.id);
    assert.equal(done.counts.succeeded, 4);
    assert.ok((await coord.client.results(job.id)).results.every((r) => r.nodeId === nodeId));
  });

  it('beside a Node agent: both complete tasks of one job, with identical fuel for identical inputs, and verifiable receipts', async () => {
    agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, maxTasks: 1, env: { IDLEMESH_AGENT_PREFETCH: '2' } });
    await waitUntil(async () => (await coord.client.nodes()).filter((n) => n.state === 'online').length === 2, 30_000, () => agent?.text ?? '');
    const inputs = Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? '700000' : '1100000'));
    const job = await coord.client.submitJob({ module: mod, inputs: inputs.map((x) => b64(x)) });
    const done = await coord.client.waitForJob(job.id);
    assert.equal(done.counts.succeeded, inputs.length);
    const results = (await coord.client.results(job.id)).results;
    const byNode = new Map<string, number>();
    for (const r of results) byNode.set(r.nodeId ?? '', (byNode.get(r.nodeId ?? '') ?? 0) + 1);
    assert.equal(byNode.size, 2, `both nodes ran tasks: ${JSON.stringify([...byNode])}`);
    assert.ok((byNode.get(nodeId) ?? 0) > 0, 'the browser ran some');
    for (const r of results) {
      const input = inputs[r.index] as string;
      assert.equal(r.fuel, await referenceFuel(mod, input, done.limits), `task ${r.index} (${input}) on ${r.nodeId === nodeId ? 'the browser' : 'the Node agent'}`);
    }
    // Same input, either node: one fuel figure.
    for (const input of new Set(inputs)) {
      const fuels = new Set(results.filter((r) => inputs[r.index] === input).map((r) => r.fuel));
      assert.equal(fuels.size, 1, `input ${input}: ${[...fuels].join(', ')}`);
    }

    // The browser's receipt: signed with its key over the Merkle head, countersigned, checkable offline.
    const mine = results.find((r) => r.nodeId === nodeId);
    const doc = (await (await fetch(`${coord.url}/v1/jobs/${job.id}/tasks/${mine?.index}/receipt`)).json()) as { receipt: { node: string; runtimeVersion: string } };
    const check = await verifyReceiptDocument(doc);
    assert.ok(check.ok, JSON.stringify(check.checks));
    assert.equal(doc.receipt.node, nodeId);
    assert.equal(doc.receipt.runtimeVersion, RUNTIME_VERSION);

    // The page's own count: every result of this node the coordinator accepted, over the three jobs.
    const total = (await apiNode(nodeId))?.completed;
    await page.locator(`[data-stat=tasks-done] [data-value="${total}"]`).waitFor();
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });
});
