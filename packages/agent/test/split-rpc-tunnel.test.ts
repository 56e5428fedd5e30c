/**
 * The split tunnel on its own (no llama.cpp): who may connect, what the wire
 * carries, and that tampering or truncation never reaches the application.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, it, after } from 'node:test';
import { generateNodeKey, ImError, type NodeKeyPair } from '@idlemesh/protocol';
import { exposeLocalPort, localEndpoint, tcpDialer, tunnelAccept, tunnelConnect, type TunnelEvent } from '../src/split/index.js';
import { FrameReader, frame } from '../src/split/frames.js';

/** One end of an in-memory pipe; `tap` sees (and may alter) what this end sends. */
class PipeEnd extends Duplex {
  other: PipeEnd | undefined;
  constructor(private readonly tap?: (b: Buffer) => Buffer) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.other?.push(this.tap ? this.tap(chunk) : chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.other?.push(null);
    cb();
  }
}

/** Two in-memory duplexes wired to each other, with a tap on the a→b direction. */
function wire(aToB?: (b: Buffer) => Buffer): { a: Duplex; b: Duplex } {
  const a = new PipeEnd(aToB);
  const b = new PipeEnd();
  a.other = b;
  b.other = a;
  return { a, b };
}

/** A TCP pair on loopback: the realistic transport. */
async function tcpPair(): Promise<{ client: Socket; server: Socket; close: () => void }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  const accepted = new Promise<Socket>((r) => srv.once('connection', r));
  const client = connect(port, '127.0.0.1');
  const server = await accepted;
  srv.close();
  return { client, server, close: () => { client.destroy(); server.destroy(); } };
}

function readAll(s: Duplex, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const t = setTimeout(() => reject(new Error('readAll timed out')), timeoutMs);
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('end', () => { clearTimeout(t); resolve(Buffer.concat(parts)); });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

function errorOf(s: Duplex, timeoutMs = 5000): Promise<Error> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no error within the deadline')), timeoutMs);
    s.on('error', (e) => { clearTimeout(t); resolve(e); });
    s.on('data', () => reject(new Error('data reached the application')));
  });
}

let alice: NodeKeyPair, bob: NodeKeyPair, mallory: NodeKeyPair;

