/**
 * Issuance in the running coordinator: it meters each node, freezes every
 * hour into a published table, and once an hour runs the `rolling-24h/1`
 * epoch (issuance/, pure) over the last 24 tables, paying the allocations
 * from the reward pool.
 *
 * - Metering, on every coordinator for its own agents (added up in the
 *   store): seconds active while asking at or below the spot price of the
 *   node's runtimes (`availSec`), offered and busy slot-seconds, node-fault
 *   outcomes (accepted / failed; probe results included), and the capacity
 *   the coordinator's own probes measured (probes.ts). Payments come from the
 *   ledger: `payment` transfers that became final in the hour, for public
 *   work (not `private`, verified: not `trusted`, no zero-rate spot check) whose
 *   buyer is another organisation than the node's operator.
 * - Operators: a node enrolled in an organisation (an enrolment token its
 *   admin made, redeemed by a request signed with the node's key, or an
 *   admin's admission) is operated by `org:<org id>`; any other node by its
 *   own key, `node:<node id>`. Neither side can claim the other alone. Bonds
 *   are the stake accounts of an operator's nodes, added up.
 * - Closing, on the sweep leader only, hour by hour in order (caught up after
 *   downtime): the hour's rows freeze into a record with their RFC 6962 root
 *   and the node → operator map and operator bonds; then the epoch of that
 *   hour: its inputs (every row of the window, bonds, reliability, slashed
 *   operators, the pool), its outputs, the hourly roots and the
 *   coordinator's signature are stored with the reward transfers in one
 *   commit — exactly once, since the epoch record must not exist yet.
 */
import { canonicalJson, utf8 } from '@idlemesh/protocol';
import {
  FORMULA, computeEpoch, expectedOf, hourRowJson, hourRowsRootHex, serializeEpochDocument,
} from './issuance/index.js';
import type { EpochDocumentJson, HourRow, HourTable, IssuanceParams } from './issuance/index.js';
import { ACCOUNTS, accountInput } from './settlement/index.js';
import { PROBE_CALLER, ProbeService } from './probes.js';
import { CHECK_CALLER } from './inference-check.js';
import type { Core } from './core.js';
import type { MeterRow } from './store/index.js';

export const ISSUANCE_PARAMS: IssuanceParams = Object.freeze({
  alpha: [7n, 10n] as const,
  windowHours: 24,
  scale: 10n ** 18n,
  bondPerCapUnitMsat: 1000n,
});

/** Longest gap between two ticks that still counts as connected time. */
const MAX_TICK_MS = 10_000;
/** How long a read of the spot prices is reused by metering (at most a tenth of the hour). */
const SPOT_TTL_MS = 10_000;
/** Hours closed per sweep at most (catching up after downtime spreads over sweeps). */
const MAX_CLOSE_PER_SWEEP = 24;

export interface HourDoc {
  hour: number;
  root: string;
  /** Operator → bonded msat (its nodes' stake accounts) when the hour froze. */
  bonds: Record<string, string>;
  /** Node → operator for every row. */
  operators?: Record<string, string>;
  rows: ReturnType<typeof hourRowJson>[];
  reliability: Array<{ node: string; accepted: number; failed: number }>;
  /** The probe groups measured in the hour, the basis of `capMeasured` (probes.ts). */
  probes?: ProbeResultDoc[];
  frozenAt: number;
}

/** A probe group's measurement (probes.ts): a wasm round (tasks of known fuel), or an inference round (`kind: 'inference'`, effort per node). */
export type ProbeResultDoc = {
  id: string;
  hour: number;
  sentAt: number;
} & ({
  kind?: undefined;
  fuelPerTask: number;
  nodes: Record<string, { tasks: number; done: number; bad: boolean; elapsedMs: number; units: number }>;
} | {
  kind: 'inference';
  nodes: Record<string, { fuel: number; done: boolean; elapsedMs: number; units: number }>;
});

