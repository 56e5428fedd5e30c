/**
 * The published JSON shape of an epoch (the shape of the test vectors):
 * amounts as decimal strings because they pass 2^53, counts as numbers.
 * `parseEpochDocument` is the one boundary where that JSON becomes typed
 * bigints (strict: unknown keys are errors, so a misspelt field is never
 * silently read as zero); `serializeEpochDocument` writes it back so that
 * parse ∘ serialize is the identity on the vectors. The coordinator (to
 * publish) and `idlemesh audit issuance` (to re-check) share both.
 */
import { z } from 'zod';
import { FORMULA, invalid } from './formula.js';
import type { EpochInput, EpochResult, HourRow, HourTable } from './formula.js';

const Decimal = z.string().regex(/^(0|[1-9][0-9]*)$/, 'expected a non-negative integer as a decimal string');
const Count = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), Decimal]);
const Hour = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Id = z.string().min(1);

const RowJson = z.strictObject({ node: Id, paidMsat: Decimal, availSec: Decimal, capMeasured: Decimal, busySec: Decimal, slotSec: Decimal });
const DocumentJson = z.strictObject({
  formula: z.literal(FORMULA),
  why: z.string().optional(),
  epochHour: Hour,
  params: z.strictObject({
    alpha: z.tuple([Count, Count]),
    windowHours: z.number().int().positive(),
    scale: Decimal,
    bondPerCapUnitMsat: Decimal,
  }),
  poolMsat: Decimal,
  operators: z.array(z.strictObject({ id: Id, slashed: z.boolean() })),
  nodes: z.array(z.strictObject({ id: Id, operator: Id })),
  hours: z.array(z.strictObject({ hour: Hour, bonds: z.record(Id, Decimal), rows: z.array(RowJson) })),
  reliability: z.array(z.strictObject({ node: Id, accepted: Count, failed: Count })),
  expected: z.strictObject({
    issuedMsat: Decimal,
    score: z.record(Id, Decimal),
    allocationsMsat: z.record(Id, Decimal),
  }).optional(),
});

export type HourRowJson = z.infer<typeof RowJson>;
export type EpochDocumentJson = z.infer<typeof DocumentJson>;

/** What an epoch produced, as published: the part of a vector under `expected`. */
export interface EpochExpected {
  readonly issuedMsat: bigint;
  readonly scores: ReadonlyMap<string, bigint>;
  readonly allocations: ReadonlyMap<string, bigint>;
}

export interface EpochDocument {
  readonly input: EpochInput;
  /** Why the vector exists (vectors only). */
  readonly why?: string;
  readonly expected?: EpochExpected;
}

/** Parses the published JSON of an epoch; IM_VALIDATION names the offending fields. */
export function parseEpochDocument(json: unknown): EpochDocument {
  const r = DocumentJson.safeParse(json);
  if (!r.success) {
    const lines = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    const more = r.error.issues.length > 5 ? ` (and ${r.error.issues.length - 5} more)` : '';
    throw invalid(`not a ${FORMULA} epoch document: ${lines.join('; ')}${more}`);
  }
  const d = r.data;
  const input: EpochInput = {
    epochHour: d.epochHour,
    params: {
      alpha: [BigInt(d.params.alpha[0]), BigInt(d.params.alpha[1])],
      windowHours: d.params.windowHours,
      scale: BigInt(d.params.scale),
      bondPerCapUnitMsat: BigInt(d.params.bondPerCapUnitMsat),
    },
    poolMsat: BigInt(d.poolMsat),
    operators: d.operators.map((o) => ({ id: o.id, slashed: o.slashed })),
    nodes: d.nodes.map((n) => ({ id: n.id, operator: n.operator })),
    hours: d.hours.map((h): HourTable => ({
      hour: h.hour,
      bonds: new Map(Object.entries(h.bonds).map(([op, v]) => [op, BigInt(v)])),
      rows: h.rows.map((row): HourRow => ({
        node: row.node,
        paidMsat: BigInt(row.paidMsat),
        availSec: BigInt(row.availSec),
        capMeasured: BigInt(row.capMeasured),
        busySec: BigInt(row.busySec),
        slotSec: BigInt(row.slotSec),
      })),
    })),
    reliability: d.reliability.map((x) => ({ node: x.node, accepted: BigInt(x.accepted), failed: BigInt(x.failed) })),
  };
  const e = d.expected;
  const expected: EpochExpected | undefined = e === undefined ? undefined : {
    issuedMsat: BigInt(e.issuedMsat),
    scores: decimalMap(e.score),
    allocations: decimalMap(e.allocationsMsat),
  };
  return { input, ...(d.why === undefined ? {} : { why: d.why }), ...(expected === undefined ? {} : { expected }) };
}

/** The published JSON of an epoch, key order as in the vectors. */
export function serializeEpochDocument(doc: EpochDocument): EpochDocumentJson {
  const x = doc.input;
  const out: EpochDocumentJson = {
    formula: FORMULA,
    ...(doc.why === undefined ? {} : { why: doc.why }),
    epochHour: x.epochHour,
    params: {
      alpha: [count(x.params.alpha[0]), count(x.params.alpha[1])],
      windowHours: x.params.windowHours,
      scale: x.params.scale.toString(),
      bondPerCapUnitMsat: x.params.bondPerCapUnitMsat.toString(),
    },
    poolMsat: x.poolMsat.toString(),
    operators: x.operators.map((o) => ({ id: o.id, slashed: o.slashed })),
    nodes: x.nodes.map((n) => ({ id: n.id, operator: n.operator })),
    hours: x.hours.map((h) => ({
      hour: h.hour,
      bonds: Object.fromEntries([...h.bonds].map(([op, v]) => [op, v.toString()])),
      rows: h.rows.map(hourRowJson),
    })),
    reliability: x.reliability.map((r) => ({ node: r.node, accepted: count(r.accepted), failed: count(r.failed) })),
  };
  if (doc.expected !== undefined) out.expected = serializeExpected(doc.expected);
  return out;
}

/** An hour row as published (also what the hour's Merkle leaf commits to). */
export function hourRowJson(row: HourRow): HourRowJson {
  return {
    node: row.node,
    paidMsat: row.paidMsat.toString(),
    availSec: row.availSec.toString(),
    capMeasured: row.capMeasured.toString(),
    busySec: row.busySec.toString(),
    slotSec: row.slotSec.toString(),
  };
}

export function expectedOf(result: EpochResult): EpochExpected {
  return { issuedMsat: result.issuedMsat, scores: result.scores, allocations: result.allocations };
}

/** The `expected` block of a vector: issuedMsat, score and allocationsMsat per node. */
export function serializeExpected(e: EpochExpected): NonNullable<EpochDocumentJson['expected']> {
  return {
    issuedMsat: e.issuedMsat.toString(),
    score: Object.fromEntries([...e.scores].map(([n, v]) => [n, v.toString()])),
    allocationsMsat: Object.fromEntries([...e.allocations].map(([n, v]) => [n, v.toString()])),
  };
}

function decimalMap(rec: Record<string, string>): Map<string, bigint> {
  return new Map(Object.entries(rec).map(([k, v]) => [k, BigInt(v)]));
}

/** Counts are JSON numbers while they are exact, decimal strings beyond. */
function count(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}