describe('split tunnel', () => {
  it('makes keys', async () => {
    [alice, bob, mallory] = await Promise.all([generateNodeKey(), generateNodeKey(), generateNodeKey()]);
  });

  it('carries bytes both ways, encrypted, with an authenticated end', async () => {
    const { client, server, close } = await tcpPair();
    const tapped: Buffer[] = [];
    client.on('data', (d: Buffer) => tapped.push(d));
    const seen: Buffer[] = [];
    const origWrite = client.write.bind(client) as (c: Buffer) => boolean;
    (client as unknown as { write: (c: Buffer) => boolean }).write = (c: Buffer) => { seen.push(Buffer.from(c)); return origWrite(c); };
    const [c, s] = await Promise.all([
      tunnelConnect(client, { identity: alice, expectedPeer: bob.publicKeyHex }),
      tunnelAccept(server, { identity: bob, allow: (id) => id === alice.publicKeyHex }),
    ]);
    assert.equal(c.peerId, bob.publicKeyHex);
    assert.equal(s.peerId, alice.publicKeyHex);
    const secret = Buffer.from('the rpc-server must only ever see this through the tunnel '.repeat(3000)); // > 2 frames
    const gotByS = readAll(s);
    c.end(secret);
    assert.deepEqual(await gotByS, secret);
    const gotByC = readAll(c);
    s.end(Buffer.from('pong'));
    assert.equal((await gotByC).toString(), 'pong');
    // The wire never held the plaintext.
    const onWire = Buffer.concat(seen);
    assert.ok(onWire.length > secret.length, 'ciphertext and framing are on the wire');
    assert.equal(onWire.indexOf(Buffer.from('rpc-server must only')), -1);
    close();
  });

  it('refuses a responder that is not the expected node', async () => {
    const { client, server, close } = await tcpPair();
    const [c, s] = await Promise.allSettled([
      tunnelConnect(client, { identity: alice, expectedPeer: bob.publicKeyHex }),
      tunnelAccept(server, { identity: mallory, allow: () => true }),
    ]);
    assert.equal(c.status, 'rejected');
    assert.equal((c as PromiseRejectedResult).reason.code, 'IM_TUNNEL_AUTH');
    assert.match((c as PromiseRejectedResult).reason.message, /expected/);
    assert.equal(s.status, 'rejected');
    close();
  });

  it('refuses an initiator outside the allow-list, before signing anything', async () => {
    const { client, server, close } = await tcpPair();
    const fromServer: Buffer[] = [];
    client.on('data', (d: Buffer) => fromServer.push(d));
    const [c, s] = await Promise.allSettled([
      tunnelConnect(client, { identity: mallory, expectedPeer: bob.publicKeyHex }),
      tunnelAccept(server, { identity: bob, allow: (id) => id === alice.publicKeyHex }),
    ]);
    assert.equal(s.status, 'rejected');
    assert.ok((s as PromiseRejectedResult).reason instanceof ImError);
    assert.equal((s as PromiseRejectedResult).reason.code, 'IM_TUNNEL_AUTH');
    assert.match((s as PromiseRejectedResult).reason.message, /not a member/);
    assert.equal(c.status, 'rejected');
    assert.equal(Buffer.concat(fromServer).length, 0, 'the responder sent nothing to a stranger');
    close();
  });

  it('refuses a forged identity (claims a member key, cannot sign for it)', async () => {
    // Mallory claims to be alice: her key pair carries alice's public key but her own private key.
    const forged: NodeKeyPair = { ...mallory, publicKeyHex: alice.publicKeyHex };
    const { client, server, close } = await tcpPair();
    const [, s] = await Promise.allSettled([
      // The initiator finishes its side first (message 3 is its last), then sees the stream closed.
      tunnelConnect(client, { identity: forged, expectedPeer: bob.publicKeyHex }).then((c) => c.on('error', () => undefined)),
      tunnelAccept(server, { identity: bob, allow: (id) => id === alice.publicKeyHex }),
    ]);
    assert.equal(s.status, 'rejected');
    assert.equal((s as PromiseRejectedResult).reason.code, 'IM_TUNNEL_AUTH');
    assert.match((s as PromiseRejectedResult).reason.message, /signature/);
    close();
  });

  it('times out a silent peer', async () => {
    const { client, close } = await tcpPair();
    await assert.rejects(tunnelConnect(client, { identity: alice, expectedPeer: bob.publicKeyHex, timeoutMs: 200 }), (e: ImError) => e.code === 'IM_TUNNEL_AUTH' && /within 200 ms/.test(e.message));
    close();
  });

  it('a flipped ciphertext bit closes the stream with IM_TUNNEL_AUTH and delivers nothing', async () => {
    let flip = false;
    const { a, b } = wire((buf) => {
      if (!flip) return buf;
      const x = Buffer.from(buf);
      x[x.length - 20] = (x[x.length - 20] ?? 0) ^ 1;
      return x;
    });
    const [c, s] = await Promise.all([
      tunnelConnect(a, { identity: alice, expectedPeer: bob.publicKeyHex }),
      tunnelAccept(b, { identity: bob, allow: () => true }),
    ]);
    flip = true;
    const err = errorOf(s);
    c.write(Buffer.from('tampered in transit'));
    const e = await err;
    assert.equal((e as ImError).code, 'IM_TUNNEL_AUTH');
  });

  it('a connection cut without the authenticated end is an error, not a clean end', async () => {
    const { client, server } = await tcpPair();
    const [c, s] = await Promise.all([
      tunnelConnect(client, { identity: alice, expectedPeer: bob.publicKeyHex }),
      tunnelAccept(server, { identity: bob, allow: () => true }),
    ]);
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const ended = new Promise<string>((resolve) => {
      s.on('end', () => resolve('end'));
      s.on('error', (e) => resolve((e as ImError).code));
    });
    c.write(Buffer.from('partial'));
    await new Promise((r) => setTimeout(r, 50));
    client.end(); // the raw socket ends, no END frame
    assert.equal(await ended, 'IM_TUNNEL_CLOSED');
    assert.equal(Buffer.concat(got).toString(), 'partial');
    c.destroy();
  });

  it('frames reassemble from any cut and refuse oversized lengths', () => {
    const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('end')];
    const wireBytes = Buffer.concat(payloads.map(frame));
    for (const step of [1, 3, 4096, wireBytes.length]) {
      const r = new FrameReader(100_000);
      const out: Buffer[] = [];
      for (let i = 0; i < wireBytes.length; i += step) out.push(...r.push(wireBytes.subarray(i, i + step)));
      assert.deepEqual(out, payloads);
      assert.equal(r.rest().length, 0);
    }
    assert.throws(() => new FrameReader(10).push(frame(Buffer.alloc(11))), /exceeds/);
  });

  describe('ports', () => {
    let target: Server;
    let received: Buffer[] = [];
    let targetPort = 0;
    after(() => target.close());

    it('exposeLocalPort + localEndpoint carry a TCP conversation; a stranger gets no byte to the target', async () => {
      target = createServer((s) => {
        s.on('data', (d: Buffer) => { received.push(d); s.write(Buffer.concat([Buffer.from('echo:'), d])); });
      });
      await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
      targetPort = (target.address() as AddressInfo).port;
      const events: TunnelEvent[] = [];
      const exposed = exposeLocalPort({ identity: bob, allow: (id) => id === alice.publicKeyHex, targetPort, onEvent: (e) => events.push(e) });
      const { port } = await exposed.listenTcp();
      const ep = await localEndpoint({ identity: alice, peerId: bob.publicKeyHex, dial: tcpDialer('127.0.0.1', port) });
      const sock = connect(ep.port, '127.0.0.1');
      const reply = new Promise<string>((r) => sock.once('data', (d: Buffer) => r(d.toString())));
      sock.write('hello');
      assert.equal(await reply, 'echo:hello');
      sock.destroy();

      // Mallory's endpoint: the handshake fails, her connection is closed, the target saw nothing more.
      received = [];
      const bad = await localEndpoint({ identity: mallory, peerId: bob.publicKeyHex, dial: tcpDialer('127.0.0.1', port) });
      const s2 = connect(bad.port, '127.0.0.1');
      s2.on('error', () => undefined);
      s2.write('should never arrive');
      await new Promise<void>((r) => s2.on('close', () => r()));
      // And a raw client speaking the RPC protocol straight at the tunnel port.
      const raw = connect(port, '127.0.0.1');
      raw.on('error', () => undefined);
      raw.write(Buffer.from([14, 24, 0, 0, 0, 0, 0, 0, 0, ...new Array<number>(24).fill(0)]));
      await new Promise<void>((r) => raw.on('close', () => r()));
      assert.equal(received.length, 0, 'no byte reached the target');
      assert.ok(events.some((e) => e.type === 'rejected'), 'the stage reported the rejected handshake');
      await Promise.all([ep.close(), bad.close(), exposed.close()]);
    });
  });
});