export interface EpochRecord {
  document: EpochDocumentJson;
  hourRoots: Array<{ hour: number; root: string }>;
  publicKey: string;
  sig: string;
  closedAt: number;
}

/** The bytes an epoch's signature covers: the document and the hourly roots. */
export function epochSigningBytes(document: EpochDocumentJson, hourRoots: ReadonlyArray<{ hour: number; root: string }>): Uint8Array {
  return utf8(canonicalJson({ type: 'idlemesh-issuance-epoch/1', document, hourRoots }));
}

export class IssuanceService {
  private readonly meter = new Map<string, MeterRow>();
  private readonly lastTick = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();
  private spot: { at: number; msatPerEu: Map<string, number> } | undefined;
  readonly probes: ProbeService;

  constructor(private readonly core: Core, readonly hourMs: number, probeIntervalMs = 1_200_000) {
    this.probes = new ProbeService(core, hourMs, probeIntervalMs, (n) => this.operatorOf(n), (n, units, hour) => {
      const row = this.row(n, hour);
      row.cap = Math.max(row.cap, units);
    });
  }

  close(): void {
    this.probes.close();
  }

  /**
   * Who operates a node: the organisation it is enrolled in (`org:<id>`),
   * else the node's own key (`node:<id>`). A membership exists only when an
   * admin of the organisation made the token (or admitted the node) and the
   * node signed the join with its key, so neither can claim the other.
   */
  async operatorOf(nodeId: string): Promise<string> {
    const m = (await this.core.governance.memberships()).get(nodeId);
    return m ? `org:${m.orgId}` : `node:${nodeId}`;
  }

  hourOf(t: number): number {
    return Math.floor(t / this.hourMs);
  }

  /** Tasks leased to a node (busy slots until their results come). */
  leased(nodeId: string, n: number): void {
    this.inFlight.set(nodeId, (this.inFlight.get(nodeId) ?? 0) + n);
  }

  /** Outcomes the store took: task faults and successes count for the node, its own failures against it. */
  outcomes(nodeId: string, results: ReadonlyArray<{ ok: boolean; retryable: boolean }>, now: number): void {
    const row = this.row(nodeId, this.hourOf(now));
    for (const r of results) {
      if (r.ok || !r.retryable) row.accepted++;
      else row.failed++;
    }
    this.inFlight.set(nodeId, Math.max(0, (this.inFlight.get(nodeId) ?? 0) - results.length));
  }

  /** A node lost leases (disconnect, expiry) or was convicted: a node fault each. */
  faults(nodeId: string, n: number, now: number): void {
    if (n <= 0) return;
    this.row(nodeId, this.hourOf(now)).failed += n;
    this.inFlight.set(nodeId, Math.max(0, (this.inFlight.get(nodeId) ?? 0) - n));
  }

  /** Every sweep, on every coordinator: its agents' time since the last tick, then into the store. */
  async tick(now: number): Promise<void> {
    const hour = this.hourOf(now);
    await this.probes.arm(now).catch((err: unknown) => this.core.log.warn({ err }, 'capacity probes could not be armed'));
    const spot = await this.spotPrices(now);
    for (const s of this.core.sessions.values()) {
      const prev = this.lastTick.get(s.nodeId) ?? now;
      this.lastTick.set(s.nodeId, now);
      const dt = Math.min(MAX_TICK_MS, Math.max(0, now - prev));
      const row = this.row(s.nodeId, hour);
      if (s.state !== 'active' || dt === 0) continue;
      const slots = s.capabilities.maxTasks;
      if (atOrBelowSpot(s.capabilities.ask ?? 0, s.capabilities.runtimes, spot)) row.availMs += dt;
      row.slotMs += dt * slots;
      row.busyMs += dt * Math.min(slots, this.inFlight.get(s.nodeId) ?? 0);
    }
    for (const id of this.lastTick.keys()) if (!this.core.sessions.has(id)) this.lastTick.delete(id);
    const rows = [...this.meter.values()];
    this.meter.clear();
    if (rows.length > 0) await this.core.store.meterAdd(rows);
  }

