/**
 * Off loopback the coordinator serves HTTPS itself (certificate and key in
 * its config): a self-signed certificate made with openssl, a real TLS
 * handshake, and passkeys bound to the https origin.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCoordinatorOptions, startCoordinator } from '../src/index.js';

function get(url: string, ca: Buffer): Promise<{ status: number; body: string; secure: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, servername: 'localhost' }, (res) => {
      const secure = (res.socket as unknown as { encrypted?: boolean } | null)?.encrypted === true;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, secure }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS', () => {
  it('serves the API over TLS with the configured certificate; a bad configuration refuses to start', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'idlemesh-tls-'));
    try {
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
          '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      } catch {
        t.skip('openssl is not installed');
        return;
      }
      const opts = resolveCoordinatorOptions({ port: 0, dataDir: join(dir, 'data'), logLevel: 'silent', tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') }, { env: {} });
      const c = await startCoordinator(opts);
      try {
        assert.match(c.url, /^https:\/\//);
        const { readFileSync } = await import('node:fs');
        const r = await get(`https://localhost:${c.port}/v1/info`, readFileSync(join(dir, 'cert.pem')));
        assert.equal(r.status, 200);
        assert.equal(r.secure, true);
        assert.equal((JSON.parse(r.body) as { name: string }).name, 'idlemesh');
        const options = await new Promise<string>((resolve, reject) => {
          const req = request(`https://localhost:${c.port}/v1/passkeys/login/options`, { method: 'POST', ca: readFileSync(join(dir, 'cert.pem')), headers: { 'content-type': 'application/json' } }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          });
          req.on('error', reject);
          req.end('{}');
        });
        assert.equal((JSON.parse(options) as { rpId: string }).rpId, 'localhost');
      } finally {
        await c.close();
      }
      await assert.rejects(startCoordinator(resolveCoordinatorOptions({ port: 0, dataDir: join(dir, 'd2'), logLevel: 'silent', tlsCert: join(dir, 'cert.pem') }, { env: {} })), /both tlsCert and tlsKey/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
