/**
 * Issuance with the inputs that cannot be forged cheaply, end to end: one
 * bootstrapped coordinator with short hours (one probe round at a random time
 * in each), two organisations that each operate a node in the public pool,
 * two more agent processes on this same machine posing as two independent
 * nodes, a node asking above the spot price, and a raw-protocol cheater with
 * a bond that the referee convicts.
 *
 * It checks, against the frozen hourly tables and the signed epoch:
 * - paidMsat is exactly the final payments for public, spot-checked work
 *   whose buyer is another organisation than the node's operator (recomputed
 *   here from the ledger and the jobs this test submitted);
 * - capMeasured comes from the coordinator's probes: the cheater's claimed
 *   calibration counts for nothing; every row's value is a probe result
 *   published with the hour; the posing pair (like every agent here: one
 *   machine, one /24) is never measured apart, and a group's nodes together
 *   are credited no more than the group's own throughput (all its fuel over
 *   its last result) — never the sum of their slots timed one by one;
 * - node → operator and bonds per operator are published; the bond cap binds
 *   for the under-bonded organisation (a larger bond would have scored more);
 * - availSec is 0 for the node asking above the spot price;
 * - the cheater's operator is slashed (bond and slash transfers), scores 0;
 * - `idlemesh ledger check` and `idlemesh audit issuance` agree on every node.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { signResults } from '@idlemesh/protocol';
import type { Capabilities, LeasedTask, ServerMessage, TaskOutcome } from '@idlemesh/protocol';
import { loadOrCreateKey } from '@idlemesh/agent';
import { issuance } from '@idlemesh/coordinator';
import type { EpochRecord, HourDoc } from '@idlemesh/coordinator';
import { b64, example, runCli, sleep, startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import { connectRawAgent } from './raw-agent.js';

const HOUR = 6000;
const ASK = 1_000_000;
const BID = 2_000_000;
/** The cheater claims a calibration no machine has: it must not count. */
const CHEATER_CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 64, memoryMb: 256, arch: 'x64', os: 'linux', gpus: [], maxTasks: 4,
  benchmark: { fuelPerSec: 1e15 }, agentVersion: 'cheater-test', ask: ASK,
};
const sha256hex = (x: string | Uint8Array): string => createHash('sha256').update(x).digest('hex');

interface Submitted { buyerOrg: string; label: 'public' | 'private'; verified: boolean }
interface TransferView { id: string; type: string; code: string; creditAccount: string; debitAccount: string; amountMsat: string; ref?: string; timestamp: number }

