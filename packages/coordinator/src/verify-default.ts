/**
 * The verification a job gets when it names none. `--verify <mode>` sets it
 * for every such job; the default, `auto`, follows where the work may run:
 *
 * - an organisation's `private` work (its label, or its policy's default
 *   label) runs on its own machines: `trusted`;
 * - public work (`public`, `overflow`) on a coordinator with a bonded public
 *   pool (`--public-min-bond-msat` > 0), by an organisation or anyone:
 *   `adaptive` — replicated on distinct operators and prefixes until each
 *   node earns trust;
 * - anything else is a local mesh, your own machines: `trusted`.
 */
import type { Verification } from '@idlemesh/protocol';
import { verificationOf } from './config.js';
import { resolveLabel } from './policy/index.js';
import type { JobLabel, Policy } from './policy/index.js';

export const ADAPTIVE_DEFAULT: Verification = { mode: 'adaptive', minQuorum: 2, targetResults: 2, maxTotalResults: 5, trustStreak: 10 };

export function defaultVerification(flag: string, caller: string, label: JobLabel | undefined,
  governance: { policyOf(orgId: string): Policy }, publicMinBondMsat: bigint): Verification {
  if (flag !== 'auto') return verificationOf(flag);
  const resolved = caller.startsWith('org:') ? resolveLabel(label, governance.policyOf(caller.slice(4))) : (label ?? 'public');
  if (resolved === 'private') return { mode: 'trusted' };
  return publicMinBondMsat > 0n ? ADAPTIVE_DEFAULT : { mode: 'trusted' };
}
