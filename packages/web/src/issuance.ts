/**
 * Reads issuance epochs as the coordinator publishes them
 * (GET /v1/issuance/epochs/:hour|latest → `{document, hourRoots, publicKey,
 * sig, hourMs}`, see docs/issuance.md) into what the pages show: per node its
 * allocation, its share of the hour's issue, and the uptime and reliability
 * the epoch counted. `verifyEpoch` checks, in this browser, that what the page
 * shows is what the coordinator signed.
 */
import { ImError, request } from './api.js';
import { canonicalJson, merkleLeafHash, merkleRoot, toHex, utf8, verify } from '@idlemesh/protocol';

/** An hour row as published: decimal strings, exactly the fields its Merkle leaf commits to. */
export interface HourRowJson { node: string; paidMsat: string; availSec: string; capMeasured: string; busySec: string; slotSec: string }

/** The epoch document (the shape of the shared issuance vectors). Only the fields the pages read are typed. */
export interface EpochDocumentJson {
  formula: string;
  epochHour: number;
  poolMsat: string;
  hours: Array<{ hour: number; bonds: Record<string, string>; rows: HourRowJson[] }>;
  reliability: Array<{ node: string; accepted: number | string; failed: number | string }>;
  expected?: { issuedMsat: string; score: Record<string, string>; allocationsMsat: Record<string, string> };
  [more: string]: unknown;
}

/** What `GET /v1/issuance/epochs/:hour` answers. */
export interface EpochRecordJson {
  document: EpochDocumentJson;
  hourRoots: Array<{ hour: number; root: string }>;
  publicKey: string;
  sig: string;
  /** Length of the coordinator's issuance hour (3,600,000 unless shortened for a demo or a test). */
  hourMs: number;
}

export interface NodeShare {
  node: string;
  allocationMsat: bigint;
  score: bigint;
  /** allocation / issued, 0…1 (0 when nothing was issued). */
  share: number;
  /** Seconds the node was available in the window ÷ the window's seconds (the hours that exist), 0…1. */
  uptime: number;
  /** Node-fault outcomes in the window the epoch counted. */
  accepted: bigint;
  failed: bigint;
}

export interface EpochSummary {
  hour: number;
  hourMs: number;
  issuedMsat: bigint;
  poolMsat: bigint;
  formula: string;
  /** Largest allocation first; ties by node id: the leaderboard's order. */
  shares: NodeShare[];
  /** The record as fetched, for verifyEpoch. */
  record: EpochRecordJson;
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const DECIMAL = /^(0|[1-9]\d*)$/;

function bad(what: string): never {
  throw new ImError('IM_PROTOCOL_VERSION', `the epoch is not in the published shape: ${what}`);
}

function decimal(v: unknown, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && DECIMAL.test(v)) return BigInt(v);
  return bad(`${what} is not a whole number`);
}

/** Checks the fields the pages read; the signature (verifyEpoch) covers the rest. */
export function parseEpochRecord(raw: unknown): EpochRecordJson {
  if (!isRec(raw) || !isRec(raw.document)) return bad('no document');
  const d = raw.document;
  if (!Number.isSafeInteger(d.epochHour)) bad('document.epochHour');
  if (typeof d.formula !== 'string') bad('document.formula');
  decimal(d.poolMsat, 'document.poolMsat');
  if (!Array.isArray(d.hours) || !d.hours.every((h) => isRec(h) && Number.isSafeInteger(h.hour) && Array.isArray(h.rows) && h.rows.every(isRec))) bad('document.hours');
  if (!Array.isArray(d.reliability) || !d.reliability.every((r) => isRec(r) && typeof r.node === 'string')) bad('document.reliability');
  if (d.expected !== undefined && !(isRec(d.expected) && isRec(d.expected.allocationsMsat) && isRec(d.expected.score))) bad('document.expected');
  if (!Array.isArray(raw.hourRoots) || !raw.hourRoots.every((h) => isRec(h) && Number.isSafeInteger(h.hour) && typeof h.root === 'string')) bad('hourRoots');
  if (typeof raw.publicKey !== 'string' || typeof raw.sig !== 'string') bad('publicKey and sig');
  if (!(typeof raw.hourMs === 'number' && Number.isSafeInteger(raw.hourMs) && raw.hourMs > 0)) bad('hourMs');
  return raw as unknown as EpochRecordJson;
}

