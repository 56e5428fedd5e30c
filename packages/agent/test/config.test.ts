import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { ImError } from '@idlemesh/protocol';
import { resolveAgentOptions } from '../src/config.js';

function isConfigError(e: unknown): boolean {
  return e instanceof ImError && e.code === 'IM_CONFIG_INVALID';
}

void test('defaults', () => {
  const o = resolveAgentOptions({}, { env: {} });
  assert.equal(o.coordinator, 'http://127.0.0.1:7070');
  assert.equal(o.dataDir, join(homedir(), '.idlemesh', 'agent'));
  assert.equal(o.keyFile, join(homedir(), '.idlemesh', 'agent', 'node.key'));
  assert.equal(o.maxTasks, availableParallelism());
  assert.equal(o.prefetch, Math.max(128, availableParallelism() * 128));
  assert.equal(o.drainTimeoutMs, 30_000);
  assert.equal(o.onlyWhenCharging, false);
  assert.equal(o.powerSupplyPath, '/sys/class/power_supply');
  assert.equal(o.hours, undefined);
  assert.equal(o.logLevel, 'info');
  assert.ok(o.maxMemoryMb >= 1);
});

void test('layers: defaults < file < env < flags', () => {
  const file = { coordinator: 'http://file:1', maxTasks: 3, name: 'from-file', hours: '1-2', drainTimeoutMs: 5 };
  const env = { IDLEMESH_COORDINATOR: 'http://env:2', IDLEMESH_AGENT_MAX_TASKS: '5', IDLEMESH_AGENT_ONLY_WHEN_CHARGING: 'true', IDLEMESH_AGENT_HOURS: '3-4' };
  const o = resolveAgentOptions({ maxTasks: 7, hours: undefined }, { env, file });
  assert.equal(o.coordinator, 'http://env:2');
  assert.equal(o.maxTasks, 7);
  assert.equal(o.prefetch, 896, 'prefetch follows the resolved maxTasks');
  assert.equal(o.name, 'from-file');
  assert.equal(o.hours, '3-4', 'an undefined flag does not mask lower layers');
  assert.equal(o.onlyWhenCharging, true);
  assert.equal(o.drainTimeoutMs, 5);
  // IDLEMESH_AGENT_COORDINATOR wins over the shared IDLEMESH_COORDINATOR.
  assert.equal(resolveAgentOptions({}, { env: { ...env, IDLEMESH_AGENT_COORDINATOR: 'https://agent:3' } }).coordinator, 'https://agent:3');
  assert.equal(resolveAgentOptions({ coordinator: 'http://flag:4' }, { env }).coordinator, 'http://flag:4');
});

void test('the data dir moves the key file; IDLEMESH_DATA_DIR sets it', () => {
  assert.equal(resolveAgentOptions({}, { env: { IDLEMESH_DATA_DIR: '/tmp/x' } }).keyFile, join('/tmp/x', 'node.key'));
  assert.equal(resolveAgentOptions({ dataDir: '/tmp/y' }, { env: { IDLEMESH_DATA_DIR: '/tmp/x' } }).keyFile, join('/tmp/y', 'node.key'));
  assert.equal(resolveAgentOptions({ dataDir: '/tmp/y', keyFile: '/k' }, { env: {} }).keyFile, '/k');
});

void test('unknown keys, unknown env variables and bad values are IM_CONFIG_INVALID', () => {
  assert.throws(() => resolveAgentOptions({}, { env: {}, file: { maxTask: 3 } }), isConfigError);
  assert.throws(() => resolveAgentOptions({ bogus: 1 } as never, { env: {} }), isConfigError);
  assert.throws(() => resolveAgentOptions({}, { env: { IDLEMESH_AGENT_MAXTASKS: '3' } }), isConfigError);
  assert.throws(() => resolveAgentOptions({}, { env: { IDLEMESH_AGENT_MAX_TASKS: 'many' } }), isConfigError);
  assert.throws(() => resolveAgentOptions({}, { env: { IDLEMESH_AGENT_JSON: 'maybe' } }), isConfigError);
  assert.throws(() => resolveAgentOptions({ maxTasks: 0 }, { env: {} }), isConfigError);
  assert.throws(() => resolveAgentOptions({ coordinator: 'ftp://x' }, { env: {} }), isConfigError);
  assert.throws(() => resolveAgentOptions({ coordinator: 'not a url' }, { env: {} }), isConfigError);
  assert.throws(() => resolveAgentOptions({ onlyWhenIdle: -1 }, { env: {} }), isConfigError);
  assert.throws(() => resolveAgentOptions({}, { env: {}, file: { logLevel: 'loud' } }), isConfigError);
  // Other programs' variables are not ours to judge.
  assert.doesNotThrow(() => resolveAgentOptions({}, { env: { IDLEMESH_PORT: 'x', PATH: '/bin' } }));
});
