import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipPrefix } from '../src/identity/prefix.js';

describe('ipPrefix', () => {
  it('groups IPv4 by /24 (also when mapped into IPv6) and IPv6 by /48', () => {
    assert.equal(ipPrefix('203.0.113.77'), '203.0.113.0/24');
    assert.equal(ipPrefix('::ffff:203.0.113.9'), '203.0.113.0/24');
    assert.equal(ipPrefix('2001:db8:abcd:12::1'), '2001:db8:abcd::/48');
    assert.equal(ipPrefix('2001:0db8:abcd:0012:0000:0000:0000:0001'), '2001:db8:abcd::/48');
    assert.equal(ipPrefix('::1'), '0:0:0::/48');
    assert.notEqual(ipPrefix('203.0.113.1'), ipPrefix('203.0.114.1'));
    assert.equal(ipPrefix('not an address'), 'not an address');
  });
});
