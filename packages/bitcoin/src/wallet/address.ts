import { Address, OutScript } from '@scure/btc-signer';
import { hex } from '@scure/base';
import { ImError } from '@idlemesh/protocol';
import { BITCOIN_NETWORKS, networkParams } from './network.js';
import type { BitcoinNetwork } from './network.js';

/** The output types a payout may go to. */
export type AddressType = 'p2pkh' | 'p2sh' | 'p2wpkh' | 'p2wsh' | 'p2tr';

/** A checked address: its canonical (lower-case for bech32) form, type and output script. */
export interface ParsedAddress {
  address: string;
  type: AddressType;
  script: Uint8Array;
}

// Bitcoin Core's dust thresholds at its default 3 sat/vB dust relay fee.
const DUST: Record<AddressType, bigint> = { p2pkh: 546n, p2sh: 540n, p2wpkh: 294n, p2wsh: 330n, p2tr: 330n };
// Serialized output: 8-byte value + 1-byte script length + script.
const OUTPUT_VBYTES: Record<AddressType, number> = { p2pkh: 34, p2sh: 32, p2wpkh: 31, p2wsh: 43, p2tr: 43 };
const SCURE_TYPES: Record<string, AddressType> = { pkh: 'p2pkh', sh: 'p2sh', wpkh: 'p2wpkh', wsh: 'p2wsh', tr: 'p2tr' };

/** The smallest output of this type that Bitcoin Core relays (546 / 540 / 294 / 330 / 330 sats). */
export function dustLimitSats(type: AddressType): bigint {
  return DUST[type];
}

/** Serialized size of an output of this type, in vbytes: 8 + 1 + script length. */
export function outputVbytes(type: AddressType): number {
  return OUTPUT_VBYTES[type];
}

type Decoded = ReturnType<ReturnType<typeof Address>['decode']>;

function tryDecode(address: string, network: BitcoinNetwork): Decoded | undefined {
  try {
    return Address(networkParams(network)).decode(address);
  } catch {
    return undefined;
  }
}

/**
 * Checks a withdrawal address: IM_BTC_WRONG_NETWORK if it is valid on another network (a tb1… address on
 * mainnet, a 1… address on regtest), IM_BTC_INVALID_ADDRESS for anything else that is not a p2pkh, p2sh,
 * p2wpkh, p2wsh or p2tr address (bad checksum, unknown witness version, garbage).
 */
export function parseAddress(address: string, network: BitcoinNetwork): ParsedAddress {
  if (typeof address !== 'string') throw new ImError('IM_BTC_INVALID_ADDRESS', 'the address must be a string');
  const trimmed = address.trim();
  const decoded = tryDecode(trimmed, network);
  if (decoded === undefined) {
    const other = BITCOIN_NETWORKS.find((n) => n !== network && tryDecode(trimmed, n) !== undefined);
    if (other !== undefined) {
      throw new ImError('IM_BTC_WRONG_NETWORK', `${trimmed} is a ${other} address; this coordinator pays out on ${network}`, {
        details: { address: trimmed, expected: network, actual: other },
      });
    }
    throw new ImError('IM_BTC_INVALID_ADDRESS', `${JSON.stringify(trimmed.slice(0, 100))} is not a valid bitcoin address (check for typos)`, {
      details: { address: trimmed.slice(0, 100) },
    });
  }
  const type = SCURE_TYPES[decoded.type];
  if (type === undefined) {
    throw new ImError('IM_BTC_INVALID_ADDRESS', `${trimmed} is a ${decoded.type} output, which payouts do not support`, { details: { address: trimmed } });
  }
  const script = OutScript.encode(decoded);
  return { address: Address(networkParams(network)).encode(decoded), type, script };
}

/** The address type of an output script, or undefined for scripts payouts never produce (OP_RETURN, bare multisig…). */
export function scriptType(script: Uint8Array): AddressType | undefined {
  try {
    return SCURE_TYPES[OutScript.decode(script).type];
  } catch {
    return undefined;
  }
}

/** The address of an output script on a network, or `script:<hex>` when it has none; for reports. */
export function scriptToAddress(script: Uint8Array, network: BitcoinNetwork): string {
  try {
    const decoded = OutScript.decode(script);
    if (SCURE_TYPES[decoded.type] !== undefined) return Address(networkParams(network)).encode(decoded);
  } catch {
    // falls through to the raw form
  }
  return `script:${hex.encode(script)}`;
}