  /** Sweep leader: payments into the meter, then every finished hour closed and its epoch run, in order. */
  async leaderWork(now: number): Promise<void> {
    await this.probes.plan(now);
    await this.meterPayments();
    const current = this.hourOf(now);
    const [cur] = await this.core.store.records('cursor', { ids: ['issuance'], limit: 1 });
    let last = (cur?.doc as { closed?: number } | undefined)?.closed;
    if (last === undefined) {
      // The first hour is the one this coordinator first metered: nothing is issued for time before the network existed.
      const first = (await this.core.store.meterHours(0, current)).at(0)?.hour;
      if (first === undefined) return;
      last = first - 1;
    }
    for (let h = last + 1, n = 0; h < current && n < MAX_CLOSE_PER_SWEEP; h++, n++) {
      await this.closeHour(h, now);
      await this.runEpoch(h, now);
      await this.core.store.commitRecords({ records: [{ kind: 'cursor', id: 'issuance', state: 'ok', doc: { closed: h } }] }, now);
    }
  }

  async hour(h: number): Promise<HourDoc | undefined> {
    const [r] = await this.core.store.records('issuance-hour', { ids: [String(h)], limit: 1 });
    return r?.doc as HourDoc | undefined;
  }

  async epoch(h: number | 'latest'): Promise<EpochRecord | undefined> {
    let id = h;
    if (id === 'latest') {
      const [cur] = await this.core.store.records('cursor', { ids: ['issuance'], limit: 1 });
      const closed = (cur?.doc as { closed?: number } | undefined)?.closed;
      if (closed === undefined) return undefined;
      id = closed;
    }
    const [r] = await this.core.store.records('issuance-epoch', { ids: [String(id)], limit: 1 });
    return r?.doc as EpochRecord | undefined;
  }

  /**
   * Each node's standing as the latest epoch counted it: availability (the
   * share of the epoch's window it was available) and reliability, accepted ÷
   * (accepted + failed + 1) over that window — what `GET /v1/nodes` shows.
   */
  async standing(): Promise<Map<string, { availability: number; reliability: number }>> {
    const e = await this.epoch('latest');
    const out = new Map<string, { availability: number; reliability: number }>();
    if (!e) return out;
    const d = e.document as unknown as { hours: Array<{ rows: Array<{ node: string; availSec: string | number }> }>; reliability: Array<{ node: string; accepted: string | number; failed: string | number }> };
    const windowSec = d.hours.length * Math.ceil(this.hourMs / 1000);
    const avail = new Map<string, number>();
    for (const h of d.hours) for (const r of h.rows) avail.set(r.node, (avail.get(r.node) ?? 0) + Number(r.availSec));
    for (const r of d.reliability) {
      const a = Number(r.accepted);
      const f = Number(r.failed);
      out.set(r.node, { availability: windowSec > 0 ? Math.min(1, (avail.get(r.node) ?? 0) / windowSec) : 0, reliability: a / (a + f + 1) });
    }
    return out;
  }

  /** A node's allocations and scores, newest epoch first. */
  async rewards(nodeId: string, limit = 48): Promise<Array<{ hour: number; allocationMsat: string; score: string }>> {
    const latest = await this.epoch('latest');
    if (!latest) return [];
    const out: Array<{ hour: number; allocationMsat: string; score: string }> = [];
    for (let h = latest.document.epochHour; out.length < limit && h > latest.document.epochHour - limit; h--) {
      const e = h === latest.document.epochHour ? latest : await this.epoch(h);
      if (!e) break;
      const a = e.document.expected?.allocationsMsat[nodeId];
      if (a !== undefined) out.push({ hour: h, allocationMsat: a, score: e.document.expected?.score[nodeId] ?? '0' });
    }
    return out;
  }

