/**
 * A Lightning node as settlement uses it. Amounts are msat as bigint;
 * hashes and preimages are lowercase hex.
 *
 * Payments: 'failed' only when the node itself says the payment finally
 * failed. A connection error or timeout while paying is 'unknown' (or
 * 'in-flight' when the node said so before going quiet); the caller
 * reconciles with paymentStatus() later and never retries blindly.
 */
export interface InvoiceRequest {
  amountMsat: bigint;
  memo: string;
  expirySec: number;
  /** Unique per invoice; makes creation idempotent where the node supports labels (CLN). */
  label: string;
}

export interface CreatedInvoice {
  paymentHash: string;
  bolt11: string;
  /** ms since the epoch. */
  expiresAt: number;
}

export interface SettledInvoice {
  paymentHash: string;
  /** What was actually received. */
  amountMsat: bigint;
  /** LND settle_index / CLN pay_index, as a decimal string. */
  settleIndex: string;
}

export interface PaymentStatus {
  state: 'succeeded' | 'failed' | 'in-flight' | 'unknown';
  paymentHash: string;
  feeMsat?: bigint;
  preimage?: string;
  failureReason?: string;
}

export interface PayRequest {
  bolt11: string;
  maxFeeMsat: bigint;
  timeoutSec: number;
}

export interface LightningNode {
  readonly kind: 'lnd' | 'cln';
  createInvoice(q: InvoiceRequest): Promise<CreatedInvoice>;
  /**
   * Invoices settled after `cursor` ('0' = from the start), waiting up to
   * `waitMs` for the first one. Each settle is returned once per cursor:
   * store the returned cursor with the credits, then ask again from it.
   * IM_LN_UNAVAILABLE when the node cannot be reached and nothing was read.
   */
  settledSince(cursor: string, waitMs: number): Promise<{ settled: SettledInvoice[]; cursor: string }>;
  pay(q: PayRequest): Promise<PaymentStatus>;
  paymentStatus(paymentHash: string): Promise<PaymentStatus>;
}
