export type { ChainBackend, ChainTx, ChainTxOutput, ChainUtxo, TxStatus } from './types.js';
export { confirmations } from './types.js';
export { EsploraBackend, ESPLORA_CHAIN_PAGE } from './esplora.js';
export type { EsploraOptions } from './esplora.js';
export { BitcoindBackend } from './bitcoind.js';
export type { BitcoindOptions, ImportDescriptorOptions } from './bitcoind.js';
