import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ImError } from '@idlemesh/protocol';
import {
  POLICY_DEFAULTS,
  canonicalPolicyDocument,
  formatPolicy,
  parsePolicy,
  policyFromObject,
  policyHash,
  resolveLabel,
} from '../src/policy/index.js';
import type { Policy, PolicyIssue } from '../src/policy/index.js';

const EXAMPLE_YAML = `
version: 1
defaultLabel: overflow
overflow:
  waitMs: 120000
  approval: per-batch
  batchSize: 50
  approvalTimeoutMs: 900000
  onTimeout: deny
eligibility:
  operators: [op-b, op-a, op-a]
  regions: [eu-west, eu-central]
  minReliability: 0.95
  minBondMsat: "250000000"
  runtimes: [wasm]
neverCross: [PII, customer-source]
`;

/** Asserts IM_VALIDATION whose details name `path`, and returns the issues. */
function rejects(input: unknown, path: string, text?: 'yaml' | 'json'): PolicyIssue[] {
  let issues: PolicyIssue[] = [];
  assert.throws(
    () => (typeof input === 'string' && text !== undefined ? parsePolicy(input, text) : policyFromObject(input)),
    (e: unknown) => {
      assert.ok(e instanceof ImError, `expected ImError, got ${String(e)}`);
      assert.equal(e.code, 'IM_VALIDATION');
      issues = (e.details as { issues: PolicyIssue[] }).issues;
      assert.ok(issues.some((i) => i.path === path), `no issue at ${path}: ${JSON.stringify(issues)}`);
      assert.match(e.message, new RegExp(`${path === '' ? '\\(document\\)' : path.replace(/[[\]]/g, '\\$&')}: `));
      return true;
    },
  );
  return issues;
}

