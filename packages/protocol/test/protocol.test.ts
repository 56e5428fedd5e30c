import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ERRORS, ImError, SubmitJobBody, AgentMessage, canonicalJson, generateNodeKey, importNodeKey, signMessage, verifyMessage,
  newJobId, parseTaskId, sign, verify, toHex, fromHex, taskId, bytesToBase64, base64ToBytes, openApiDocument, PROTOCOL_VERSION,
} from '../src/index.js';
import type { Capabilities } from '../src/index.js';

const CAPS: Capabilities = {
  runtimes: ['wasm'], cores: 1, memoryMb: 1, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1, benchmark: { fuelPerSec: 1 }, agentVersion: 't',
};

describe('error catalogue', () => {
  it('documents every code in docs/errors.md', () => {
    const doc = readFileSync(new URL('../../../../docs/errors.md', import.meta.url), 'utf8');
    for (const [code, e] of Object.entries(ERRORS)) {
      assert.ok(doc.includes(`| \`${code}\` | ${e.status} |`), `${code} missing or out of date in docs/errors.md (run node scripts/gen-errors-doc.mjs)`);
    }
  });
  it('round-trips errors over the wire', () => {
    const e = new ImError('IM_RATE_LIMITED', undefined, { retryAfterMs: 500, details: { n: 1 } });
    const back = ImError.fromWire(JSON.parse(JSON.stringify(e.toWire())) as ReturnType<ImError['toWire']>);
    assert.equal(back.code, 'IM_RATE_LIMITED');
    assert.equal(back.status, 429);
    assert.equal(back.retryAfterMs, 500);
    assert.equal(ImError.fromWire({ code: 'NOT_A_CODE', message: 'x', retryable: false }).code, 'IM_INTERNAL');
  });
});

describe('signing', () => {
  it('signs and verifies; any change to the body, nonce, time or signer breaks it', async () => {
    const key = await generateNodeKey();
    const msg = await signMessage(key, 'auth', { v: PROTOCOL_VERSION, challenge: 'c', capabilities: CAPS }, Date.now());
    await verifyMessage(msg, Date.now(), key.publicKeyHex);
    const bad = async (m: typeof msg, code: string) => assert.rejects(verifyMessage(m, Date.now()), (e: unknown) => e instanceof ImError && e.code === code);
    await bad({ ...msg, body: { ...msg.body, challenge: 'd' } }, 'IM_BAD_SIGNATURE');
    await bad({ ...msg, nonce: '0'.repeat(32) }, 'IM_BAD_SIGNATURE');
    await bad({ ...msg, ts: msg.ts + 1 }, 'IM_BAD_SIGNATURE');
    await bad({ ...msg, nodeId: (await generateNodeKey()).publicKeyHex }, 'IM_BAD_SIGNATURE');
    await bad({ ...msg, sig: 'zz' }, 'IM_BAD_SIGNATURE');
    await assert.rejects(verifyMessage(msg, msg.ts + 3_600_000), (e: unknown) => e instanceof ImError && e.code === 'IM_STALE_TIMESTAMP');
    await assert.rejects(verifyMessage(msg, Date.now(), 'f'.repeat(64)), (e: unknown) => e instanceof ImError && e.code === 'IM_BAD_SIGNATURE');
  });
  it('agrees with WebCrypto both ways (a browser agent signs with WebCrypto)', async () => {
    const key = await generateNodeKey();
    const data = new TextEncoder().encode('interop');
    const webSig = new Uint8Array(await globalThis.crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, data));
    assert.equal(await verify(key.publicKeyHex, toHex(webSig), data), true);
    const ours = await sign(key.privateKey, data);
    const pub = await globalThis.crypto.subtle.importKey('raw', fromHex(key.publicKeyHex), { name: 'Ed25519' }, false, ['verify']);
    assert.equal(await globalThis.crypto.subtle.verify({ name: 'Ed25519' }, pub, fromHex(ours), data), true);
    assert.equal(await verify(key.publicKeyHex, ours, new TextEncoder().encode('other')), false);
    assert.equal(await verify('0'.repeat(64), ours, data), false, 'a bogus key never verifies');
  });
  it('restores a key from its PKCS#8 bytes with the same node id', async () => {
    const key = await generateNodeKey();
    const again = await importNodeKey(key.pkcs8);
    assert.equal(again.publicKeyHex, key.publicKeyHex);
  });
  it('canonical JSON sorts keys and drops undefined', () => {
    assert.equal(canonicalJson({ b: 1, a: [1, { d: undefined, c: 'x' }] }), '{"a":[1,{"c":"x"}],"b":1}');
    assert.throws(() => canonicalJson({ x: NaN }));
  });
});

describe('schemas', () => {
  it('refuse unknown fields and accept defaults', () => {
    const ok = SubmitJobBody.parse({ module: 'a'.repeat(64), inputs: ['aGk='] });
    assert.equal(ok.runtime, 'wasm');
    const r = SubmitJobBody.safeParse({ module: 'a'.repeat(64), inputs: ['aGk='], extra: 1 });
    assert.equal(r.success, false);
    assert.ok(!r.success && r.error.issues.some((i) => i.code === 'unrecognized_keys'));
    assert.equal(AgentMessage.safeParse({ type: 'credit', n: -1 }).success, false);
    assert.equal(AgentMessage.safeParse({ type: 'teleport' }).success, false);
  });
  it('ids and base64 round-trip', () => {
    const id = newJobId(Date.now());
    assert.match(id, /^job_[0-9a-z]{25}$/);
    assert.deepEqual(parseTaskId(taskId(id, 42)), { jobId: id, index: 42 });
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    assert.deepEqual(base64ToBytes(bytesToBase64(bytes)), bytes);
    assert.ok(newJobId(1000) < newJobId(2000), 'job ids sort by time');
  });
  it('generates an OpenAPI 3.1 document with every route', () => {
    const doc = openApiDocument('0') as { openapi: string; paths: Record<string, Record<string, unknown>> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/v1/jobs']?.post);
    assert.ok(doc.paths['/v1/modules']?.post);
  });
});
