/**
 * Bitcoin for idlemesh settlement. `wallet` is the pure side (networks, BIP84
 * watch-only keys, addresses, BOLT11, payout PSBTs); `services` talks to the
 * outside (chain backends, deposit tracking, LND and Core Lightning).
 */
export * from './wallet.js';
export * from './services.js';
