/**
 * The treasury as the coordinator sees it: a watch-only account key, a chain
 * backend and a Lightning node, all optional and all from configuration.
 */
import { BitcoindBackend, ClnRest, EsploraBackend, LndRest, WatchOnlyAccount } from '@idlemesh/bitcoin';
import type { ChainBackend, LightningNode } from '@idlemesh/bitcoin';
import { ImError } from '@idlemesh/protocol';
import type { CoordinatorOptions } from '../config.js';

export { Deposits } from './deposits.js';
export { Payouts } from './payouts.js';
export type { Batch, Withdrawal, WithdrawRequest } from './payouts.js';

export interface TreasuryParts {
  account?: WatchOnlyAccount;
  chain?: ChainBackend;
  lightning?: LightningNode;
}

/** Builds what the configuration names; a key for another network or a malformed URL stops the coordinator with a clear error. */
export function treasuryFromOptions(opts: CoordinatorOptions): TreasuryParts {
  const parts: TreasuryParts = {};
  if (opts.treasuryKey !== undefined) parts.account = WatchOnlyAccount.parse(opts.treasuryKey, opts.network);
  if (opts.chain !== undefined) {
    const [kind, ...rest] = opts.chain.split(':');
    const url = new URL(rest.join(':'));
    if (kind === 'esplora') parts.chain = new EsploraBackend({ baseUrl: url.toString().replace(/\/+$/, '') });
    else {
      const wallet = url.searchParams.get('wallet') ?? 'idlemesh';
      const username = decodeURIComponent(url.username);
      const password = decodeURIComponent(url.password);
      url.username = '';
      url.password = '';
      url.search = '';
      parts.chain = new BitcoindBackend({ url: url.toString().replace(/\/+$/, ''), wallet, username, password });
    }
  }
  if (opts.lightning !== undefined) {
    if (opts.lightningAuth === undefined) throw new ImError('IM_CONFIG_INVALID', 'lightning needs lightningAuth (IDLEMESH_LIGHTNING_AUTH): the LND macaroon in hex, or the CLN rune');
    const [kind, ...rest] = opts.lightning.split(':');
    const url = rest.join(':');
    parts.lightning = kind === 'lnd' ? new LndRest({ url, macaroonHex: opts.lightningAuth }) : new ClnRest({ url, rune: opts.lightningAuth });
  }
  return parts;
}
