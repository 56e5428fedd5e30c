/**
 * A browser tab as a node (/contribute in Debian Chromium) beside a Node
 * agent, on a real coordinator: it enrols with its own Ed25519 key, completes
 * tasks of real jobs with exactly the fuel the Node runtime counts for the
 * same input, and signs receipts that verify. It obeys its owner: with
 * navigator.getBattery stubbed to discharging, and with the tab hidden, it
 * takes no lease; charging or visible again, it resumes. Moving the CPU-share
 * slider re-advertises its slots (the `slots` message): the coordinator lists
 * them and never has more of its tasks leased to it than that, counted on
 * every WebSocket frame; the coordinator refuses a malformed `slots` message
 * with a stable code.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, generateNodeKey, signMessage, verifyReceiptDocument } from '@idlemesh/protocol';
import type { Capabilities, JobLimits, ModuleAbi, NodeView, ServerMessage } from '@idlemesh/protocol';
import { RUNTIME_VERSION, runTask } from '@idlemesh/runtime';
import { ROOT, b64, example, sleep, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const CHROMIUM = process.env.IDLEMESH_CHROMIUM ?? '/usr/bin/chromium';
// @types/node does not declare WebAssembly; runTask takes the compiled module as it is.
const WA = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<Parameters<typeof runTask>[0]> } }).WebAssembly;
const WEB_DIST = join(ROOT, 'packages/web/dist/index.html');
/** The cores the page is told it has (navigator.hardwareConcurrency): the slider's 25–100 % are then 1–4 workers. */
const CORES = 4;