export function summarizeEpoch(raw: unknown): EpochSummary {
  const record = parseEpochRecord(raw);
  const d = record.document;
  const expected = d.expected ?? { issuedMsat: '0', score: {}, allocationsMsat: {} };
  const issued = decimal(expected.issuedMsat, 'expected.issuedMsat');
  // The coordinator clamps a row's availSec to the hour's length in whole seconds.
  const hourSec = Math.ceil(record.hourMs / 1000);
  const windowSec = d.hours.length * hourSec;
  const avail = new Map<string, number>();
  for (const h of d.hours) for (const r of h.rows) avail.set(r.node, (avail.get(r.node) ?? 0) + Number(decimal(r.availSec, 'availSec')));
  const outcomes = new Map(d.reliability.map((r) => [r.node, { accepted: decimal(r.accepted, 'accepted'), failed: decimal(r.failed, 'failed') }]));
  const nodes = new Set([...Object.keys(expected.allocationsMsat), ...Object.keys(expected.score)]);
  const shares: NodeShare[] = [...nodes].map((node) => {
    const allocationMsat = decimal(expected.allocationsMsat[node] ?? '0', `allocation of ${node}`);
    return {
      node, allocationMsat,
      score: decimal(expected.score[node] ?? '0', `score of ${node}`),
      share: issued > 0n ? ratio(allocationMsat, issued) : 0,
      uptime: windowSec > 0 ? Math.min(1, (avail.get(node) ?? 0) / windowSec) : 0,
      accepted: outcomes.get(node)?.accepted ?? 0n,
      failed: outcomes.get(node)?.failed ?? 0n,
    };
  });
  shares.sort((a, b) => (b.allocationMsat > a.allocationMsat ? 1 : b.allocationMsat < a.allocationMsat ? -1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { hour: d.epochHour, hourMs: record.hourMs, issuedMsat: issued, poolMsat: decimal(d.poolMsat, 'poolMsat'), formula: d.formula, shares, record };
}

/** a / b as a float, exact enough for display even past 2^53. */
function ratio(a: bigint, b: bigint): number {
  return Number((a * 1_000_000n) / b) / 1_000_000;
}

/** The latest epoch, or undefined while the coordinator has published none. */
export async function latestEpoch(signal?: AbortSignal): Promise<EpochSummary | undefined> {
  try {
    return summarizeEpoch(await request('GET', '/v1/issuance/epochs/latest', signal ? { signal } : {}));
  } catch (err) {
    if (err instanceof ImError && (err.code === 'IM_NOT_FOUND' || err.code === 'IM_ROUTE_NOT_FOUND')) return undefined;
    throw err;
  }
}

/** The epochs of the rolling window ending at `hour` that exist (oldest first). */
export async function windowEpochs(hour: number, hours = 24, signal?: AbortSignal): Promise<EpochSummary[]> {
  const wanted = Array.from({ length: hours }, (_, i) => hour - hours + 1 + i);
  const got = await Promise.all(wanted.map(async (h) => {
    try {
      return summarizeEpoch(await request('GET', `/v1/issuance/epochs/${h}`, signal ? { signal } : {}));
    } catch {
      return undefined;
    }
  }));
  return got.filter((e): e is EpochSummary => e !== undefined);
}

export type EpochCheck =
  | { ok: true; publicKey: string; hours: number; rows: number }
  | { ok: false; reason: string };

/** What the coordinator signs for an epoch (issuance-service.ts `epochSigningBytes`). */
export function epochSigningBytes(record: Pick<EpochRecordJson, 'document' | 'hourRoots'>): Uint8Array {
  return utf8(canonicalJson({ type: 'idlemesh-issuance-epoch/1', document: record.document, hourRoots: record.hourRoots }));
}

/** RFC 6962 root of an hour's rows, leaves in node-id order (the coordinator's hourRowsRoot). */
export function hourRowsRootHex(rows: readonly HourRowJson[]): string {
  const sorted = [...rows].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  const leaf = (r: HourRowJson): Uint8Array => merkleLeafHash(utf8(canonicalJson({
    availSec: r.availSec, busySec: r.busySec, capMeasured: r.capMeasured, node: r.node, paidMsat: r.paidMsat, slotSec: r.slotSec,
  })));
  return toHex(merkleRoot(sorted.map(leaf)));
}

/**
 * Checks an epoch the page shows, here: every hour's rows hash to the root
 * the epoch lists, the allocations add up to what was issued (no more than
 * the pool), the signature over the document and the roots verifies, and the
 * key is the coordinator's receipt key (`keyHex`, GET /v1/receipts/key).
 * What `idlemesh audit issuance` also does and this does not: recompute the
 * allocations with the formula. Never throws.
 */
export async function verifyEpoch(record: EpochRecordJson, keyHex: string): Promise<EpochCheck> {
  try {
    const d = record.document;
    const listed = record.hourRoots.map((h) => h.hour).join(',');
    if (listed !== d.hours.map((h) => h.hour).join(',')) return { ok: false, reason: `the signed hour roots (${listed}) are not the document's hours` };
    let rows = 0;
    for (const [i, h] of d.hours.entries()) {
      const root = hourRowsRootHex(h.rows);
      if (root !== record.hourRoots[i]?.root) return { ok: false, reason: `hour ${h.hour}: its rows do not hash to the listed root` };
      rows += h.rows.length;
    }
    const e = d.expected;
    if (e === undefined) return { ok: false, reason: 'the epoch has no outputs (expected)' };
    const sum = Object.values(e.allocationsMsat).reduce((s, a) => s + BigInt(a), 0n);
    if (sum !== BigInt(e.issuedMsat)) return { ok: false, reason: `the allocations add up to ${sum} msat, not the ${e.issuedMsat} issued` };
    if (BigInt(e.issuedMsat) > BigInt(d.poolMsat)) return { ok: false, reason: 'more was issued than the pool held' };
    if (!(await verify(record.publicKey, record.sig, epochSigningBytes(record)))) return { ok: false, reason: 'the signature does not verify: the document or its hour roots are not what the coordinator signed' };
    if (record.publicKey !== keyHex) return { ok: false, reason: `signed by ${record.publicKey}, not the coordinator's key ${keyHex}` };
    return { ok: true, publicKey: record.publicKey, hours: d.hours.length, rows };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