describe('policy document', () => {
  it('parses YAML and applies the defaults', () => {
    const p = parsePolicy(EXAMPLE_YAML);
    assert.equal(p.defaultLabel, 'overflow');
    assert.deepEqual(p.overflow, { waitMs: 120000, approval: 'per-batch', batchSize: 50, approvalTimeoutMs: 900000, onTimeout: 'deny' });
    assert.deepEqual(p.eligibility.operators, ['op-a', 'op-b'], 'sorted, deduplicated');
    assert.deepEqual(p.eligibility.regions, ['eu-central', 'eu-west']);
    assert.equal(p.eligibility.minReliability, 0.95);
    assert.equal(p.eligibility.minBondMsat, 250_000_000n);
    assert.deepEqual(p.neverCross, ['customer-source', 'pii'], 'data classes normalised to lower case');
  });

  it('reads the example in docs/policy.md', () => {
    const md = readFileSync(new URL('../../../../docs/policy.md', import.meta.url), 'utf8');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(md)?.[1];
    assert.ok(yaml, 'docs/policy.md has a yaml example');
    const p = parsePolicy(yaml);
    assert.equal(p.overflow.batchSize, 50);
    assert.deepEqual(p.neverCross, ['customer-source', 'pii']);
  });

  it('fills every default for a minimal document', () => {
    const p = policyFromObject({ version: 1 });
    assert.equal(p.defaultLabel, 'private');
    assert.equal(p.overflow.waitMs, POLICY_DEFAULTS.overflow.waitMs);
    assert.equal(p.overflow.approval, 'none');
    assert.equal(p.overflow.batchSize, null, 'batchSize only with per-batch');
    assert.equal(p.overflow.approvalTimeoutMs, 3_600_000);
    assert.equal(p.overflow.onTimeout, 'deny', 'deny by default');
    assert.deepEqual(p.eligibility, { operators: null, regions: null, minReliability: 0, minBondMsat: 0n, runtimes: null });
    assert.deepEqual(p.neverCross, []);
    assert.equal(policyFromObject({ version: 1, overflow: { approval: 'per-batch' } }).overflow.batchSize, 100);
    assert.equal(resolveLabel(undefined, p), 'private');
    assert.equal(resolveLabel('public', p), 'public');
  });

  it('round-trips through YAML and JSON to an equal policy with the same hash', () => {
    const p = parsePolicy(EXAMPLE_YAML);
    const fromYaml = parsePolicy(formatPolicy(p, 'yaml'));
    const fromJson = parsePolicy(formatPolicy(p, 'json'), 'json');
    assert.deepEqual(fromYaml, p);
    assert.deepEqual(fromJson, p);
    assert.equal(policyHash(fromJson), policyHash(p));
    assert.match(policyHash(p), /^[0-9a-f]{64}$/);
    // JSON text through the YAML parser (JSON is YAML) gives the same policy.
    assert.deepEqual(parsePolicy(JSON.stringify(canonicalPolicyDocument(p))), p);
  });

  it('hashes meaning, not spelling: key order, explicit defaults and list order do not change it', () => {
    const a = policyFromObject({ version: 1, neverCross: ['pii', 'secrets'] });
    const b = policyFromObject({ neverCross: ['Secrets', 'PII', 'pii'], overflow: { onTimeout: 'deny', waitMs: 60_000 }, eligibility: { minBondMsat: '0' }, version: 1, defaultLabel: 'private' });
    assert.equal(policyHash(a), policyHash(b));
    assert.notEqual(policyHash(a), policyHash(policyFromObject({ version: 1, neverCross: ['pii', 'secrets'], overflow: { waitMs: 60_001 } })));
    assert.notEqual(policyHash(a), policyHash(policyFromObject({ version: 1, neverCross: ['pii'] })));
    // An empty allow-list (nobody) is not the same policy as no allow-list (anybody).
    assert.notEqual(policyHash(a), policyHash(policyFromObject({ version: 1, neverCross: ['pii', 'secrets'], eligibility: { operators: [] } })));
  });

  it('round-trips random policies', () => {
    const doc = fc.record(
      {
        version: fc.constant(1 as const),
        defaultLabel: fc.constantFrom('private', 'overflow', 'public'),
        overflow: fc.record({ waitMs: fc.nat(10_000_000), approval: fc.constantFrom('none', 'per-job'), approvalTimeoutMs: fc.integer({ min: 1, max: 10_000_000 }), onTimeout: fc.constantFrom('deny', 'approve') }, { requiredKeys: [] }),
        eligibility: fc.record(
          {
            operators: fc.array(fc.string({ minLength: 1, maxLength: 8 })),
            regions: fc.array(fc.constantFrom('eu', 'us', 'ap')),
            minReliability: fc.double({ min: 0, max: 1, noNaN: true }),
            minBondMsat: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }).map(String),
            runtimes: fc.array(fc.constantFrom('wasm', 'wasi', 'docker')),
          },
          { requiredKeys: [] },
        ),
        neverCross: fc.array(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,10}$/)),
      },
      { requiredKeys: ['version'] },
    );
    fc.assert(
      fc.property(doc, (d) => {
        const p = policyFromObject(d);
        for (const format of ['yaml', 'json'] as const) {
          const back = parsePolicy(formatPolicy(p, format), format);
          assert.deepEqual(back, p);
          assert.equal(policyHash(back), policyHash(p));
        }
      }),
      { numRuns: 200 },
    );
  });

  describe('refuses malformed documents with IM_VALIDATION naming the path', () => {
    const base = { version: 1 };
    it('unknown keys, at the top and nested', () => {
      const top = rejects({ ...base, overflw: {} }, 'overflw');
      assert.match(top[0]?.message ?? '', /unknown key.*overflow/);
      rejects({ ...base, eligibility: { minReliabilty: 0.9 } }, 'eligibility.minReliabilty');
      rejects({ ...base, overflow: { waitMs: 1, timeout: 5 } }, 'overflow.timeout');
    });
    it('wrong types', () => {
      const [i] = rejects({ ...base, overflow: { waitMs: '60s' } }, 'overflow.waitMs');
      assert.equal(i?.message, 'expected a number, got a string');
      rejects({ ...base, overflow: { waitMs: 1.5 } }, 'overflow.waitMs');
      rejects({ ...base, eligibility: { operators: 'op-a' } }, 'eligibility.operators');
      rejects({ ...base, eligibility: { regions: ['eu', 7] } }, 'eligibility.regions[1]');
      rejects({ ...base, neverCross: 'pii' }, 'neverCross');
      rejects({ ...base, overflow: 'fast' }, 'overflow');
      rejects([base], '');
      rejects('version: 1\noverflow:\n  waitMs: soon\n', 'overflow.waitMs', 'yaml');
    });
    it('out-of-range numbers', () => {
      rejects({ ...base, overflow: { waitMs: -1 } }, 'overflow.waitMs');
      rejects({ ...base, overflow: { approvalTimeoutMs: 0 } }, 'overflow.approvalTimeoutMs');
      rejects({ ...base, eligibility: { minReliability: 1.01 } }, 'eligibility.minReliability');
      rejects({ ...base, eligibility: { minReliability: -0.1 } }, 'eligibility.minReliability');
      rejects({ ...base, overflow: { approval: 'per-batch', batchSize: 0 } }, 'overflow.batchSize');
    });
    it('bad minBondMsat', () => {
      for (const bad of ['1.5', '-1', 'lots', '', '9223372036854775808', 1.5, -3, true, null]) rejects({ ...base, eligibility: { minBondMsat: bad } }, 'eligibility.minBondMsat');
      assert.equal(policyFromObject({ ...base, eligibility: { minBondMsat: 1000 } }).eligibility.minBondMsat, 1000n, 'a safe whole number is accepted');
      assert.equal(policyFromObject({ ...base, eligibility: { minBondMsat: '9223372036854775807' } }).eligibility.minBondMsat, 2n ** 63n - 1n);
    });
    it('unknown labels, modes and versions', () => {
      rejects({ ...base, defaultLabel: 'secret' }, 'defaultLabel');
      rejects({ ...base, overflow: { approval: 'always' } }, 'overflow.approval');
      rejects({ ...base, overflow: { onTimeout: 'retry' } }, 'overflow.onTimeout');
      rejects({ version: 2 }, 'version');
      const [missing] = rejects({ defaultLabel: 'private' }, 'version');
      assert.match(missing?.message ?? '', /^required/);
    });
    it('inconsistent fields and bad names', () => {
      rejects({ ...base, overflow: { approval: 'per-job', batchSize: 10 } }, 'overflow.batchSize');
      rejects({ ...base, neverCross: ['has space'] }, 'neverCross[0]');
      rejects({ ...base, eligibility: { operators: [''] } }, 'eligibility.operators[0]');
    });
    it('text that is not YAML or JSON, duplicate keys, several documents', () => {
      rejects('version: 1\noverflow: [', '', 'yaml');
      rejects('{"version": 1,}', '', 'json');
      const [dup] = rejects('version: 1\nversion: 1\n', '', 'yaml');
      assert.match(dup?.message ?? '', /line 2/);
      rejects('version: 1\n---\nversion: 1\n', '', 'yaml');
      rejects('', '', 'yaml');
    });
    it('reports every problem at once and applies nothing', () => {
      const input = { version: 1, defaultLabel: 'overflow', overflow: { waitMs: -5, approval: 'per-job' }, eligibility: { minReliability: 2, minBondMsat: 'x' }, extra: true };
      const before = structuredClone(input);
      const issues = rejects(input, 'overflow.waitMs');
      assert.deepEqual(issues.map((i) => i.path).sort(), ['eligibility.minBondMsat', 'eligibility.minReliability', 'extra', 'overflow.waitMs']);
      assert.deepEqual(input, before, 'input untouched');
      // A valid document's input is not filled in with defaults either.
      const ok = { version: 1 };
      const p: Policy = policyFromObject(ok);
      assert.deepEqual(ok, { version: 1 });
      assert.equal(p.overflow.waitMs, 60_000);
    });
  });
});
