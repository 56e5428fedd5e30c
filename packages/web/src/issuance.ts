/**
 * Reads issuance epochs (GET /v1/issuance/epochs/:hour|latest, see
 * docs/issuance.md) into what the pages show: per node, its allocation and
 * its share of the hour's issue. Tolerant of the spellings a publisher may
 * use (a map or a list of rows), since the page must keep working as the
 * epoch document grows.
 */
import { ImError, request } from './api.js';

export interface NodeShare {
  node: string;
  allocationMsat: bigint;
  score: bigint | undefined;
  /** allocation / issued (or score / Σ scores when nothing was issued), 0…1. */
  share: number;
}

export interface EpochSummary {
  hour: number;
  issuedMsat: bigint;
  poolMsat: bigint | undefined;
  formula: string | undefined;
  /** Largest share first; ties by node id, as the leaderboard shows them. */
  shares: NodeShare[];
}

type Rec = Record<string, unknown>;
const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

function big(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return undefined;
}

/** node → amount, from `{node: amount}` or `[{node, msat|allocationMsat|score|value}]`. */
function perNode(v: unknown, fields: string[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (Array.isArray(v)) {
    for (const row of v) {
      if (!isRec(row)) continue;
      const node = typeof row.node === 'string' ? row.node : typeof row.nodeId === 'string' ? row.nodeId : undefined;
      const amount = fields.map((f) => big(row[f])).find((x) => x !== undefined);
      if (node !== undefined && amount !== undefined) out.set(node, amount);
    }
  } else if (isRec(v)) {
    for (const [node, amount] of Object.entries(v)) {
      const a = big(amount) ?? (isRec(amount) ? fields.map((f) => big(amount[f])).find((x) => x !== undefined) : undefined);
      if (a !== undefined) out.set(node, a);
    }
  }
  return out;
}

export function summarizeEpoch(raw: unknown): EpochSummary {
  if (!isRec(raw)) throw new ImError('IM_PROTOCOL_VERSION', 'the epoch is not a JSON object');
  const doc = isRec(raw.epoch) ? raw.epoch : raw;
  const result = isRec(doc.result) ? doc.result : isRec(doc.expected) ? doc.expected : doc;
  const hour = Number(doc.epochHour ?? doc.hour ?? result.epochHour);
  if (!Number.isInteger(hour)) throw new ImError('IM_PROTOCOL_VERSION', 'the epoch names no hour (epochHour)');
  const allocations = perNode(result.allocationsMsat ?? result.allocations ?? doc.allocations, ['allocationMsat', 'msat', 'amountMsat', 'value']);
  const scores = perNode(result.score ?? result.scores ?? doc.scores, ['score', 'value']);
  const issued = big(result.issuedMsat ?? doc.issuedMsat ?? result.issued) ?? [...allocations.values()].reduce((a, b) => a + b, 0n);
  const scoreSum = [...scores.values()].reduce((a, b) => a + b, 0n);
  const nodes = new Set([...allocations.keys(), ...scores.keys()]);
  const shares: NodeShare[] = [...nodes].map((node) => {
    const allocationMsat = allocations.get(node) ?? 0n;
    const score = scores.get(node);
    const share = issued > 0n ? ratio(allocationMsat, issued) : score !== undefined && scoreSum > 0n ? ratio(score, scoreSum) : 0;
    return { node, allocationMsat, score, share };
  });
  shares.sort((a, b) => (b.allocationMsat > a.allocationMsat ? 1 : b.allocationMsat < a.allocationMsat ? -1 : b.share - a.share || (a.node < b.node ? -1 : 1)));
  const formula = typeof doc.formula === 'string' ? doc.formula : typeof result.formula === 'string' ? result.formula : undefined;
  return { hour, issuedMsat: issued, poolMsat: big(doc.poolMsat ?? result.poolMsat), formula, shares };
}

/** a / b as a float, exact enough for display even past 2^53. */
function ratio(a: bigint, b: bigint): number {
  return Number((a * 1_000_000n) / b) / 1_000_000;
}

/** The latest epoch, or undefined while the coordinator publishes none (the route or the epoch is missing). */
export async function latestEpoch(signal?: AbortSignal): Promise<EpochSummary | undefined> {
  try {
    return summarizeEpoch(await request('GET', '/v1/issuance/epochs/latest', signal ? { signal } : {}));
  } catch (err) {
    if (err instanceof ImError && (err.status === 404 || err.code === 'IM_ROUTE_NOT_FOUND' || err.code === 'IM_NOT_FOUND')) return undefined;
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
