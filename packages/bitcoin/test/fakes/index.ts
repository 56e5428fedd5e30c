// Loopback fakes of the outside world, shaped after each project's published
// API, for this package's tests and the coordinator's.
export { FakeChain } from './chain.js';
export type { FakeOutput, TxLocation } from './chain.js';
export { FakeEsplora } from './esplora.js';
export { FakeBitcoind } from './bitcoind.js';
export { FakeLnd } from './lnd.js';
export type { PayOutcome } from './lnd.js';
export { FakeCln } from './cln.js';
export type { ClnPayOutcome } from './cln.js';
export { FakeHttpServer, randomHex } from './server.js';
export { makeInvoice } from './bolt11.js';
export { MemoryDepositStore } from './store.js';
