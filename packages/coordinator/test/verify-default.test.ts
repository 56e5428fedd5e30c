/**
 * The verification a job gets when it names none: --verify wins; `auto`
 * follows where the work may run (private → trusted, public on a bonded
 * public pool → adaptive, a local mesh → trusted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultVerification } from '../src/verify-default.js';
import { maxExecutions, modeParams } from '../src/verifier.js';
import { policyFromObject } from '../src/policy/index.js';
import { ImError } from '@idlemesh/protocol';

const privateByDefault = { policyOf: () => policyFromObject({ version: 1, defaultLabel: 'private' }) };
const publicByDefault = { policyOf: () => policyFromObject({ version: 1, defaultLabel: 'public' }) };

describe('default verification', () => {
  it('auto: private work is trusted, public work on a bonded public pool is adaptive, a local mesh is trusted', () => {
    assert.equal(defaultVerification('auto', 'org:acme', undefined, privateByDefault, 1000n).mode, 'trusted', 'the policy\'s default label');
    assert.equal(defaultVerification('auto', 'org:acme', 'public', privateByDefault, 1000n).mode, 'adaptive');
    assert.equal(defaultVerification('auto', 'org:acme', 'overflow', privateByDefault, 1000n).mode, 'adaptive', 'overflow may run in public');
    assert.equal(defaultVerification('auto', 'org:acme', undefined, publicByDefault, 1000n).mode, 'adaptive');
    assert.equal(defaultVerification('auto', 'anonymous', undefined, publicByDefault, 1000n).mode, 'adaptive', 'no organisation: public work');
    assert.equal(defaultVerification('auto', 'anonymous', undefined, publicByDefault, 0n).mode, 'trusted', 'no bonded public pool: a local mesh');
    assert.equal(defaultVerification('auto', 'org:acme', 'private', publicByDefault, 1000n).mode, 'trusted');
  });

  it('--verify overrides the label', () => {
    assert.equal(defaultVerification('trusted', 'org:acme', 'public', publicByDefault, 1000n).mode, 'trusted');
    assert.deepEqual(defaultVerification('spot-check:0.2', 'org:acme', 'private', privateByDefault, 0n), { mode: 'spot-check', rate: 0.2 });
    assert.equal(defaultVerification('replicate', 'anonymous', undefined, publicByDefault, 0n).mode, 'replicate');
    assert.equal(defaultVerification('adaptive', 'org:acme', 'private', privateByDefault, 0n).mode, 'adaptive');
  });

  it('escrow covers maxTotalResults executions of a replicated task; inconsistent fields are refused', () => {
    assert.equal(maxExecutions({ mode: 'replicate', minQuorum: 2, targetResults: 3, maxTotalResults: 7 }), 7);
    assert.equal(maxExecutions({ mode: 'spot-check', rate: 0.5 }), 1);
    assert.equal(maxExecutions(undefined), 1);
    assert.throws(() => modeParams({ mode: 'replicate', minQuorum: 3, targetResults: 2, maxTotalResults: 5 }, true), (e: unknown) => e instanceof ImError && e.code === 'IM_VALIDATION');
    assert.equal(modeParams({ mode: 'adaptive', minQuorum: 2, targetResults: 2, maxTotalResults: 5, trustStreak: 4 }, false).trustStreak, 4);
  });
});
