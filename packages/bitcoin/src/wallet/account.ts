import { HDKey } from '@scure/bip32';
import { base58, hex } from '@scure/base';
import { p2wpkh } from '@scure/btc-signer';
import { ImError } from '@idlemesh/protocol';
import { parseAddress } from './address.js';
import { withChecksum } from './descriptor.js';
import { coinType, networkParams } from './network.js';
import type { BitcoinNetwork } from './network.js';

const HARDENED = 0x80000000;
const MAX_INDEX = HARDENED - 1;
// A gap window beyond this is a bug in the caller, and would take seconds of derivations.
const MAX_SCAN = 100_000;

/** Receive (0) or change (1), the BIP44 "change" level under an account. */
export type Branch = 0 | 1;

/** One address of the account and what a PSBT needs to sign for it. */
export interface DerivedAddress {
  address: string;
  script: Uint8Array;
  publicKey: Uint8Array;
  branch: Branch;
  index: number;
  /** `m/84'/0'/0'/0/5` when the key origin is known, else `0/5`, relative to the account key. */
  path: string;
}

/** Where the account key sits under its master key: master fingerprint (8 hex) and path (e.g. `m/84'/0'/0'`). */
export interface KeyOrigin {
  fingerprint: string;
  path: string;
}

/** A PSBT `bip32Derivation` value: master fingerprint and full path, as @scure/btc-signer takes it. */
export interface Bip32Derivation {
  fingerprint: number;
  path: number[];
}

type KeyKind = { kind: 'private' } | { kind: 'public'; mainnet: boolean; bip84: boolean };

// SLIP-132 version bytes. BIP84 single-sig accounts come as xpub/zpub (mainnet) or tpub/vpub (test networks);
// ypub/upub are BIP49 (nested segwit) and the capitalised ones are multisig, which this account cannot watch.
const VERSIONS = new Map<number, KeyKind>([
  [0x0488b21e, { kind: 'public', mainnet: true, bip84: true }], // xpub
  [0x04b24746, { kind: 'public', mainnet: true, bip84: true }], // zpub
  [0x049d7cb2, { kind: 'public', mainnet: true, bip84: false }], // ypub
  [0x0295b43f, { kind: 'public', mainnet: true, bip84: false }], // Ypub
  [0x02aa7ed3, { kind: 'public', mainnet: true, bip84: false }], // Zpub
  [0x043587cf, { kind: 'public', mainnet: false, bip84: true }], // tpub
  [0x045f1cf6, { kind: 'public', mainnet: false, bip84: true }], // vpub
  [0x044a5262, { kind: 'public', mainnet: false, bip84: false }], // upub
  [0x024289ef, { kind: 'public', mainnet: false, bip84: false }], // Upub
  [0x02575483, { kind: 'public', mainnet: false, bip84: false }], // Vpub
  ...[0x0488ade4, 0x04b2430c, 0x049d7878, 0x0295b005, 0x02aa7a99, 0x04358394, 0x045f18bc, 0x044a4e28, 0x024285b5, 0x02575048]
    .map((v): [number, KeyKind] => [v, { kind: 'private' }]), // xprv zprv yprv Yprv Zprv tprv vprv uprv Uprv Vprv
]);
const STANDARD_VERSIONS = {
  mainnet: { public: 0x0488b21e, private: 0x0488ade4 },
  test: { public: 0x043587cf, private: 0x04358394 },
};

function invalidKey(message: string, details?: unknown): ImError {
  return new ImError('IM_BTC_INVALID_KEY', message, details === undefined ? {} : { details });
}

function parseOrigin(fingerprint: string, path: string, network: BitcoinNetwork): { fingerprint: number; path: number[] } {
  const steps = path.split('/').filter((s) => s !== '').map((s) => {
    const m = /^(\d{1,10})(['hH]?)$/.exec(s);
    const n = m === null ? NaN : Number(m[1]);
    if (m === null || n > MAX_INDEX) throw invalidKey(`key origin step "${s}" is not a BIP32 index`);
    return m[2] === '' ? n : n + HARDENED;
  });
  const [purpose, coin, account] = steps;
  if (steps.length !== 3 || purpose === undefined || coin === undefined || account === undefined || steps.some((s) => s < HARDENED)) {
    throw invalidKey(`key origin ${path} is not an account path like /84'/0'/0'`);
  }
  if (purpose !== HARDENED + 84) throw invalidKey(`key origin ${path} is not a BIP84 (native segwit) path; export the 84' account`);
  if (coin !== HARDENED + coinType(network)) {
    throw new ImError('IM_BTC_WRONG_NETWORK', `key origin ${path} has coin type ${coin - HARDENED}', which is not ${network}'s (${coinType(network)}')`, {
      details: { expected: network, path },
    });
  }
  return { fingerprint: parseInt(fingerprint, 16), path: steps };
}

function formatPath(steps: readonly number[]): string {
  return ['m', ...steps.map((s) => (s >= HARDENED ? `${s - HARDENED}'` : String(s)))].join('/');
}

function checkIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index > MAX_INDEX) {
    throw new ImError('IM_VALIDATION', `address index ${index} is not an integer in 0..${MAX_INDEX}`, { details: { index } });
  }
}