  private row(nodeId: string, hour: number): MeterRow {
    const k = `${nodeId}|${hour}`;
    let r = this.meter.get(k);
    if (!r) this.meter.set(k, (r = { nodeId, hour, availMs: 0, slotMs: 0, busyMs: 0, accepted: 0, failed: 0, paidMsat: 0, cap: 0 }));
    return r;
  }

  /** Final payments to operators since the last look, by the hour they became final. */
  private async meterPayments(): Promise<void> {
    const store = this.core.store;
    const [cur] = await store.records('cursor', { ids: ['issuance-payments'], limit: 1 });
    const after = (cur?.doc as { seq?: number } | undefined)?.seq ?? -1;
    const transfers = await store.ledgerTransfers({ afterSeq: after, limit: 10_000 });
    if (transfers.length === 0) return;
    const paid = new Map<string, MeterRow>();
    for (const t of transfers) {
      if (t.code !== 'payment' || (t.type !== 'single' && t.type !== 'post') || !t.creditAccount.startsWith('operator:')) continue;
      const node = t.creditAccount.slice('operator:'.length);
      if (!(await this.countsAsThirdPartyPublic(t.ref, node))) continue;
      const hour = this.hourOf(t.timestamp);
      const k = `${node}|${hour}`;
      const row = paid.get(k) ?? { nodeId: node, hour, availMs: 0, slotMs: 0, busyMs: 0, accepted: 0, failed: 0, paidMsat: 0, cap: 0 };
      row.paidMsat += Number(t.amount);
      paid.set(k, row);
    }
    if (paid.size > 0) await store.meterAdd([...paid.values()]);
    await store.commitRecords({ records: [{ kind: 'cursor', id: 'issuance-payments', state: 'ok', doc: { seq: transfers.at(-1)!.seq } }] }, this.core.now());
  }

  /**
   * Whether a final payment is for work the issuance rewards: a public job
   * (not labelled private), verified (replicated, adaptive, optimistic, or
   * spot-checked at a positive rate — not `trusted`; LLM answers while the
   * sampled honesty checks are on, split stages included with their
   * multiplier), whose buyer is another organisation than the node's
   * operator. An organisation paying its own machines (its private pool, or
   * its own public-pool nodes) earns no issuance for it.
   */
  private async countsAsThirdPartyPublic(jobId: string | undefined, nodeId: string): Promise<boolean> {
    if (jobId === undefined) return false;
    const job = await this.core.jobFacts.get(jobId);
    if (!job || job.caller === PROBE_CALLER || job.caller === CHECK_CALLER || job.label === 'private') return false;
    const v = job.verification;
    // LLM answers are not re-run but checked by sampling (inference-check.ts): verified work when the checks are on.
    const sampled = job.runtime === 'llm' && this.core.opts.inferenceCheckRate > 0;
    if (!sampled && (v === undefined || v.mode === 'trusted' || (v.mode === 'spot-check' && v.rate <= 0))) return false;
    const buyerOrg = job.caller.startsWith('org:') ? job.caller : `buyer:${job.caller}`;
    return buyerOrg !== (await this.operatorOf(nodeId));
  }

  /** Spot price (msat/EU) per runtime over the market window, re-read at most every SPOT_TTL_MS. */
  private async spotPrices(now: number): Promise<Map<string, number>> {
    if (this.spot && now - this.spot.at < Math.min(SPOT_TTL_MS, this.hourMs / 10)) return this.spot.msatPerEu;
    const market = await this.core.money.market(new Map()).catch(() => undefined);
    const msatPerEu = new Map<string, number>();
    for (const r of market?.runtimes ?? []) if (r.spotMsatPerEu !== null) msatPerEu.set(r.runtime, r.spotMsatPerEu);
    this.spot = { at: now, msatPerEu };
    return msatPerEu;
  }

