import { ImError } from '@idlemesh/protocol';

/** The bitcoin networks idlemesh settles on. Signet shares testnet's address formats and keys. */
export type BitcoinNetwork = 'mainnet' | 'testnet' | 'signet' | 'regtest';

/** Every network, in the order the address and key checks try them. */
export const BITCOIN_NETWORKS: readonly BitcoinNetwork[] = ['mainnet', 'testnet', 'signet', 'regtest'];

/** Address parameters in the shape @scure/btc-signer takes (its `BTC_NETWORK`). */
export interface BtcNetworkParams {
  readonly bech32: string;
  readonly pubKeyHash: number;
  readonly scriptHash: number;
  readonly wif: number;
}

const MAINNET: BtcNetworkParams = { bech32: 'bc', pubKeyHash: 0x00, scriptHash: 0x05, wif: 0x80 };
const TESTNET: BtcNetworkParams = { bech32: 'tb', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };
const REGTEST: BtcNetworkParams = { bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef };

/** Reads a network name from configuration; Bitcoin Core's chain names `main` and `test` are accepted too. */
export function parseNetwork(s: string): BitcoinNetwork {
  switch (s.trim().toLowerCase()) {
    case 'mainnet': case 'main': return 'mainnet';
    case 'testnet': case 'test': return 'testnet';
    case 'signet': return 'signet';
    case 'regtest': return 'regtest';
    default:
      throw new ImError('IM_VALIDATION', `unknown bitcoin network "${s}"; use mainnet, testnet, signet or regtest`, { details: { network: s } });
  }
}

/** Address parameters (bech32 hrp bc / tb / tb / bcrt) for @scure/btc-signer. */
export function networkParams(network: BitcoinNetwork): BtcNetworkParams {
  switch (network) {
    case 'mainnet': return MAINNET;
    case 'testnet': case 'signet': return TESTNET;
    case 'regtest': return REGTEST;
  }
}

/** BIP44 coin type: 0 on mainnet, 1 on every test network. */
export function coinType(network: BitcoinNetwork): 0 | 1 {
  return network === 'mainnet' ? 0 : 1;
}

/** Throws IM_BTC_WRONG_NETWORK unless an object built for `actual` is used on `expected`. */
export function assertNetwork(expected: BitcoinNetwork, actual: BitcoinNetwork, what: string): void {
  if (expected !== actual) {
    throw new ImError('IM_BTC_WRONG_NETWORK', `${what} is for ${actual}, but this coordinator runs on ${expected}`, { details: { expected, actual } });
  }
}