/**
 * The treasury's BIP84 account, watch-only: it derives deposit and change addresses and describes
 * PSBT inputs for the real signer, but never holds a private key.
 */
export class WatchOnlyAccount {
  /** The network the key belongs to. */
  readonly network: BitcoinNetwork;
  /** The account key in standard serialization (xpub on mainnet, tpub elsewhere), as descriptors want it. */
  readonly xpub: string;
  /** Master fingerprint and account path, when the key was given as `[fingerprint/84'/0'/0']xpub…`. */
  readonly origin: KeyOrigin | undefined;
  readonly #key: HDKey;
  readonly #originSteps: { fingerprint: number; path: number[] } | undefined;
  readonly #branches: readonly [HDKey, HDKey];
  readonly #cache = new Map<string, DerivedAddress>();
  readonly #byScript = new Map<string, { branch: Branch; index: number }>();
  readonly #scanned: [number, number] = [0, 0];

  private constructor(key: HDKey, network: BitcoinNetwork, origin: { fingerprint: number; path: number[] } | undefined) {
    this.network = network;
    this.#key = key;
    this.xpub = key.publicExtendedKey;
    this.#originSteps = origin;
    this.origin = origin === undefined ? undefined : { fingerprint: origin.fingerprint.toString(16).padStart(8, '0'), path: formatPath(origin.path) };
    this.#branches = [key.deriveChild(0), key.deriveChild(1)];
  }