  private async closeHour(h: number, now: number): Promise<void> {
    if (await this.hour(h)) return;
    const meter = await this.core.store.meterHours(h, h);
    const rows: HourRow[] = meter.map((m) => {
      const slotSec = BigInt(Math.floor(m.slotMs / 1000));
      const busySec = BigInt(Math.floor(m.busyMs / 1000));
      return {
        node: m.nodeId, paidMsat: BigInt(m.paidMsat), availSec: BigInt(Math.min(Math.floor(m.availMs / 1000), Math.ceil(this.hourMs / 1000))),
        capMeasured: BigInt(m.cap), busySec: busySec > slotSec ? slotSec : busySec, slotSec,
      };
    });
    // An operator's bond: what is left in the stake accounts of all its nodes (unbonding ones are still slashable, so they count).
    const operators = new Map<string, string>();
    const bonds = new Map<string, bigint>();
    for (const r of rows) {
      const op = await this.operatorOf(r.node);
      operators.set(r.node, op);
      const view = await this.core.money.stakes(r.node);
      const bonded = view.bonds.filter((b) => b.status === 'active' || b.status === 'unbonding').reduce((s, b) => s + BigInt(b.remainingMsat), 0n);
      if (bonded > 0n) bonds.set(op, (bonds.get(op) ?? 0n) + bonded);
    }
    const table: HourTable = { hour: h, bonds, rows };
    const doc: HourDoc = {
      hour: h, root: hourRowsRootHex(table), bonds: Object.fromEntries([...bonds].map(([k, v]) => [k, v.toString()])), operators: Object.fromEntries(operators),
      rows: rows.map(hourRowJson), reliability: meter.map((m) => ({ node: m.nodeId, accepted: m.accepted, failed: m.failed })), frozenAt: now,
      probes: (await this.core.store.records('probe-result', { states: [`h:${h}`], limit: 10_000 })).map((r) => ({ ...(r.doc as object), id: r.id }) as ProbeResultDoc),
    };
    try {
      await this.core.store.commitRecords({ expect: [{ kind: 'issuance-hour', id: String(h), states: ['absent'] }], records: [{ kind: 'issuance-hour', id: String(h), state: 'frozen', doc }] }, now);
    } catch (err) {
      if ((err as { code?: string }).code !== 'IM_CONFLICT') throw err;
    }
    await this.core.audit.record({ type: 'issuance.hour', actor: 'system', subject: String(h), data: { hour: h, root: doc.root, rows: rows.length } });
  }

