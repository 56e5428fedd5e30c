export type { CreatedInvoice, InvoiceRequest, LightningNode, PaymentStatus, PayRequest, SettledInvoice } from './types.js';
export { LndRest } from './lnd.js';
export type { LndOptions } from './lnd.js';
export { ClnRest } from './cln.js';
export type { ClnOptions } from './cln.js';
