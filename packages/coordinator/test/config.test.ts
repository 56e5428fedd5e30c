import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { resolveCoordinatorOptions } from '../src/config.js';

describe('coordinator options', () => {
  it('layers defaults < config file < environment < flags', () => {
    const d = resolveCoordinatorOptions({}, { env: {} });
    assert.equal(d.port, 7070);
    assert.equal(d.sqliteSynchronous, 'NORMAL');
    const o = resolveCoordinatorOptions({ port: 9000 }, { env: { IDLEMESH_PORT: '8000', IDLEMESH_LEASE_MS: '2000' }, file: { port: 7000, leaseMs: 1000, heartbeatMs: 300 } });
    assert.equal(o.port, 9000, 'flag wins');
    assert.equal(o.leaseMs, 2000, 'env beats file');
    assert.equal(o.heartbeatMs, 300, 'file beats default');
  });
  it('refuses unknown keys and bad values with IM_CONFIG_INVALID', () => {
    const bad = (f: () => unknown): void => assert.throws(f, (e: unknown) => e instanceof ImError && e.code === 'IM_CONFIG_INVALID');
    bad(() => resolveCoordinatorOptions({}, { env: {}, file: { prot: 1 } }));
    bad(() => resolveCoordinatorOptions({}, { env: { IDLEMESH_PORT: 'eighty' } }));
    bad(() => resolveCoordinatorOptions({ leaseMs: 5 }, { env: {} }));
    bad(() => resolveCoordinatorOptions({}, { env: { IDLEMESH_SQLITE_SYNCHRONOUS: 'OFF' } }));
  });
});
