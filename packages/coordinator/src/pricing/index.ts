/**
 * Pricing: what a buyer pays and how it splits. Pure integer arithmetic:
 * effort is counted in fuel (1 EU = 1e9 fuel; inference converts tokens to
 * the same unit), prices in msat per EU, money in msat (bigint). Charges
 * accumulate exactly per (job, agent) and are floored to the msat once, at
 * `settle`; the escrow hold (`maxJobCost`) is rounded up and covers every
 * charge the job can produce.
 */
import { FUEL_PER_EU } from '@idlemesh/protocol';
import { ledgerError } from '../ledger/errors.js';

export const FUEL_PER_EU_BIG = BigInt(FUEL_PER_EU);
export const BPS = 10_000n;

/** Fees in basis points of the operator's charge (ask × EU). */
export interface FeeSchedule {
  readonly coordinatorFeeBps: number;
  readonly poolFeeBps: number;
}

export const DEFAULT_FEES: FeeSchedule = { coordinatorFeeBps: 500, poolFeeBps: 500 };

export function resolveFees(fees: Partial<FeeSchedule> = {}): FeeSchedule {
  const f = { ...DEFAULT_FEES, ...fees };
  for (const [k, v] of Object.entries(f)) {
    if (!Number.isSafeInteger(v) || v < 0 || v > 10_000) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', `${k} must be an integer number of basis points in 0..10000, got ${v}`);
  }
  return f;
}

function nonNegInt(name: string, x: bigint | number): bigint {
  if (typeof x === 'number') {
    if (!Number.isSafeInteger(x) || x < 0) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${x}`);
    return BigInt(x);
  }
  if (typeof x !== 'bigint' || x < 0n) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${String(x)}`);
  return x;
}

export interface Rational {
  readonly numerator: bigint;
  readonly denominator: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** EU as an exact, reduced fraction of fuel (number EUs are for display only). */
export function fuelToEuRational(fuel: bigint | number): Rational {
  const f = nonNegInt('fuel', fuel);
  const g = f === 0n ? FUEL_PER_EU_BIG : gcd(f, FUEL_PER_EU_BIG);
  return { numerator: f / g, denominator: FUEL_PER_EU_BIG / g };
}

/**
 * Inference effort in fuel: EU = tokens / 1000 × size class (parameters in
 * billions, rounded up, at least 1), so one token of class 1 is 1e6 fuel.
 */
export function inferenceFuel(tokens: bigint | number, modelParamsBillions: number): bigint {
  if (!Number.isFinite(modelParamsBillions) || modelParamsBillions <= 0) throw ledgerError('IM_LEDGER_INVALID_ARGUMENT', 'modelParamsBillions must be positive');
  const sizeClass = BigInt(Math.max(1, Math.ceil(modelParamsBillions)));
  return nonNegInt('tokens', tokens) * sizeClass * (FUEL_PER_EU_BIG / 1000n);
}

/** Exact running charge of one (job, agent). */
export interface Accrual {
  readonly fees: FeeSchedule;
  /** Σ fuel. */
  readonly fuel: bigint;
  /** Σ fuel × ask (fuel·msat/EU): the exact operator charge × 1e9. */
  readonly fuelAsk: bigint;
  readonly executions: number;
}

export function createAccrual(fees: Partial<FeeSchedule> = {}): Accrual {
  return { fees: resolveFees(fees), fuel: 0n, fuelAsk: 0n, executions: 0 };
}

/** Adds one execution's fuel at the agent's ask (msat per EU). Nothing is rounded here. */
export function accrue(acc: Accrual, fuel: bigint | number, ask: bigint | number): Accrual {
  const f = nonNegInt('fuel', fuel);
  const a = nonNegInt('ask', ask);
  return { fees: acc.fees, fuel: acc.fuel + f, fuelAsk: acc.fuelAsk + f * a, executions: acc.executions + 1 };
}

export interface Settlement {
  /** floor(ask × EU × (1 + fees)): what leaves the buyer. */
  readonly buyerPays: bigint;
  /** floor(ask × EU). */
  readonly operator: bigint;
  /** floor(ask × EU × coordinatorFee). */
  readonly coordinatorFee: bigint;
  /** The rest: floor(ask × EU × poolFee) plus at most 2 msat of rounding. */
  readonly pool: bigint;
}

/**
 * Floors the accrued charge to the msat, once. With X = Σ fuel × ask / 1e9
 * (exact): buyerPays = ⌊X·(1+c+p)⌋, operator = ⌊X⌋, coordinatorFee = ⌊X·c⌋,
 * pool = buyerPays − operator − coordinatorFee, so the parts sum exactly.
 */
export function settle(acc: Accrual): Settlement {
  const den = FUEL_PER_EU_BIG * BPS;
  const c = BigInt(acc.fees.coordinatorFeeBps);
  const p = BigInt(acc.fees.poolFeeBps);
  const buyerPays = (acc.fuelAsk * (BPS + c + p)) / den;
  const operator = acc.fuelAsk / FUEL_PER_EU_BIG;
  const coordinatorFee = (acc.fuelAsk * c) / den;
  return { buyerPays, operator, coordinatorFee, pool: buyerPays - operator - coordinatorFee };
}

/** One execution priced on its own (a quote). */
export function price(fuel: bigint | number, ask: bigint | number, fees: Partial<FeeSchedule> = {}): Settlement {
  return settle(accrue(createAccrual(fees), fuel, ask));
}

export interface JobCostInput {
  readonly tasks: bigint | number;
  /** Fuel limit per task (for inference: `inferenceFuel(maxTokens, params)`). */
  readonly fuelLimit: bigint | number;
  /** The job's bid, msat per EU: no agent with a higher ask runs it. */
  readonly bid: bigint | number;
  /** Executions the verification mode may need per task (replicas, referee, spot checks). */
  readonly maxExecutionsPerTask: bigint | number;
  readonly fees?: Partial<FeeSchedule>;
}

/**
 * The escrow hold: ⌈tasks × fuelLimit × bid × executions × (1+c+p) / 1e9⌉.
 * Every (job, agent) charge is a floor of its share of that bound, so their
 * sum never exceeds it.
 */
export function maxJobCost(input: JobCostInput): bigint {
  const fees = resolveFees(input.fees);
  const num = nonNegInt('tasks', input.tasks) * nonNegInt('fuelLimit', input.fuelLimit) * nonNegInt('bid', input.bid)
    * nonNegInt('maxExecutionsPerTask', input.maxExecutionsPerTask)
    * (BPS + BigInt(fees.coordinatorFeeBps) + BigInt(fees.poolFeeBps));
  const den = FUEL_PER_EU_BIG * BPS;
  return (num + den - 1n) / den;
}
