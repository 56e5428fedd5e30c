/**
 * The web app in a real browser (Debian Chromium via playwright-core) against
 * a real coordinator and agent: the pages tell the truth. A submitted job is
 * seen progressing to done with the API's numbers; the leaderboard is a real
 * epoch of a coordinator with 2-second issuance hours, node for node, and
 * the page's own check of the epoch's signature passes, and fails once one
 * msat is moved between two nodes; the wallet's QR code
 * decodes to the address the API gave; the audit page's in-browser check
 * passes, and fails on a checkpoint altered by one byte; the API's message is
 * shown for a withdrawal to another network's address and for a malformed
 * policy; axe-core finds no serious or critical issue at phone size; a person
 * enrols a passkey and signs in with a virtual authenticator (on `localhost`:
 * WebAuthn refuses IP addresses).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { WatchOnlyAccount } from '@idlemesh/bitcoin';
import { FakeLnd } from '@idlemesh/bitcoin/testing';
import { ROOT, b64, example, sleep, startAgentProc, startCoordinatorProc, tempDir, waitForNodes, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const CHROMIUM = process.env.IDLEMESH_CHROMIUM ?? '/usr/bin/chromium';
const WEB_DIST = join(ROOT, 'packages/web/dist/index.html');
// BIP84 regtest account key of the "abandon … about" test mnemonic (as in deposits.test.ts).
const TPUB = 'tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M';
const PHONE = { width: 375, height: 812 };

/** Why the browser tests cannot run here, or undefined when they can. */
function missing(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set IDLEMESH_CHROMIUM)`;
  if (!existsSync(WEB_DIST)) return `the web app is not built (${WEB_DIST}): npm run build -w @idlemesh/web`;
  return undefined;
}

async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
}

/**
 * Runs a library file in the page. Evaluated through the DevTools protocol,
 * which the app's Content-Security-Policy (no inline scripts) does not govern,
 * so the tests run against the headers users get.
 */
async function inject(page: Page, file: string): Promise<void> {
  await page.evaluate(readFileSync(join(ROOT, file), 'utf8'));
}

/** Serious and critical axe-core violations on the current page, as readable lines. */
async function axeViolations(page: Page): Promise<string[]> {
  await inject(page, 'node_modules/axe-core/axe.min.js');
  // In the page (a string, so this file needs no DOM types).
  const { passes, violations } = (await page.evaluate(`(async () => {
    const r = await window.axe.run(document);
    return {
      passes: r.passes.length,
      violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 3).map((n) => JSON.stringify(n.target)) })),
    };
  })()`)) as { passes: number; violations: Array<{ id: string; impact: string | null; help: string; targets: string[] }> };
  assert.ok(passes > 10, `axe-core ran its checks (${passes} passed)`);
  if (process.env.IDLEMESH_TEST_VERBOSE) for (const v of violations) console.error(`axe ${page.url()}: ${v.id} (${v.impact}) ${v.help} ${v.targets.join(' ')}`);
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.targets.join(', ')}`);
}

/** Decodes the QR code drawn on the canvas inside `selector` from its pixels, with jsQR in the page. */
async function decodeQr(page: Page, selector: string): Promise<string | undefined> {
  // The canvas appears before the code is drawn on it (drawing is asynchronous).
  await page.locator(`${selector} canvas[data-drawn=true]`).waitFor();
  await inject(page, 'node_modules/jsqr/dist/jsQR.js');
  return (await page.evaluate(`(() => {
    const canvas = document.querySelector(${JSON.stringify(`${selector} canvas`)});
    const ctx = canvas && canvas.getContext('2d');
    if (!ctx) return undefined;
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    return window.jsQR(img.data, img.width, img.height)?.data;
  })()`)) as string | undefined;
}

/** An epoch as GET /v1/issuance/epochs/:hour answers (the fields these tests read). */
interface EpochRecord {
  document: {
    epochHour: number;
    poolMsat: string;
    hours: Array<{ hour: number; rows: Array<{ node: string; availSec: string }> }>;
    reliability: Array<{ node: string; accepted: number | string; failed: number | string }>;
    expected: { issuedMsat: string; allocationsMsat: Record<string, string> };
  };
  publicKey: string;
  sig: string;
  hourMs: number;
}

