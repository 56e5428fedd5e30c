import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImError, sign, utf8, verify } from '@idlemesh/protocol';
import { loadOrCreateKey } from '../src/key.js';
import { createLogger } from '../src/log.js';

void test('creates the key with mode 0600 in a new directory and reloads the same node id', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'im-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'nested', 'deeper', 'node.key');
  const a = await loadOrCreateKey(file);
  assert.equal(a.created, true);
  assert.match(a.key.publicKeyHex, /^[0-9a-f]{64}$/);
  if (process.platform !== 'win32') assert.equal((await stat(file)).mode & 0o777, 0o600);
  const b = await loadOrCreateKey(file);
  assert.equal(b.created, false);
  assert.equal(b.key.publicKeyHex, a.key.publicKeyHex);
  // The reloaded private key signs for the same public key.
  const data = utf8('hello');
  assert.equal(await verify(a.key.publicKeyHex, await sign(b.key.privateKey, data), data), true);
});

void test('warns when the key file is readable by others; refuses garbage', { skip: process.platform === 'win32' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'im-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'node.key');
  await loadOrCreateKey(file);
  await chmod(file, 0o644);
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', json: true, write: (l) => lines.push(l) });
  await loadOrCreateKey(file, log);
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /chmod 600/);

  const bad = join(dir, 'bad.key');
  await writeFile(bad, 'not a key', { mode: 0o600 });
  await assert.rejects(loadOrCreateKey(bad), (e: unknown) => e instanceof ImError && e.code === 'IM_CONFIG_INVALID');
});
