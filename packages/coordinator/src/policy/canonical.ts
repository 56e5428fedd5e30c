/**
 * The canonical form of a policy: every default written out, lists sorted
 * and deduplicated, amounts as decimal strings. Two documents that mean the
 * same policy (key order, explicit defaults, YAML or JSON) have the same
 * canonical form and so the same hash — the hash names a policy revision in
 * approvals, audit entries and `policy check` output.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { stringify as stringifyYaml } from 'yaml';
import { canonicalJson, toHex, utf8 } from '@idlemesh/protocol';
import type { Policy, PolicyDocument } from './schema.js';

export function canonicalPolicyDocument(policy: Policy): PolicyDocument {
  const { overflow: o, eligibility: e } = policy;
  return {
    version: 1,
    defaultLabel: policy.defaultLabel,
    overflow: {
      waitMs: o.waitMs,
      approval: o.approval,
      ...(o.batchSize === null ? {} : { batchSize: o.batchSize }),
      approvalTimeoutMs: o.approvalTimeoutMs,
      onTimeout: o.onTimeout,
    },
    eligibility: {
      ...(e.operators === null ? {} : { operators: [...e.operators] }),
      ...(e.regions === null ? {} : { regions: [...e.regions] }),
      minReliability: e.minReliability,
      minBondMsat: e.minBondMsat.toString(),
      ...(e.runtimes === null ? {} : { runtimes: [...e.runtimes] }),
    },
    neverCross: [...policy.neverCross],
  };
}

/** The canonical document as YAML or JSON text; `parsePolicy` reads it back to an equal policy. */
export function formatPolicy(policy: Policy, format: 'yaml' | 'json' = 'yaml'): string {
  const doc = canonicalPolicyDocument(policy);
  return format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : stringifyYaml(doc);
}

/** Hex SHA-256 of the canonical JSON of the canonical document. */
export function policyHash(policy: Policy): string {
  return toHex(sha256(utf8(canonicalJson(canonicalPolicyDocument(policy)))));
}
