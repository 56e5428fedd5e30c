/**
 * The outside world: chain backends (Esplora, bitcoind), deposit tracking
 * (pure reconcile + the watcher that drives it), LND and Core Lightning.
 */
export * from './chain/index.js';
export * from './deposits/index.js';
export * from './lightning/index.js';