function missing(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set IDLEMESH_CHROMIUM)`;
  if (!existsSync(WEB_DIST)) return `the web app is not built (${WEB_DIST}): npm run build -w @idlemesh/web`;
  return undefined;
}

/**
 * Runs before the app: the battery says "discharging" until __setCharging(true);
 * the page's visibility follows __setHidden (with the visibilitychange event a
 * real tab switch sends); the device has CORES cores, whatever runs the test.
 */
const OWNER_STUB = `(() => {
  Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => ${CORES} });
  const battery = new EventTarget();
  battery.charging = false; battery.level = 0.42; battery.chargingTime = Infinity; battery.dischargingTime = 5400;
  Object.defineProperty(navigator, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
  window.__setCharging = (c) => { battery.charging = c; battery.dispatchEvent(new Event('chargingchange')); };
  let hidden = false;
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
  window.__setHidden = (h) => { hidden = h; document.dispatchEvent(new Event('visibilitychange')); };
})();`;

/**
 * Leases a browser node holds, from the coordinator's frames it receives
 * (`lease`) and the frames it sends back (`results`, `release`): exact on
 * every frame, where polling the API could miss a peak.
 */
class LeaseCount {
  out = 0;
  max = 0;
  released = 0;
  private readonly recent: string[] = [];

  watch(ws: import('playwright-core').WebSocket): void {
    ws.on('framereceived', (f) => {
      const m = parse(f.payload);
      if (m?.type === 'lease' && Array.isArray(m.tasks)) this.add(m.tasks.length, 'lease');
    });
    ws.on('framesent', (f) => {
      const m = parse(f.payload);
      if (m?.type === 'results' && Array.isArray(m.results)) this.add(-m.results.length, 'results');
      if (m?.type === 'release' && Array.isArray(m.tasks)) {
        this.released += m.tasks.length;
        this.add(-m.tasks.length, 'release');
      }
      if (m?.type === 'slots' || m?.type === 'credit') this.note(`${m.type} ${String(m.maxTasks ?? m.n)}`);
    });
    ws.on('close', () => {
      this.out = 0;
      this.note('close');
    });
  }

  resetMax(): void {
    this.max = this.out;
  }

  log(): string {
    return `out ${this.out}, max ${this.max}; last frames: ${this.recent.join(', ')}`;
  }

  private add(n: number, what: string): void {
    this.out = Math.max(0, this.out + n);
    this.max = Math.max(this.max, this.out);
    this.note(`${what} ${n > 0 ? '+' : ''}${n}→${this.out}`);
  }

  private note(s: string): void {
    this.recent.push(s);
    if (this.recent.length > 20) this.recent.shift();
  }
}

function parse(payload: string | Buffer): Record<string, unknown> & { tasks?: unknown[]; results?: unknown[]; maxTasks?: unknown; n?: unknown } | undefined {
  try {
    return JSON.parse(payload.toString()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

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
    page.on('websocket', (ws) => {
      if (ws.url().endsWith('/v1/agent')) leases.watch(ws);
    });
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
  const leases = new LeaseCount();

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
  it('the CPU-share slider re-advertises the slots: the coordinator lists them and leases no more than that', async () => {
    // The browser alone, so it gets every task it has room for.
    await agent?.stop();
    agent = undefined;
    await waitUntil(async () => (await coord.client.nodes()).filter((n) => n.state === 'online').length === 1);
    const slots = async (): Promise<number | undefined> => (await apiNode(nodeId))?.capabilities.maxTasks;
    const shown = async (): Promise<string | null> => page.locator('.node-status').getAttribute('data-slots');
    assert.equal(await slots(), CORES / 2, 'at 50 % of 4 cores the auth advertised 2 slots');

    const slider = page.getByLabel(/CPU share/);
    await slider.focus();
    await page.keyboard.press('End');
    await waitUntil(async () => (await slots()) === CORES, 10_000, () => `API slots ${leases.log()}`);
    assert.equal(await shown(), String(CORES));
    assert.equal((await apiNode(nodeId))?.state, 'online');

    // Four slots: four leases at once, never five.
    const job = await coord.client.submitJob({ module: mod, inputs: Array.from({ length: 40 }, () => b64('1500000')) });
    leases.resetMax();
    await waitUntil(() => leases.out === CORES, 15_000, () => leases.log());
    // The coordinator's own count too (sampled, so it may miss a peak the frames do not).
    let apiMax = 0;
    let sampling = true;
    // A sample taken before a reset must not land after it (it would carry the old peak over).
    let generation = 0;
    const sampler = (async () => {
      while (sampling) {
        const g = generation;
        const running = (await apiNode(nodeId))?.running ?? 0;
        if (g === generation) apiMax = Math.max(apiMax, running);
        await sleep(25);
      }
    })();
    try {
      await sleep(1000);
      assert.equal(leases.max, CORES, `at most ${CORES} leased, and all used: ${leases.log()}`);

      // Down to 25 %: one worker. The three leases beyond it go back at once, the coordinator hears `slots`.
      const released = leases.released;
      await page.keyboard.press('Home');
      await waitUntil(async () => (await slots()) === 1, 10_000, () => leases.log());
      assert.equal(await shown(), '1');
      assert.ok(leases.released > released, `the leases beyond one worker were handed back: ${leases.log()}`);
      await waitUntil(() => leases.out <= 1, 5000, () => leases.log());
      leases.resetMax();
      generation++;
      apiMax = 0;
      const done = await coord.client.waitForJob(job.id);
      assert.equal(done.counts.succeeded, 40);
      assert.equal(leases.max, 1, `one lease at a time after the change: ${leases.log()}`);
      assert.ok(apiMax <= 1, `the coordinator counted ${apiMax} of its tasks leased to the node at once`);
    } finally {
      sampling = false;
      await sampler;
    }

    // Paused by its owner, a change of share is still told, and the node stays paused.
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await waitUntil(async () => (await apiNode(nodeId))?.state === 'paused');
    await slider.focus();
    await page.keyboard.press('ArrowRight');
    await waitUntil(async () => (await slots()) === 2, 10_000, () => leases.log());
    const paused = await apiNode(nodeId);
    assert.equal(paused?.state, 'paused');
    assert.equal(paused?.pauseReason, 'paused by the owner');
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await waitUntil(async () => (await apiNode(nodeId))?.state === 'online');
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
  });

  it('the coordinator refuses a malformed slots message with a stable code, and takes a good one', async () => {
    const key = await generateNodeKey();
    const ws = new WebSocket(`${coord.url.replace(/^http/, 'ws')}/v1/agent`);
    const inbox: ServerMessage[] = [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString()) as ServerMessage));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const next = async <T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> => {
      await waitUntil(() => inbox.some((m) => m.type === type), 5000, () => JSON.stringify(inbox));
      return inbox.splice(inbox.findIndex((m) => m.type === type), 1)[0] as Extract<ServerMessage, { type: T }>;
    };
    try {
        const { challenge } = await next('hello');
        const caps: Capabilities = { runtimes: ['wasm'], cores: 1, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 2, benchmark: { fuelPerSec: 1 }, agentVersion: 'slots-test' };
        ws.send(JSON.stringify(await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge, capabilities: caps }, Date.now())));
        await next('welcome');
        for (const [bad, code] of [[{ maxTasks: 0 }, 'IM_VALIDATION'], [{ maxTasks: 1025 }, 'IM_VALIDATION'], [{ maxTasks: 1.5 }, 'IM_VALIDATION'], [{ maxTasks: '3' }, 'IM_VALIDATION'], [{}, 'IM_VALIDATION'], [{ maxTasks: 3, cores: 9 }, 'IM_UNKNOWN_FIELD']] as const) {
          ws.send(JSON.stringify({ type: 'slots', ...bad }));
          const e = await next('error');
          assert.equal(e.error.code, code, JSON.stringify(bad));
          assert.match(e.error.message, /invalid slots message/);
        }
        assert.equal((await apiNode(key.publicKeyHex))?.capabilities.maxTasks, 2, 'nothing changed');
        ws.send(JSON.stringify({ type: 'slots', maxTasks: 7 }));
        await waitUntil(async () => (await apiNode(key.publicKeyHex))?.capabilities.maxTasks === 7);
        const node = await apiNode(key.publicKeyHex);
        assert.equal(node?.state, 'online');
        assert.deepEqual({ ...node?.capabilities, maxTasks: 2 }, caps, 'only the slots changed');
        assert.equal(ws.readyState, WebSocket.OPEN, 'the connection carries on');
    } finally {
      ws.close();
    }
  });
});