  /**
   * Reads an account-level BIP84 extended public key: xpub/zpub on mainnet, tpub/vpub on testnet, signet and
   * regtest, optionally prefixed with its origin `[d34db33f/84'/0'/0']` (h works for ') so PSBTs can name the
   * master fingerprint and full path hardware wallets need. Private keys, other networks' keys, non-BIP84
   * keys (ypub, multisig) and keys at another depth than 3 are refused.
   */
  static parse(input: string, network: BitcoinNetwork): WatchOnlyAccount {
    if (typeof input !== 'string') throw invalidKey('the account key must be a string');
    const text = input.trim();
    const m = /^\[([0-9a-fA-F]{8})((?:\/[^/\]]*)*)\](.*)$/.exec(text);
    const encoded = m === null ? text : m[3]!;
    let raw: Uint8Array;
    try {
      raw = base58.decode(encoded);
    } catch {
      throw invalidKey('the account key is not base58; paste the xpub/zpub (or tpub/vpub) exactly as the wallet exports it');
    }
    if (raw.length !== 82) throw invalidKey(`the account key decodes to ${raw.length} bytes, not an extended key's 82`);
    const version = new DataView(raw.buffer, raw.byteOffset).getUint32(0, false);
    const kind = VERSIONS.get(version);
    if (kind?.kind === 'private' || raw[45] === 0) {
      throw invalidKey('this is an extended private key: never give the coordinator a private key; export the account xpub/zpub instead');
    }
    if (kind === undefined) throw invalidKey(`unknown extended key version 0x${version.toString(16).padStart(8, '0')}; expected an xpub/zpub or tpub/vpub`);
    const mainnetKey = kind.mainnet;
    if (mainnetKey !== (network === 'mainnet')) {
      throw new ImError('IM_BTC_WRONG_NETWORK', `this is a ${mainnetKey ? 'mainnet (xpub/zpub)' : 'test network (tpub/vpub)'} key, but this coordinator runs on ${network}`, {
        details: { expected: network },
      });
    }
    if (!kind.bip84) throw invalidKey('this key is for another script type (ypub/upub are nested segwit, capitalised ones multisig); export the BIP84 native segwit account key (zpub/vpub or xpub/tpub)');
    let parsed: HDKey;
    try {
      parsed = HDKey.fromExtendedKey(encoded, { public: version, private: 0 });
    } catch (err) {
      throw invalidKey(`the account key does not decode (${err instanceof Error ? err.message : String(err)}); check it was copied whole`);
    }
    if (parsed.depth !== 3) {
      throw invalidKey(`the key is at depth ${parsed.depth}; export the account-level key (m/84'/${coinType(network)}'/0', depth 3)`, { depth: parsed.depth });
    }
    if (parsed.index < HARDENED) throw invalidKey('the key\'s account index is not hardened, so it is not a BIP84 account key');
    const origin = m === null ? undefined : parseOrigin(m[1]!, m[2]!, network);
    if (origin !== undefined && origin.path[2] !== parsed.index) {
      throw invalidKey(`key origin ${formatPath(origin.path)} does not end in the key's own account index ${parsed.index - HARDENED}'`);
    }
    const standard = new HDKey({
      versions: network === 'mainnet' ? STANDARD_VERSIONS.mainnet : STANDARD_VERSIONS.test,
      depth: parsed.depth,
      index: parsed.index,
      parentFingerprint: parsed.parentFingerprint,
      chainCode: parsed.chainCode!,
      publicKey: parsed.publicKey!,
    });
    return new WatchOnlyAccount(standard, network, origin);
  }

  /** The fingerprint PSBT derivations start from: the master's when the origin is known, else the account key's own. */
  get fingerprint(): string {
    return (this.#originSteps?.fingerprint ?? this.#key.fingerprint).toString(16).padStart(8, '0');
  }

  /** The address at `branch/index` (0 = receive, 1 = change). Derivations are cached. */
  address(branch: Branch, index: number): DerivedAddress {
    if (branch !== 0 && branch !== 1) throw new ImError('IM_VALIDATION', `branch ${String(branch)} is neither 0 (receive) nor 1 (change)`);
    checkIndex(index);
    const id = `${branch}/${index}`;
    let d = this.#cache.get(id);
    if (d === undefined) {
      const publicKey = this.#branches[branch].deriveChild(index).publicKey!;
      const pay = p2wpkh(publicKey, networkParams(this.network));
      const path = this.#originSteps === undefined ? `${branch}/${index}` : `${formatPath(this.#originSteps.path)}/${branch}/${index}`;
      d = { address: pay.address!, script: pay.script, publicKey, branch, index, path };
      this.#cache.set(id, d);
      this.#byScript.set(hex.encode(pay.script), { branch, index });
    }
    return { ...d, script: d.script.slice(), publicKey: d.publicKey.slice() };
  }

  /** The receive (deposit) address at `index`. */
  receive(index: number): DerivedAddress {
    return this.address(0, index);
  }

  /** The change address at `index`. */
  change(index: number): DerivedAddress {
    return this.address(1, index);
  }

  /** The PSBT `bip32Derivation` for `branch/index`: master fingerprint and full path, or the account key as root. */
  derivation(branch: Branch, index: number): Bip32Derivation {
    checkIndex(index);
    if (this.#originSteps === undefined) return { fingerprint: this.#key.fingerprint, path: [branch, index] };
    return { fingerprint: this.#originSteps.fingerprint, path: [...this.#originSteps.path, branch, index] };
  }

  /**
   * Reads a `bip32Derivation` back to `branch/index` if it names this account (right fingerprint, the
   * account path, then a receive/change step and an unhardened index); undefined otherwise.
   */
  fromDerivation(d: Bip32Derivation): { branch: Branch; index: number } | undefined {
    const expected = this.derivation(0, 0);
    const prefix = expected.path.slice(0, -2);
    if (d.fingerprint !== expected.fingerprint || d.path.length !== prefix.length + 2) return undefined;
    if (prefix.some((s, i) => d.path[i] !== s)) return undefined;
    const branch = d.path[prefix.length];
    const index = d.path[prefix.length + 1];
    if ((branch !== 0 && branch !== 1) || index === undefined || index > MAX_INDEX) return undefined;
    return { branch, index };
  }

  /**
   * Finds which of the first `maxIndex` addresses of the given branches an address or output script is
   * (both branches unless told). Undefined if it is none of them.
   */
  locate(addressOrScript: string | Uint8Array, maxIndex: number, branches: readonly Branch[] = [0, 1]): DerivedAddress | undefined {
    if (!Number.isSafeInteger(maxIndex) || maxIndex < 0 || maxIndex > MAX_SCAN) {
      throw new ImError('IM_VALIDATION', `scan window ${maxIndex} is not an integer in 0..${MAX_SCAN}`, { details: { maxIndex } });
    }
    const script = typeof addressOrScript === 'string' ? parseAddress(addressOrScript, this.network).script : addressOrScript;
    const key = hex.encode(script);
    for (const branch of branches) {
      for (let i = this.#scanned[branch]; i < maxIndex; i++) this.address(branch, i);
      this.#scanned[branch] = Math.max(this.#scanned[branch], maxIndex);
    }
    const hit = this.#byScript.get(key);
    if (hit === undefined || hit.index >= maxIndex || !branches.includes(hit.branch)) return undefined;
    return this.address(hit.branch, hit.index);
  }

  /** Whether an address or script is one of the first `maxIndex` receive or change addresses. */
  owns(addressOrScript: string | Uint8Array, maxIndex: number): boolean {
    return this.locate(addressOrScript, maxIndex) !== undefined;
  }

  /** Ranged descriptors (with BIP380 checksums) for the receive and change branches, for bitcoind's importdescriptors. */
  descriptors(): { receive: string; change: string } {
    return { receive: withChecksum(`wpkh(${this.#keyExpression()}/0/*)`), change: withChecksum(`wpkh(${this.#keyExpression()}/1/*)`) };
  }

  /** One BIP389 multipath descriptor `wpkh([fp/84h/0h/0h]xpub…/<0;1>/*)#checksum` covering both branches. */
  descriptor(): string {
    return withChecksum(`wpkh(${this.#keyExpression()}/<0;1>/*)`);
  }

  #keyExpression(): string {
    if (this.#originSteps === undefined) return this.xpub;
    const steps = this.#originSteps.path.map((s) => `${s - HARDENED}h`).join('/');
    return `[${this.fingerprint}/${steps}]${this.xpub}`;
  }
}