/** "1,234.567 sats" as shown back to msat. */
function msatOf(text: string): bigint {
  const m = /^([\d,]+)(?:\.(\d{1,3}))? sats$/.exec(text.trim());
  assert.ok(m, `an amount in sats: ${text}`);
  return BigInt((m[1] as string).replace(/,/g, '')) * 1000n + BigInt((m[2] ?? '').padEnd(3, '0'));
}

describe('web app', { skip: process.env.IDLEMESH_REQUIRE_BROWSER ? false : missing() }, () => {
  const dir = tempDir('web');
  let lnd: FakeLnd;
  let coord: CoordinatorProc;
  let agent: Proc;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let base: string;
  const errors: string[] = [];

  before(async () => {
    const why = missing();
    if (why !== undefined) throw new Error(why);
    lnd = await FakeLnd.start();
    coord = await startCoordinatorProc({
      dataDir: `${dir.path}/coord`,
      args: ['--heartbeat-ms', '300', '--treasury-key', TPUB, '--lightning', `lnd:${lnd.url}`],
      env: { IDLEMESH_LIGHTNING_AUTH: lnd.macaroonHex },
    });
    base = `http://localhost:${new URL(coord.url).port}`;
    agent = startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent`, maxTasks: 2 });
    browser = await launch();
    ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await waitUntil(async () => (await coord.client.nodes()).some((n) => n.state === 'online'), 30_000, () => agent.text);
  });
  after(async () => {
    await browser?.close();
    await agent?.stop();
    await coord?.stop();
    await lnd?.close();
    dir.remove();
  });

  it('serves the app at / and every client route, keeps API 404s, refuses traversal', async () => {
    const index = await fetch(`${base}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await index.text(), /<div id="app">/);
    assert.equal((await fetch(`${base}/contribute`)).status, 200);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(await (await fetch(`${base}/jobs/job_x`)).text())?.[1];
    assert.ok(asset, 'index.html names its script');
    const js = await fetch(`${base}${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.deepEqual((await (await fetch(`${base}/v1/nope`)).json()) as unknown, { error: { code: 'IM_ROUTE_NOT_FOUND', message: 'no route GET /v1/nope', retryable: false } });
    for (const evil of ['/%2e%2e/%2e%2e/package.json', '/assets/..%2f..%2f..%2fpackage.json', '/..%5c..%5cpackage.json']) {
      const r = await fetch(`${base}${evil}`);
      assert.equal(r.status, 404, evil);
    }
  });

  it('jobs: a submitted job is seen progressing to done, with the API\'s numbers', async () => {
    const mod = await coord.client.uploadModule(example('nbody/nbody.wasm'));
    await page.goto(`${base}/jobs`);
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor();
    const job = await coord.client.submitJob({ module: mod.hash, name: 'web-e2e', inputs: Array.from({ length: 20 }, () => b64('2000000')) });
    const item = page.locator(`li[data-job="${job.id}"]`);
    await item.waitFor({ timeout: 10_000 });
    const seen = new Set<string>();
    await waitUntil(async () => {
      seen.add((await item.getAttribute('data-state')) ?? '');
      return (await item.getAttribute('data-state')) === 'completed';
    }, 60_000, () => `seen ${[...seen].join(', ')}`);
    assert.ok(seen.has('queued') || seen.has('running'), `the list showed the job before it was done (saw ${[...seen].join(', ')})`);
    assert.match((await item.locator('.job-count').textContent()) ?? '', /^20 \/ 20 tasks$/);

    // Its page: the event stream's final state and the results, as the API has them.
    await item.getByRole('link').click();
    await page.waitForURL(`**/jobs/${job.id}`);
    const api = await coord.client.getJob(job.id);
    await page.getByTestId('job-progress').filter({ hasText: '20 / 20 tasks done' }).waitFor();
    assert.equal(await page.locator('.job-state .badge').textContent(), 'completed');
    assert.equal(await page.locator('[data-stat=job-fuel] .stat-hint').textContent(), `${api.fuelUsed.toLocaleString('en-US')} fuel`);
    await page.locator('table.results tbody tr').nth(19).waitFor();
    const rows = await page.locator('table.results tbody tr').evaluateAll((trs) => trs.map((tr) => ({ node: tr.getAttribute('data-node'), fuel: Number(tr.getAttribute('data-fuel')) })));
    const results = (await coord.client.results(job.id)).results;
    assert.deepEqual(rows, results.map((r) => ({ node: r.nodeId ?? '', fuel: r.fuel ?? 0 })));
  });

  it('overview: nodes online and jobs as the API counts them', async () => {
    await page.goto(`${base}/`);
    // Compared with the API at the same moment, since either may change between two reads.
    const shown = async (stat: string): Promise<string | null> => page.locator(`[data-stat=${stat}] .stat-value`).textContent();
    let last = '';
    await waitUntil(async () => {
      const online = String((await coord.client.nodes()).filter((n) => n.state === 'online').length);
      const jobs = String((await coord.client.listJobs({ limit: 100 })).length);
      last = `page ${await shown('nodes-online')}/${await shown('jobs-total')}, API ${online}/${jobs}`;
      return (await shown('nodes-online')) === online && (await shown('jobs-total')) === jobs;
    }, 15_000, () => last);
    assert.equal(await page.locator('tr[data-runtime=wasm] th').textContent(), 'wasm');
    // Issuance is not published yet: a clear empty state, not an error. (A run that crosses
    // the top of an hour sees the coordinator's first epoch instead: then the leaderboard.)
    await page.goto(`${base}/issuance`);
    let text = '';
    await waitUntil(async () => {
      const published = (await fetch(`${coord.url}/v1/issuance/epochs/latest`)).status === 200;
      text = (await page.locator('main').textContent()) ?? '';
      return published ? page.locator('table.leaderboard').isVisible() : page.getByText('Issuance starts when the coordinator publishes epochs.').isVisible();
    }, 15_000, () => `the page shows: ${text}`);
  });

  it('issuance: the leaderboard is a real epoch of the API, node for node, and the page verifies its signature (and not once an allocation is moved)', async () => {
    // A coordinator of its own with 2-second hours and two paid agents (as in issuance.test.ts): real epochs within seconds.
    // Spot-checked work: the issuance counts only verified work.
    const HOUR = 2000;
    const ic = await startCoordinatorProc({ dataDir: `${dir.path}/issuance`, args: ['--issuance-hour-ms', String(HOUR), '--verify', 'spot-check:0.05'] });
    const paid = [1, 2].map((i) => startAgentProc({ coordinator: ic.url, dataDir: `${dir.path}/issuance-a${i}`, name: `issuance-a${i}`, args: ['--ask', '1000000'] }));
    const ibase = `http://localhost:${new URL(ic.url).port}`;
    const api = async (path: string): Promise<EpochRecord> => (await (await fetch(`${ic.url}${path}`)).json()) as EpochRecord;
    try {
      await waitForNodes(ic.client, 2);
      await ic.client.devFund({ account: 'buyer:anonymous', sats: 1_000_000 });
      const sha = await ic.client.uploadModule(example('sha256/sha256.wasm'));
      for (let i = 0; i < 3; i++) {
        const job = await ic.client.submitJob({ module: sha.hash, inputs: Array.from({ length: 30 }, (_, k) => b64(`web-${i}-${k}`)), bid: 2_000_000 }, { wait: 20_000 });
        assert.equal(job.counts.succeeded, 30);
        await sleep(HOUR / 2);
      }
      // An epoch that issued something, and an earlier one: the chart needs two epochs in the window (with one,
      // it would appear only with the page's next poll of the latest epoch, 30 s on, by when that is a later one).
      let latest: EpochRecord | undefined;
      let earlier = false;
      await waitUntil(async () => {
        const r = await fetch(`${ic.url}/v1/issuance/epochs/latest`);
        latest = r.status === 200 ? (await r.json()) as EpochRecord : undefined;
        if (latest === undefined || BigInt(latest.document.expected.issuedMsat) <= 0n) return false;
        const hour = latest.document.epochHour;
        earlier = (await Promise.all([1, 2, 3].map(async (d) => (await fetch(`${ic.url}/v1/issuance/epochs/${hour - d}`)).status === 200))).some(Boolean);
        return earlier;
      }, 30_000, () => `no epoch issued yet, or none before it (${String(earlier)}): ${JSON.stringify(latest?.document.expected)}`);

      await page.goto(`${ibase}/issuance`);
      const rows = page.locator('table.leaderboard tbody tr');
      await rows.first().waitFor();
      // The page and the API at the same epoch: the one the page shows (hours close every 2 s).
      const shown = await page.evaluate(`(() => ({
        hour: Number(document.querySelector('[data-epoch]').getAttribute('data-epoch')),
        issued: document.querySelector('[data-stat=epoch-issued] .stat-value').textContent,
        pool: document.querySelector('[data-stat=epoch-pool] .stat-value').textContent,
        rewarded: document.querySelector('[data-stat=epoch-nodes] .stat-value').textContent,
        rows: [...document.querySelectorAll('table.leaderboard tbody tr')].map((tr) => ({
          node: tr.getAttribute('data-node'),
          allocation: tr.getAttribute('data-allocation'),
          cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
        })),
      }))()`) as { hour: number; issued: string; pool: string; rewarded: string; rows: Array<{ node: string; allocation: string; cells: string[] }> };
      const epoch = await api(`/v1/issuance/epochs/${shown.hour}`);
      const doc = epoch.document;
      assert.equal(doc.epochHour, shown.hour);
      const issued = BigInt(doc.expected.issuedMsat);
      assert.ok(issued > 0n, 'the epoch shown issued something');
      assert.equal(msatOf(shown.issued), issued);
      assert.equal(msatOf(shown.pool), BigInt(doc.poolMsat));
      const allocations = Object.entries(doc.expected.allocationsMsat).map(([node, a]) => ({ node, a: BigInt(a) }));
      assert.equal(shown.rewarded, String(allocations.filter((x) => x.a > 0n).length));
      // Leaderboard order: largest allocation first, ties by node id.
      const order = [...allocations].sort((x, y) => (x.a === y.a ? (x.node < y.node ? -1 : 1) : x.a > y.a ? -1 : 1));
      assert.deepEqual(shown.rows.map((r) => r.node), order.map((x) => x.node));
      assert.equal(order.length, 2, 'both paid nodes are in the epoch');
      const hourSec = Math.ceil(epoch.hourMs / 1000);
      for (const [i, r] of shown.rows.entries()) {
        const a = BigInt(doc.expected.allocationsMsat[r.node] as string);
        const [rank, share, allocation, uptime, reliability] = r.cells;
        assert.equal(rank, String(i + 1));
        assert.equal(r.allocation, a.toString());
        assert.equal(msatOf(allocation ?? ''), a, `${r.node}: the allocation shown`);
        assert.ok(Math.abs(parseFloat(share ?? '') - (100 * Number(a)) / Number(issued)) <= 0.0051, `${r.node}: share ${share} of ${a}/${issued}`);
        const avail = doc.hours.reduce((s, h) => s + Number(h.rows.find((x) => x.node === r.node)?.availSec ?? 0), 0);
        assert.ok(Math.abs(parseFloat(uptime ?? '') - (100 * avail) / (doc.hours.length * hourSec)) <= 0.051, `${r.node}: uptime ${uptime}`);
        const rel = doc.reliability.find((x) => x.node === r.node);
        const outcomes = Number(rel?.accepted ?? 0) + Number(rel?.failed ?? 0);
        assert.ok(outcomes > 0 && Math.abs(parseFloat(reliability ?? '') - (100 * Number(rel?.accepted)) / outcomes) <= 0.051, `${r.node}: reliability ${reliability}`);
      }
      await page.locator('.chart canvas').waitFor();

      // Verified here: the hour roots, the sums, the coordinator's receipt key and its signature.
      const key = ((await (await fetch(`${ic.url}/v1/receipts/key`)).json()) as { publicKey: string }).publicKey;
      assert.equal(epoch.publicKey, key);
      await page.getByRole('button', { name: 'Verify the epoch' }).click();
      const outcome = page.locator('#verify-epoch .verify-outcome');
      await page.locator('#verify-epoch .verify-outcome[data-verified=true]').waitFor();
      // The epoch verified is the one on the page: the one read above, or a later one if the page's
      // 30-second poll of the latest epoch came in between (hours here close every 2 s).
      const verified = Number(await outcome.getAttribute('data-hour'));
      assert.equal(String(verified), await page.locator('[data-epoch]').getAttribute('data-epoch'));
      assert.ok(verified >= shown.hour, `verified epoch ${verified}, shown ${shown.hour}`);
      assert.match((await outcome.textContent()) ?? '', new RegExp(`Signature valid.*${key}`, 's'));

      // The leaderboard, the verification and the chart at phone size: nothing serious for axe-core.
      const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
      try {
        const p = await phone.newPage();
        await p.goto(`${ibase}/issuance`);
        await p.locator('table.leaderboard tbody tr').first().waitFor();
        await p.getByRole('button', { name: 'Verify the epoch' }).click();
        await p.locator('#verify-epoch .verify-outcome[data-verified=true]').waitFor();
        assert.deepEqual(await axeViolations(p), []);
      } finally {
        await phone.close();
      }

      // One msat moved between the two nodes (the sum unchanged): the page shows it, and its check fails.
      let moved: { from: string; was: string; hour: number } | undefined;
      await page.route('**/v1/issuance/epochs/latest', async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as EpochRecord;
        const allocs = body.document.expected.allocationsMsat;
        const [top, next] = Object.entries(allocs).sort((x, y) => (BigInt(y[1]) > BigInt(x[1]) ? 1 : -1));
        if (top && next && BigInt(top[1]) > 0n) {
          allocs[top[0]] = String(BigInt(top[1]) - 1n);
          allocs[next[0]] = String(BigInt(next[1]) + 1n);
          moved = { from: top[0], was: top[1], hour: body.document.epochHour };
        }
        await route.fulfill({ response: res, json: body });
      });
      await page.reload();
      await rows.first().waitFor();
      assert.ok(moved, 'the latest epoch allocated something to move');
      assert.equal(await page.locator('[data-epoch]').getAttribute('data-epoch'), String(moved.hour));
      assert.equal(await page.locator(`table.leaderboard tr[data-node="${moved.from}"]`).getAttribute('data-allocation'), String(BigInt(moved.was) - 1n), 'the page shows the altered allocation');
      await page.getByRole('button', { name: 'Verify the epoch' }).click();
      await page.locator('#verify-epoch .verify-outcome[data-verified=false]').waitFor();
      assert.match((await outcome.textContent()) ?? '', /Verification failed.*signature does not verify/s);
      await page.unroute('**/v1/issuance/epochs/latest');

      // The overview's "issued this hour" reads the same epochs.
      await page.goto(`${ibase}/`);
      const issuedStat = page.locator('[data-stat=issued-hour]');
      await issuedStat.locator('.stat-hint').filter({ hasText: /^epoch \d+/ }).waitFor();
      const overview = await issuedStat.evaluate((el) => ({ value: el.querySelector('.stat-value')?.textContent ?? '', hint: el.querySelector('.stat-hint')?.textContent ?? '' }));
      const seen = await api(`/v1/issuance/epochs/${/^epoch (\d+)/.exec(overview.hint)?.[1] ?? ''}`);
      assert.equal(msatOf(overview.value), BigInt(seen.document.expected.issuedMsat));
      assert.equal(overview.hint, `epoch ${seen.document.epochHour}, ${Object.keys(seen.document.expected.allocationsMsat).length} nodes`);
    } finally {
      await Promise.all(paid.map((a) => a.stop()));
      await ic.stop();
    }
  });

  it('wallet: the QR code decodes to the API\'s deposit address; a Lightning invoice; a wrong-network withdrawal shows the API\'s message', async () => {
    await page.goto(`${base}/wallet`);
    const answered = page.waitForResponse((r) => r.url().endsWith('/v1/deposits/address') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Show a deposit address' }).click();
    const api = (await (await answered).json()) as { address: string; index: number };
    assert.equal(api.address, WatchOnlyAccount.parse(TPUB, 'regtest').receive(api.index).address, 'the treasury key\'s own address');
    await page.locator('#deposit canvas').waitFor();
    assert.equal(await decodeQr(page, '#deposit'), api.address);

    await page.getByLabel('Amount (sats)', { exact: true }).fill('2500');
    const invoiced = page.waitForResponse((r) => r.url().endsWith('/v1/deposits/lightning'));
    await page.getByRole('button', { name: 'Create invoice' }).click();
    const inv = (await (await invoiced).json()) as { bolt11: string };
    await page.locator('#lightning canvas').waitFor();
    assert.equal(await decodeQr(page, '#lightning'), inv.bolt11.toUpperCase());

    await page.getByLabel('Bitcoin address or Lightning invoice').fill('bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq');
    await page.getByLabel(/^Amount \(sats; an invoice/).fill('1000');
    await page.getByRole('button', { name: 'Withdraw', exact: true }).click();
    const alert = page.locator('#withdraw [role=alert]');
    await alert.waitFor();
    assert.match((await alert.locator('.error-message').textContent()) ?? '', /mainnet address; this coordinator pays out on regtest/);
    assert.equal(await alert.locator('.error-code').textContent(), 'IM_BTC_WRONG_NETWORK');
  });

  it('audit: the checkpoint verifies in the browser, and a checkpoint altered by one byte does not', async () => {
    await page.goto(`${base}/audit`);
    const outcome = page.locator('.verify-outcome');
    await page.getByRole('button', { name: 'Verify the checkpoint' }).click();
    await page.locator('.verify-outcome[data-verified=true]').waitFor();
    assert.match((await outcome.textContent()) ?? '', /Signature valid/);

    await page.route('**/v1/audit/checkpoint', async (route) => {
      const res = await route.fetch();
      const lines = (await res.text()).split('\n');
      const root = lines[2] ?? '';
      // One byte of the signed root hash changes (a base64 character swapped for another).
      lines[2] = `${root[0] === 'A' ? 'B' : 'A'}${root.slice(1)}`;
      await route.fulfill({ response: res, body: lines.join('\n') });
    });
    await page.getByRole('button', { name: 'Verify the checkpoint' }).click();
    await page.locator('.verify-outcome[data-verified=false]').waitFor();
    assert.match((await outcome.textContent()) ?? '', /Verification failed.*does not verify/s);
    await page.unroute('**/v1/audit/checkpoint');
  });

  it('axe-core finds no serious or critical issue on any page at phone size', async () => {
    const jobs = await coord.client.listJobs({ limit: 1 });
    const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    const found: string[] = [];
    try {
      for (const path of ['/', '/nodes', '/jobs', `/jobs/${jobs[0]?.id ?? ''}`, '/wallet', '/issuance', '/approvals', '/audit', '/contribute', '/signin']) {
        await p.goto(`${base}${path}`);
        await p.locator('main h1').first().waitFor();
        await p.waitForTimeout(400);
        if (path === '/wallet') {
          await p.getByRole('button', { name: 'Show a deposit address' }).click();
          await p.locator('#deposit canvas').waitFor();
        }
        for (const v of await axeViolations(p)) found.push(`${path}: ${v}`);
      }
    } finally {
      await phone.close();
    }
    assert.deepEqual(found, []);
  });

  it('passkeys: an admin-created user enrols with a virtual authenticator, signs in, and the forms show the API\'s errors', async () => {
    const token = (await coord.waitFor(/idlemesh bootstrap --token (imb_\S+)/))[1] as string;
    const post = async (path: string, body: unknown, key?: string): Promise<Record<string, unknown>> => {
      const r = await fetch(`${coord.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
      return (await r.json()) as Record<string, unknown>;
    };
    const admin = (await post('/v1/bootstrap', { token, org: 'web-e2e' })).key as string;
    const user = await post('/v1/users', { name: 'alice', roles: ['admin', 'approver', 'buyer'] }, admin);

    const cdp = await ctx.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });
    await page.goto(`${base}/jobs`);
    await page.getByRole('heading', { name: 'Sign in to continue' }).waitFor();
    await page.goto(`${base}/signin`);
    await page.getByLabel('User id').fill(user.id as string);
    await page.getByLabel('Enrolment token').fill(user.enrolToken as string);
    await page.getByRole('button', { name: 'Register passkey and sign in' }).click();
    await page.getByText('Passkey registered; you are signed in.').waitFor({ timeout: 15_000 });
    await page.getByTestId('signed-in').waitFor();
    assert.match((await page.getByTestId('signed-in').textContent()) ?? '', /as admin, approver, buyer/);

    // Signed in by the HTTP-only cookie; writes carry the CSRF token. A malformed policy: the API's message.
    await page.goto(`${base}/approvals`);
    await page.getByLabel('Policy (YAML)').fill('version: 1\noverflow: { waitMs: -5 }\n');
    await page.getByRole('button', { name: 'Save policy' }).click();
    const refused = page.locator('#policy [role=alert]').filter({ hasText: 'The policy was refused' });
    await refused.waitFor();
    assert.equal(await refused.locator('.error-code').textContent(), 'IM_VALIDATION');
    assert.match((await refused.locator('.error-message').textContent()) ?? '', /waitMs/);
    await page.getByLabel('Policy (YAML)').fill('version: 1\ndefaultLabel: public\n');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Saved: version 1.').waitFor();

    // Out, and back in with the discoverable passkey alone.
    await page.goto(`${base}/signin`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${base}/`);
    await page.getByRole('link', { name: 'admin, approver, buyer' }).waitFor();
    assert.deepEqual(errors, [], 'no uncaught errors in the pages');
  });
});
