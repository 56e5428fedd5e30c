// The pure wallet side of settlement: networks, BIP84 watch-only keys, addresses, BOLT11 and payout PSBTs.
// No I/O: the chain and Lightning services feed it data and broadcast what it builds.
export { BITCOIN_NETWORKS, coinType, networkParams, parseNetwork } from './network.js';
export type { BitcoinNetwork, BtcNetworkParams } from './network.js';
export { dustLimitSats, outputVbytes, parseAddress, scriptToAddress, scriptType } from './address.js';
export type { AddressType, ParsedAddress } from './address.js';
export { WatchOnlyAccount } from './account.js';
export type { Bip32Derivation, Branch, DerivedAddress, KeyOrigin } from './account.js';
export { descriptorChecksum, withChecksum } from './descriptor.js';
export { decodeInvoice } from './invoice.js';
export type { DecodedInvoice } from './invoice.js';
export { checkSats, MAX_MONEY_SATS } from './amounts.js';
export { feeForVbytes, feeRateSatPerKvb, MAX_FEE_RATE_SAT_VB, payoutTxVbytes, splitFee } from './fees.js';
export { buildPayoutBatch, opReturnScript } from './payout.js';
export type { BatchOutput, PayoutBatch, PayoutBatchOptions, PayoutRequest, Utxo } from './payout.js';
export { verifyPayoutPsbt } from './verify.js';
export type { ApprovedPayout, PayoutPsbtReport, PsbtProblem, VerifyPayoutOptions } from './verify.js';
export { finalizeSignedPsbt, psbtTxid } from './psbt.js';
export type { FinalizedTransaction } from './psbt.js';