  private async runEpoch(h: number, now: number): Promise<void> {
    if (await this.epoch(h)) return;
    const hours: HourDoc[] = [];
    for (let x = h - ISSUANCE_PARAMS.windowHours + 1; x <= h; x++) {
      const d = await this.hour(x);
      if (d) hours.push(d);
    }
    const nodes = [...new Set(hours.flatMap((d) => d.rows.map((r) => r.node)))].sort();
    // A node's operator is the one its latest frozen hour names (older tables without the map: the node itself).
    const operatorOf = new Map<string, string>();
    for (const d of hours) for (const r of d.rows) operatorOf.set(r.node, d.operators?.[r.node] ?? r.node);
    const reliability = new Map<string, { accepted: bigint; failed: bigint }>();
    for (const d of hours) {
      for (const r of d.reliability) {
        const x = reliability.get(r.node) ?? { accepted: 0n, failed: 0n };
        x.accepted += BigInt(r.accepted);
        x.failed += BigInt(r.failed);
        reliability.set(r.node, x);
      }
    }
    const windowStartMs = (h - ISSUANCE_PARAMS.windowHours + 1) * this.hourMs;
    const convicted = new Set((await this.core.referee.evidence()).filter((e) => e.at >= windowStartMs && e.at < (h + 1) * this.hourMs).map((e) => e.nodeId));
    // Slashing is per operator: one node's proven fraud zeroes every node of its operator.
    const slashedOps = new Set([...convicted].map((n) => operatorOf.get(n) ?? `node:${n}`));
    const operatorIds = [...new Set(nodes.map((n) => operatorOf.get(n)!))].sort();
    const pool = BigInt((await this.core.money.account(ACCOUNTS.rewardPool, 0)).account.balanceMsat);
    const input = {
      epochHour: h, params: ISSUANCE_PARAMS, poolMsat: pool < 0n ? 0n : pool,
      operators: operatorIds.map((id) => ({ id, slashed: slashedOps.has(id) })),
      nodes: nodes.map((id) => ({ id, operator: operatorOf.get(id)! })),
      hours: hours.map((d): HourTable => ({
        hour: d.hour,
        bonds: new Map(Object.entries(d.bonds).map(([k, v]) => [k, BigInt(v)])),
        rows: d.rows.map((r) => ({ node: r.node, paidMsat: BigInt(r.paidMsat), availSec: BigInt(r.availSec), capMeasured: BigInt(r.capMeasured), busySec: BigInt(r.busySec), slotSec: BigInt(r.slotSec) })),
      })),
      reliability: nodes.map((node) => ({ node, accepted: reliability.get(node)?.accepted ?? 0n, failed: reliability.get(node)?.failed ?? 0n })),
    };
    const result = computeEpoch(input);
    const document = serializeEpochDocument({ input, expected: expectedOf(result) });
    const hourRoots = hours.map((d) => ({ hour: d.hour, root: d.root }));
    const { publicKey, sig } = await this.core.receipts.sign(epochSigningBytes(document, hourRoots));
    const record: EpochRecord = { document, hourRoots, publicKey, sig, closedAt: now };
    const events = [...result.allocations].filter(([, v]) => v > 0n).map(([node, amount]) => ({
      id: `reward:${h}:${node}`, debitAccount: ACCOUNTS.rewardPool, creditAccount: ACCOUNTS.operator(node), amount, code: 'reward' as const, ref: `epoch:${h}`,
    }));
    const accounts = [ACCOUNTS.rewardPool, ...events.map((e) => e.creditAccount)].map(accountInput).filter((a): a is NonNullable<typeof a> => a !== undefined);
    try {
      await this.core.store.commitRecords({
        expect: [{ kind: 'issuance-epoch', id: String(h), states: ['absent'] }],
        records: [{ kind: 'issuance-epoch', id: String(h), state: 'closed', doc: record }],
        ...(events.length > 0 ? { batch: { accounts, events: events.map((e, i) => ({ ...e, linked: i < events.length - 1 })), refs: [] } } : {}),
      }, now);
    } catch (err) {
      if ((err as { code?: string }).code === 'IM_CONFLICT') return; // another leader closed it
      throw err;
    }
    this.core.log.info({ epoch: h, formula: FORMULA, poolMsat: pool.toString(), issuedMsat: result.issuedMsat.toString(), nodes: nodes.length }, 'issuance epoch closed');
    await this.core.audit.record({ type: 'issuance.epoch', actor: 'system', subject: String(h), data: { hour: h, issuedMsat: result.issuedMsat.toString(), poolMsat: pool.toString(), hourRoots: hourRoots.map((x) => x.root).join(',') } });
  }
}

/**
 * Whether a node's ask is at or below the spot price of its runtimes: the
 * lowest spot of any runtime it offers that has one. A node none of whose
 * runtimes has a market yet (no paid execution in the window) has nothing
 * to undercut, and counts.
 */
export function atOrBelowSpot(askMsatPerEu: number, runtimes: readonly string[], spot: ReadonlyMap<string, number>): boolean {
  const prices = runtimes.map((r) => spot.get(r)).filter((p): p is number => p !== undefined);
  return prices.length === 0 || askMsatPerEu <= Math.min(...prices);
}
