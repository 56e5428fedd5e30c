// Screenshots of the web app's main pages at desktop (1280×800) and phone
// (375×812) sizes, saved as docs/screenshots/<page>-<size>.png. Starts a local
// mesh in a temporary directory — a coordinator (regtest treasury key, a fake
// Lightning node), two Node agents and this browser as a third node — gives
// it some jobs (paid, free, failing, running), then opens each page.
//
// Usage: npm run screenshots   (after npm run build; needs Chromium at
// /usr/bin/chromium or IDLEMESH_CHROMIUM)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { IdlemeshClient } from '@idlemesh/sdk';
import { FakeLnd } from '@idlemesh/bitcoin/testing';
import { WatchOnlyAccount } from '@idlemesh/bitcoin';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'packages/cli/bin/idlemesh.js');
const OUT = join(ROOT, 'docs/screenshots');
const CHROMIUM = process.env.IDLEMESH_CHROMIUM ?? '/usr/bin/chromium';
const TPUB = 'tpubDC8msFGeGuwnKG9Upg7DM2b4DaRqg3CUZa5g8v2SRQ6K4NSkxUgd7HsL2XVWbVm39yBA4LAxysQAm397zwQSQoQgewGiYZqrA9DsP4zbQ1M';
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 375, height: 812 } };

const b64 = (s) => Buffer.from(s).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const children = [];
function run(name, args, env = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT, env: { ...process.env, IDLEMESH_LOG_LEVEL: 'warn', IDLEMESH_EXIT_WITH_PARENT: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr.on('data', (d) => {
    if (process.env.IDLEMESH_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  });
  children.push(child);
  return child;
}

async function until(what, cond, timeoutMs = 30_000) {
  const start = Date.now();
  while (!(await cond().catch(() => false))) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}; install it (apt-get install chromium) or set IDLEMESH_CHROMIUM`);
  if (!existsSync(join(ROOT, 'packages/web/dist/index.html'))) throw new Error('the web app is not built: npm run build');
  mkdirSync(OUT, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'idlemesh-shots-'));
  const lnd = await FakeLnd.start();
  let browser;
  try {
    const port = await freePort();
    run('coordinator', ['coordinator', '--port', String(port), '--data-dir', join(dir, 'coord'), '--heartbeat-ms', '500', '--issuance-hour-ms', '4000', '--verify', 'spot-check:0.05', '--treasury-key', TPUB, '--lightning', `lnd:${lnd.url}`],
      { IDLEMESH_LIGHTNING_AUTH: lnd.macaroonHex });
    const base = `http://localhost:${port}`;
    const api = new IdlemeshClient({ url: `http://127.0.0.1:${port}` });
    await until('the coordinator', async () => (await api.health()).ok);
    run('agent-1', ['agent', '--coordinator', base, '--data-dir', join(dir, 'a1'), '--max-tasks', '1', '--name', 'rack-7 (server)', '--ask', '100', '--region', 'eu-west']);
    run('agent-2', ['agent', '--coordinator', base, '--data-dir', join(dir, 'a2'), '--max-tasks', '1', '--name', 'studio laptop']);
    await until('two agents', async () => (await api.nodes()).filter((n) => n.state === 'online').length === 2);

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    // This browser contributes too: the third node.
    const nodeCtx = await browser.newContext({ viewport: SIZES.desktop });
    const nodePage = await nodeCtx.newPage();
    await nodePage.goto(`${base}/contribute`);
    await nodePage.getByRole('button', { name: 'Start contributing' }).click();
    await until('the browser node', async () => (await nodePage.locator('.node-status').getAttribute('data-status')) === 'active');

    // Money and work: a funded buyer, a paid job, a free one, one that fails in part, one still running.
    await api.devFund({ account: 'buyer:anonymous', sats: 250_000 });
    const nbody = (await api.uploadModule(new Uint8Array(readFileSync(join(ROOT, 'examples/nbody/nbody.wasm'))))).hash;
    const sha = (await api.uploadModule(new Uint8Array(readFileSync(join(ROOT, 'examples/sha256/sha256.wasm'))))).hash;
    const paid = await api.submitJob({ module: nbody, name: 'n-body sweep (paid)', bid: 1000, inputs: Array.from({ length: 24 }, (_, i) => b64(String(400_000 + 50_000 * (i % 6)))) });
    await api.waitForJob(paid.id);
    const free = await api.submitJob({ module: sha, name: 'hash corpus', inputs: Array.from({ length: 200 }, (_, i) => b64(`document ${i}`)) });
    await api.waitForJob(free.id);
    const failing = await api.submitJob({ module: nbody, name: 'bad inputs', maxAttempts: 1, inputs: ['1000', 'not a number', '2000', '-5'].map(b64) });
    await api.waitForJob(failing.id);
    const running = await api.submitJob({ module: nbody, name: 'long simulation', inputs: Array.from({ length: 400 }, () => b64('1500000')) });
    await until('the long job to be under way', async () => (await api.getJob(running.id)).counts.succeeded >= 30);

    // A withdrawal to a regtest address of someone else, queued for the next payout batch.
    await api.withdraw({ sats: 20_000, address: WatchOnlyAccount.parse(TPUB, 'regtest').receive(40).address });

    const pages = [
      // Long enough for the throughput chart to have a few samples.
      { name: 'overview', path: '/', wait: 7000 },
      {
        name: 'nodes', path: '/nodes',
        prepare: async (page) => {
          await page.getByRole('button', { name: /Details: stake and earnings of rack-7/ }).click();
          await page.locator('.node-detail .inline-dl').waitFor();
        },
      },
      { name: 'jobs', path: '/jobs' },
      { name: 'job', path: `/jobs/${paid.id}` },
      {
        name: 'wallet', path: '/wallet',
        prepare: async (page) => {
          await page.getByRole('button', { name: 'Show a deposit address' }).click();
          await page.locator('#deposit canvas').waitFor();
          await page.getByRole('button', { name: 'Create invoice' }).click();
          await page.locator('#lightning canvas').waitFor();
        },
      },
      { name: 'issuance', path: '/issuance' },
      { name: 'approvals', path: '/approvals' },
      {
        name: 'audit', path: '/audit',
        prepare: async (page) => {
          await page.getByRole('button', { name: 'Verify the checkpoint' }).click();
          await page.locator('.verify-outcome[data-verified=true]').waitFor();
        },
      },
      { name: 'contribute', path: '/contribute', page: nodePage },
      { name: 'signin', path: '/signin' },
    ];
    for (const [size, viewport] of Object.entries(SIZES)) {
      const ctx = await browser.newContext({ viewport, deviceScaleFactor: 1, ...(size === 'phone' ? { isMobile: true, hasTouch: true } : {}) });
      const page = await ctx.newPage();
      for (const p of pages) {
        const target = p.page ?? page;
        if (p.page) await target.setViewportSize(viewport);
        else await target.goto(`${base}${p.path}`);
        await target.locator('main h1').first().waitFor();
        await p.prepare?.(target);
        // Two polls: live numbers (rates, progress) have something to show.
        await sleep(p.wait ?? (p.page ? 500 : 2300));
        const file = join(OUT, `${p.name}-${size}.png`);
        await target.screenshot({ path: file, fullPage: true });
        console.log(`saved ${file.slice(ROOT.length)}`);
      }
      await ctx.close();
    }
    await api.cancelJob(running.id).catch(() => undefined);
  } finally {
    await browser?.close();
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await lnd.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`screenshots failed: ${err.stack ?? err}`);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  process.exit(1);
});