describe('issuance with two organisations, a posing pair and a cheater', () => {
  it('freezes rows from third-party public pay, probe-measured capacity counted once, bond caps and slashes; ledger check and audit agree', async () => {
    const dir = tempDir('issuance-orgs');
    const coord = await startCoordinatorProc({
      dataDir: `${dir.path}/coord`,
      args: ['--issuance-hour-ms', String(HOUR), '--probe-interval-ms', String(HOUR), '--heartbeat-ms', '300'],
    });
    const agents: Array<ReturnType<typeof startAgentProc>> = [];
    let ws: WebSocket | undefined;
    const api = async <T = Record<string, unknown>>(method: string, path: string, key: string | undefined, body?: unknown): Promise<{ status: number; body: T }> => {
      const res = await fetch(`${coord.url}${path}`, {
        method, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body !== undefined ? { 'content-type': body instanceof Uint8Array ? 'application/wasm' : 'application/json' } : {}) },
        ...(body !== undefined ? { body: body instanceof Uint8Array ? body : JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as T };
    };
    const cli = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; text: string }> => {
      const p = runCli('cli', ['--coordinator', coord.url, ...args], env);
      return { code: await p.wait(), text: p.text };
    };
    const hourOf = (t: number): number => Math.floor(t / HOUR);
    try {
      // ---- organisations, keys, money --------------------------------------------------------
      const token = (await coord.waitFor(/idlemesh bootstrap --token (imb_\S+)/))[1]!;
      const boot = await cli(['bootstrap', '--token', token, '--org', 'network-co', '--json']);
      assert.equal(boot.code, 0, boot.text);
      const root = (JSON.parse(boot.text) as { key: string }).key;
      const org = async (name: string): Promise<{ id: string; admin: string; buyer: string }> => {
        const id = (await api<{ id: string }>('POST', '/v1/orgs', root, { name })).body.id;
        const key = async (roles: string[]): Promise<string> => (await api<{ key: string }>('POST', '/v1/keys', root, { name: roles.join('+'), roles, org: id })).body.key;
        return { id, admin: await key(['admin']), buyer: await key(['buyer']) };
      };
      const alpha = await org('alpha');
      const beta = await org('beta');
      const fund = async (account: string, sats: number): Promise<void> => {
        const r = await api('POST', '/v1/dev/fund', root, { account, sats });
        assert.equal(r.status, 201, JSON.stringify(r.body));
      };
      await fund(`buyer:org:${alpha.id}`, 5_000_000);
      await fund(`buyer:org:${beta.id}`, 5_000_000);

      // Node keys; each bonds from its operator account (funded here) through `idlemesh stake add`.
      const node = async (name: string): Promise<{ id: string; keyFile: string; dataDir: string }> => {
        const dataDir = `${dir.path}/${name}`;
        const { key } = await loadOrCreateKey(`${dataDir}/node.key`);
        return { id: key.publicKeyHex, keyFile: `${dataDir}/node.key`, dataDir };
      };
      const bond = async (n: { id: string; keyFile: string }, sats: number): Promise<void> => {
        await fund(`operator:${n.id}`, sats);
        const r = await cli(['stake', 'add', String(sats), '--key-file', n.keyFile]);
        assert.equal(r.code, 0, r.text);
      };
      // Each organisation operates one node in the public pool: a --public enrolment token, redeemed with the node's key.
      const enrol = async (o: { admin: string }, n: { keyFile: string }): Promise<void> => {
        const t = await api<{ token: string }>('POST', '/v1/pools/tokens', o.admin, { uses: 1, public: true });
        assert.equal(t.status, 201, JSON.stringify(t.body));
        const joined = await cli(['pools', 'join', t.body.token, '--key-file', n.keyFile, '--json']);
        assert.equal(joined.code, 0, joined.text);
      };
      const a1 = await node('a1');
      const b1 = await node('b1');
      const p1 = await node('p1');
      const p2 = await node('p2');
      const pricey = await node('pricey');
      await enrol(alpha, a1);
      await enrol(beta, b1);
      // alpha is under-bonded: 100 sats cap its counted capacity at 100 units (1000 msat each).
      await bond(a1, 100);
      for (const n of [b1, p1, p2, pricey]) await bond(n, 20_000);
      const operatorOf = new Map<string, string>([[a1.id, `org:${alpha.id}`], [b1.id, `org:${beta.id}`], [p1.id, `node:${p1.id}`], [p2.id, `node:${p2.id}`], [pricey.id, `node:${pricey.id}`]]);

      const mod = (await api<{ hash: string }>('POST', '/v1/modules', alpha.buyer, new Uint8Array(example('sha256/sha256.wasm')))).body.hash;
      const jobs = new Map<string, Submitted>();
      const submit = async (o: { id: string; buyer: string }, tasks: number, opts: { label: 'public' | 'private'; verified: boolean }): Promise<string> => {
        const r = await api<{ id: string }>('POST', '/v1/jobs', o.buyer, {
          module: mod, inputs: Array.from({ length: tasks }, (_, i) => b64(`${o.id}-${jobs.size}-${i}`)), bid: BID, label: opts.label,
          verification: opts.verified ? { mode: 'spot-check', rate: 1 } : { mode: 'trusted' },
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        jobs.set(r.body.id, { buyerOrg: `org:${o.id}`, ...opts });
        return r.body.id;
      };
      const finished = async (o: { buyer: string }, id: string): Promise<void> => {
        await waitUntil(async () => (await api<{ state: string }>('GET', `/v1/jobs/${id}`, o.buyer)).body.state === 'completed', 60_000, () => coord.text.slice(-3000));
      };

      // ---- the cheater: a bonded raw-protocol node that lies on beta's spot-checked job ----------
      const cheaterKey = (await loadOrCreateKey(`${dir.path}/cheater.key`)).key;
      const cheater = cheaterKey.publicKeyHex;
      await bond({ id: cheater, keyFile: `${dir.path}/cheater.key` }, 600);
      operatorOf.set(cheater, `node:${cheater}`);
      const raw = await connectRawAgent(coord.url, cheaterKey, CHEATER_CAPS);
      ws = raw.ws;
      const { inbox } = raw;
      ws.send(JSON.stringify({ type: 'heartbeat', state: 'active', running: 0 }));
      const j0 = await submit(beta, 3, { label: 'public', verified: true });
      ws.send(JSON.stringify({ type: 'credit', n: 3 }));
      const leased: LeasedTask[] = [];
      await waitUntil(() => {
        for (let i = inbox.findIndex((x) => x.type === 'lease'); i >= 0; i = inbox.findIndex((x) => x.type === 'lease')) {
          const tasks = (inbox.splice(i, 1)[0] as Extract<ServerMessage, { type: 'lease' }>).tasks;
          leased.push(...tasks.filter((t) => t.jobId === j0));
          // A probe took the credit: the cheater never answers probes (they lapse), and asks again.
          const probes = tasks.filter((t) => t.jobId !== j0).length;
          if (probes > 0) ws!.send(JSON.stringify({ type: 'credit', n: probes }));
        }
        return leased.length === 3;
      }, 15_000);
      const lies: TaskOutcome[] = leased.map((t) => ({
        taskId: t.taskId, attempt: t.attempt, ok: true, startedAt: Date.now(), endedAt: Date.now(), inputHash: sha256hex(Buffer.from(t.input, 'base64')),
        runtime: 'wasm', runtimeVersion: 'cheater/1', output: Buffer.from('not the hash').toString('base64'), fuel: 1000,
      }));
      ws.send(JSON.stringify(await signResults(cheaterKey, lies, Date.now())));
      const evidence = async (): Promise<Array<{ task: string; slashedMsat: string }>> =>
        (await api<{ evidence: Array<{ task: string; slashedMsat: string }> }>('GET', `/v1/evidence?node=${cheater}`, root)).body.evidence;
      await waitUntil(async () => (await evidence()).filter((e) => e.task.startsWith(j0)).length === 3, 30_000, () => coord.text.slice(-3000));
      ws.close();
      await finished(beta, j0);

      const online = async (): Promise<Set<string>> =>
        new Set((await api<{ nodes: Array<{ id: string; state: string }> }>('GET', '/v1/nodes', root)).body.nodes.filter((n) => n.state === 'online').map((n) => n.id));
      const hourDoc = async (h: number): Promise<HourDoc | undefined> => {
        const r = await api<HourDoc>('GET', `/v1/issuance/hours/${h}`, undefined);
        return r.status === 200 ? r.body : undefined;
      };

      // ---- everyone: a1 (alpha), b1 (beta), the posing pair p1+p2 (own keys, this machine), a node asking too much ----
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: a1.dataDir, maxTasks: 2, name: 'a1', args: ['--ask', String(ASK)] }));
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: b1.dataDir, maxTasks: 1, name: 'b1', args: ['--ask', String(ASK)] }));
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: p1.dataDir, maxTasks: 1, name: 'p1', args: ['--ask', String(ASK)] }));
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: p2.dataDir, maxTasks: 1, name: 'p2', args: ['--ask', String(ASK)] }));
      agents.push(startAgentProc({ coordinator: coord.url, dataDir: pricey.dataDir, maxTasks: 1, name: 'pricey', args: ['--ask', String(50 * BID)] }));
      await waitUntil(async () => {
        const on = await online();
        return [a1, b1, p1, p2, pricey].every((n) => on.has(n.id));
      }, 30_000);
      const allFrom = Date.now();

      // Work: alpha's and beta's public spot-checked jobs (each pays the other's node, and its own), beta's private
      // job (its own node only), alpha's trusted job. Twice, an hour apart.
      for (let round = 0; round < 2; round++) {
        const ids = [
          await submit(alpha, 12, { label: 'public', verified: true }),
          await submit(beta, 12, { label: 'public', verified: true }),
          await submit(beta, 4, { label: 'private', verified: true }),
          await submit(alpha, 6, { label: 'public', verified: false }),
        ];
        for (const id of ids) await finished(jobs.get(id)!.buyerOrg === `org:${alpha.id}` ? alpha : beta, id);
        if (round === 0) await sleep(HOUR);
      }
      const workDone = Date.now();
      // Then idle hours, so every node is probed with free slots.
      await sleep(3 * HOUR);

      // ---- the epoch that covers it all -------------------------------------------------------------
      let e: EpochRecord | undefined;
      await waitUntil(async () => {
        const r = await api<EpochRecord>('GET', '/v1/issuance/epochs/latest', undefined);
        e = r.status === 200 ? r.body : undefined;
        return e !== undefined && e.document.epochHour >= hourOf(workDone) + 3;
      }, 6 * HOUR, () => coord.text.slice(-3000));
      const doc = e!.document;
      const hours = new Map<number, HourDoc>();
      for (const h of doc.hours) hours.set(h.hour, (await hourDoc(h.hour))!);

      // paidMsat: recomputed from the ledger's final payments and what each job was.
      const expected = new Map<string, bigint>(); // `${hour}|${node}`
      let counted = 0n;
      let excluded = 0n;
      for (const n of [a1, b1, p1, p2, pricey, { id: cheater }]) {
        const acc = await api<{ transfers: TransferView[] }>('GET', `/v1/accounts/operator:${n.id}?limit=1000`, root);
        for (const t of acc.body.transfers) {
          if (t.code !== 'payment' || (t.type !== 'single' && t.type !== 'post')) continue;
          const job = jobs.get(t.ref ?? '');
          assert.ok(job, `payment ${t.id} is for a job this test submitted`);
          if (job.label === 'public' && job.verified && job.buyerOrg !== operatorOf.get(n.id)) {
            const k = `${hourOf(t.timestamp)}|${n.id}`;
            expected.set(k, (expected.get(k) ?? 0n) + BigInt(t.amountMsat));
            counted += BigInt(t.amountMsat);
          } else excluded += BigInt(t.amountMsat);
        }
      }
      assert.ok(counted > 0n, 'some work was paid by a third party');
      assert.ok(excluded > 0n, 'and some was an organisation paying its own node, private or trusted');
      for (const [h, d] of hours) {
        for (const r of d.rows) assert.equal(BigInt(r.paidMsat), expected.get(`${h}|${r.node}`) ?? 0n, `hour ${h}, node ${r.node.slice(0, 8)}: paidMsat`);
      }
      for (const [k, v] of expected) {
        const [h, n] = k.split('|') as [string, string];
        assert.equal(hours.get(Number(h))?.rows.find((r) => r.node === n)?.paidMsat, v.toString(), `payment of hour ${h} to ${n.slice(0, 8)} is in the frozen table`);
      }

      // Operators and bonds, as published per hour and signed in the epoch.
      const last = hours.get(doc.epochHour)!;
      for (const [n, op] of operatorOf) {
        if (last.operators?.[n] !== undefined) assert.equal(last.operators[n], op, `operator of ${n.slice(0, 8)}`);
        const inEpoch = doc.nodes.find((x) => x.id === n);
        if (inEpoch) assert.equal(inEpoch.operator, op);
      }
      assert.equal(last.bonds[`org:${alpha.id}`], '100000', 'alpha bonds 100 sats');
      assert.equal(last.bonds[`node:${p1.id}`], '20000000');

      // capMeasured: probes, not claims. The cheater claimed 1e15 fuel/s and is measured at 0.
      assert.ok([...hours.values()].every((d) => (d.rows.find((r) => r.node === cheater)?.capMeasured ?? '0') === '0'), 'a claimed calibration counts for nothing');
      // Every capMeasured in a row is a probe group's measurement published with the hour.
      for (const d of hours.values()) {
        for (const r of d.rows) {
          if (r.capMeasured === '0') continue;
          const measured = (d.probes ?? []).map((p) => p.nodes[r.node]?.units).filter((u) => u !== undefined);
          assert.ok(measured.includes(Number(r.capMeasured)), `hour ${d.hour}: ${r.node.slice(0, 8)}'s capMeasured ${r.capMeasured} is one of its probe results ${JSON.stringify(measured)}`);
        }
      }
      // The posing pair (and everyone else on this machine's prefix) is probed as one group, and the group's
      // nodes together are credited no more than the group's own throughput: all its fuel over its last result.
      const group = [a1, b1, p1, p2, pricey].map((n) => n.id);
      const rounds = [...hours.values()].filter((d) => d.hour > hourOf(allFrom)).flatMap((d) => d.probes ?? [])
        .flatMap((p) => (p.kind === undefined && group.some((n) => p.nodes[n] !== undefined) ? [p] : []));
      assert.ok(rounds.length > 0, 'the five were probed');
      const sums: number[] = [];
      for (const p of rounds) {
        // Results are per group of a round (`<hour>:<round>|<group>:<coordinator>`): if the round probed both, one group did.
        const sameRound = rounds.filter((q) => q.id.split('|')[0] === p.id.split('|')[0]);
        const withP1 = sameRound.find((q) => q.nodes[p1.id] !== undefined);
        const withP2 = sameRound.find((q) => q.nodes[p2.id] !== undefined);
        if (withP1 && withP2) assert.equal(withP1.id, withP2.id, 'the posing pair is never measured apart');
        const nodes = Object.values(p.nodes);
        const good = nodes.filter((n) => !n.bad && n.done === n.tasks);
        if (good.length === 0) continue;
        const throughput = Math.floor(good.reduce((s, n) => s + n.tasks * p.fuelPerTask, 0) * 1000 / Math.max(...good.map((n) => Math.max(1, n.elapsedMs))) / 1e6);
        const credited = good.reduce((s, n) => s + n.units, 0);
        assert.ok(credited <= throughput && credited >= throughput - good.length, `round ${p.id}: credited ${credited} units, the group did ${throughput}`);
        // Timed one by one, the same results would have claimed more whenever they did not finish together.
        const naive = good.reduce((s, n) => s + Math.floor(n.tasks * p.fuelPerTask * 1000 / Math.max(1, n.elapsedMs) / 1e6), 0);
        assert.ok(naive >= credited);
        if (group.every((n) => p.nodes[n] !== undefined)) sums.push(credited);
      }
      assert.ok(sums.length > 0, `no round with all five probed: ${JSON.stringify(rounds.map((p) => Object.keys(p.nodes).length))}`);
      console.log(`# capacity: the five together, per round: ${sums.join(', ')} units`);

      // The bond cap binds for alpha: its node measured more than 100 units, and a larger bond would have scored more.
      assert.ok([...hours.values()].some((d) => Number(d.rows.find((r) => r.node === a1.id)?.capMeasured ?? '0') > 100), 'a1 measures above its cap');
      const parsed = issuance.parseEpochDocument(doc);
      const published = parsed.expected!.scores.get(a1.id)!;
      const rich = issuance.computeEpoch({
        ...parsed.input,
        hours: parsed.input.hours.map((h) => ({ ...h, bonds: new Map([...h.bonds, [`org:${alpha.id}`, 10n ** 15n]]) })),
      });
      assert.ok(rich.scores.get(a1.id)! > published, `a1's score ${published} is held down by its bond cap (uncapped: ${rich.scores.get(a1.id)})`);

      // availSec: the node asking 50× the spot price is never available once a market exists; the others are.
      const priced = [...hours.values()].filter((d) => d.hour > hourOf(allFrom) + 1 && d.hour > hourOf(workDone) - 1);
      assert.ok(priced.length > 0);
      for (const d of priced) {
        assert.equal(d.rows.find((r) => r.node === pricey.id)?.availSec ?? '0', '0', `hour ${d.hour}: pricey asks above spot`);
        assert.ok(BigInt(d.rows.find((r) => r.node === p1.id)?.availSec ?? '0') > 0n, `hour ${d.hour}: p1 asks the spot price`);
      }

      // The cheater: bonded, slashed three times (half of what was left each), its operator slashed, score 0.
      const stake = (await api<{ transfers: TransferView[] }>('GET', `/v1/accounts/stake:${cheater}?limit=1000`, root)).body.transfers;
      assert.deepEqual(stake.filter((t) => t.code === 'stake').map((t) => [t.debitAccount, t.amountMsat]), [[`operator:${cheater}`, '600000']]);
      const slashes = stake.filter((t) => t.code === 'slash');
      assert.equal(slashes.reduce((s, t) => s + BigInt(t.amountMsat), 0n), 525_000n, '600 → 300 → 150 → 75 sats');
      assert.ok(slashes.every((t) => t.creditAccount === 'reward-pool' || t.creditAccount === `buyer:org:${beta.id}`), 'slashes refund the harmed buyer, the rest to the pool');
      assert.deepEqual(doc.operators.find((o) => o.id === `node:${cheater}`), { id: `node:${cheater}`, slashed: true });
      assert.equal(doc.expected?.score[cheater], '0');
      for (const n of [p1, p2]) assert.deepEqual(doc.operators.find((o) => o.id === `node:${n.id}`), { id: `node:${n.id}`, slashed: false });

      // The ledger balances, and anyone recomputing the epoch agrees on every node.
      const check = await cli(['ledger', 'check'], { IDLEMESH_API_KEY: root });
      assert.equal(check.code, 0, check.text);
      const audited = await cli(['audit', 'issuance', '--epoch', String(doc.epochHour), '--key', e!.publicKey, '--json']);
      assert.equal(audited.code, 0, audited.text);
      const report = JSON.parse(audited.text) as { ok: boolean; nodes: Array<{ node: string; agree: boolean }>; problems: string[] };
      assert.deepEqual(report.problems, []);
      assert.deepEqual(report.nodes.map((n) => n.node).sort(), doc.nodes.map((n) => n.id).sort());
      assert.ok(report.nodes.every((n) => n.agree));
      assert.ok(doc.nodes.length >= 6, 'the five agents and the cheater');
    } finally {
      ws?.close();
      await Promise.all(agents.map((a) => a.stop()));
      await coord.stop();
      dir.remove();
    }
  });
});
