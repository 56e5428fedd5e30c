/**
 * The split tunnel: an authenticated, encrypted byte stream between two
 * agents, named by their ed25519 node keys.
 *
 * llama.cpp's RPC server has no authentication and executes whatever graph
 * it is sent, so it listens on loopback only and is reached solely through
 * this tunnel. The tunnel runs over any duplex byte stream (a TCP socket
 * between agents that can reach each other; a WebSocket relayed through the
 * coordinator when they cannot), so the transport is the caller's choice.
 *
 * Handshake (3 messages, each a length-prefixed frame):
 *   1. initiator → responder: version, initiator node key, initiator X25519 ephemeral
 *   2. responder → initiator: responder node key, responder ephemeral, signature
 *   3. initiator → responder: signature
 * Each side signs ("idlemesh split tunnel v1" ‖ role ‖ transcript) where the
 * transcript binds both node keys and both ephemerals, so a signature cannot
 * be replayed in another session or reflected into the other role. The
 * initiator knows which node it meant to reach; the responder accepts only
 * its allow-list (the group's members) and rejects strangers at message 1,
 * before signing anything. Keys: HKDF-SHA256 over the X25519 secret, salted
 * with the transcript hash, one key per direction.
 *
 * Frames after the handshake: u32 length ‖ ChaCha20-Poly1305(type ‖ payload),
 * the nonce a per-direction counter (never reused: 2^64 frames), the length
 * the AAD. Type 0 is data, 1 is the end of the stream: an attacker can cut
 * the connection but not truncate it into a clean end. Any frame that fails
 * to authenticate destroys the stream with IM_TUNNEL_AUTH; nothing after a
 * failed frame reaches the application.
 */
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { Duplex } from 'node:stream';
import { ImError, sign, verify, type NodeKeyPair } from '@idlemesh/protocol';
import { FrameReader, frame } from './frames.js';

const CONTEXT = 'idlemesh split tunnel v1';
const VERSION = 1;
/** Largest plaintext per frame: big enough for RPC tensor uploads to stream efficiently, small enough to bound buffering. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
const TAG = 16;
const TYPE_DATA = 0;
const TYPE_END = 1;

export interface TunnelConnectOptions {
  identity: NodeKeyPair;
  /** The node id (hex ed25519 public key) the initiator means to reach; anyone else fails the handshake. */
  expectedPeer: string;
  /** Handshake deadline; default 10 s. */
  timeoutMs?: number;
}

export interface TunnelAcceptOptions {
  identity: NodeKeyPair;
  /** Which initiators may connect: the group's members. */
  allow: (peerId: string) => boolean;
  timeoutMs?: number;
}

/** One authenticated stream; `peerId` is the other side's node id, proven by the handshake. */
export interface SecureStream extends Duplex {
  readonly peerId: string;
}

function x25519Pair(): { priv: KeyObject; pub: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const jwk = publicKey.export({ format: 'jwk' });
  return { priv: privateKey, pub: Buffer.from(jwk.x ?? '', 'base64url') };
}

function x25519Shared(priv: KeyObject, peerPub: Buffer): Buffer {
  const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerPub.toString('base64url') }, format: 'jwk' });
  const secret = diffieHellman({ privateKey: priv, publicKey: pub });
  // An all-zero secret means a low-order point: the peer contributed nothing secret.
  if (secret.every((b) => b === 0)) throw new ImError('IM_TUNNEL_AUTH', 'tunnel handshake: degenerate X25519 key from the peer');
  return secret;
}

/** What each side signs: the context, its role, and the whole transcript. */
function signedBytes(role: 'initiator' | 'responder', transcript: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${CONTEXT}\0${role}\0`), transcript]);
}

function transcriptOf(iStatic: string, rStatic: string, iEph: Buffer, rEph: Buffer): Buffer {
  return Buffer.concat([Buffer.from(CONTEXT), Buffer.from(iStatic, 'hex'), Buffer.from(rStatic, 'hex'), iEph, rEph]);
}

function sessionKeys(secret: Buffer, transcript: Buffer): { i2r: Buffer; r2i: Buffer } {
  const salt = createHash('sha256').update(transcript).digest();
  const derive = (info: string): Buffer => Buffer.from(hkdfSync('sha256', secret, salt, `${CONTEXT} ${info}`, 32));
  return { i2r: derive('initiator->responder'), r2i: derive('responder->initiator') };
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;

function parseJson(buf: Buffer): Record<string, unknown> {
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new ImError('IM_TUNNEL_AUTH', 'tunnel handshake: malformed message');
}

function field(msg: Record<string, unknown>, name: string, pattern: RegExp): string {
  const v = msg[name];
  if (typeof v !== 'string' || !pattern.test(v)) throw new ImError('IM_TUNNEL_AUTH', `tunnel handshake: bad or missing ${name}`);
  return v;
}

/**
 * Reads handshake frames from a raw stream. Frames are cut only when a
 * message is awaited, so the encrypted bytes that may follow the last
 * handshake message in the same chunk are handed on untouched by detach().
 */
class HandshakeIo {
  /** Handshake messages are small JSON; anything longer is not this protocol. */
  private readonly reader = new FrameReader(4096);
  private waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly onData = (d: Buffer): void => {
    this.reader.append(d);
    this.drain();
  };
  private readonly onEnd = (): void => this.fail(new ImError('IM_TUNNEL_AUTH', 'tunnel handshake: the peer closed the connection'));
  private readonly onError = (err: Error): void => this.fail(new ImError('IM_TUNNEL_CLOSED', `tunnel handshake: ${err.message}`, { cause: err }));

  constructor(private readonly raw: Duplex) {
    raw.on('data', this.onData);
    raw.on('end', this.onEnd);
    raw.on('close', this.onEnd);
    raw.on('error', this.onError);
  }

  send(msg: object): void {
    this.raw.write(frame(Buffer.from(JSON.stringify(msg))));
  }

  next(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.drain();
    });
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.drain();
  }

  private drain(): void {
    const w = this.waiting;
    if (!w) return;
    let f: Buffer | undefined;
    try {
      f = this.reader.take();
    } catch (err) {
      this.failure ??= new ImError('IM_TUNNEL_AUTH', `tunnel handshake: ${(err as Error).message}`);
    }
    if (f) {
      this.waiting = undefined;
      w.resolve(f);
    } else if (this.failure) {
      this.waiting = undefined;
      w.reject(this.failure);
    }
  }

  /** Stops listening; returns the bytes read past the handshake. */
  detach(): Buffer {
    this.raw.off('data', this.onData);
    this.raw.off('end', this.onEnd);
    this.raw.off('close', this.onEnd);
    this.raw.off('error', this.onError);
    return this.reader.rest();
  }
}

async function withDeadline<T>(raw: Duplex, io: HandshakeIo, timeoutMs: number, body: () => Promise<T>): Promise<T> {
  const timer = setTimeout(() => io.fail(new ImError('IM_TUNNEL_AUTH', `tunnel handshake: no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    return await body();
  } catch (err) {
    raw.destroy();
    throw err instanceof ImError ? err : new ImError('IM_TUNNEL_AUTH', `tunnel handshake: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a tunnel over `raw` to the node `expectedPeer`. Rejects with IM_TUNNEL_AUTH (and destroys `raw`) if it is anyone else. */
export async function tunnelConnect(raw: Duplex, opts: TunnelConnectOptions): Promise<SecureStream> {
  const io = new HandshakeIo(raw);
  return withDeadline(raw, io, opts.timeoutMs ?? 10_000, async () => {
    const eph = x25519Pair();
    io.send({ v: VERSION, node: opts.identity.publicKeyHex, eph: eph.pub.toString('hex') });
    const m2 = parseJson(await io.next());
    const rNode = field(m2, 'node', HEX64);
    const rEph = Buffer.from(field(m2, 'eph', HEX64), 'hex');
    const rSig = field(m2, 'sig', HEX128);
    if (rNode !== opts.expectedPeer) throw new ImError('IM_TUNNEL_AUTH', `tunnel handshake: reached node ${rNode.slice(0, 12)}…, expected ${opts.expectedPeer.slice(0, 12)}…`);
    const transcript = transcriptOf(opts.identity.publicKeyHex, rNode, eph.pub, rEph);
    if (!(await verify(rNode, rSig, signedBytes('responder', transcript)))) throw new ImError('IM_TUNNEL_AUTH', 'tunnel handshake: the responder signature does not verify');
    const secret = x25519Shared(eph.priv, rEph);
    io.send({ sig: await sign(opts.identity.privateKey, signedBytes('initiator', transcript)) });
    const keys = sessionKeys(secret, transcript);
    return new CipherStream(raw, io.detach(), keys.i2r, keys.r2i, rNode);
  });
}

/** Accepts a tunnel over `raw` from an allowed node. Rejects with IM_TUNNEL_AUTH (and destroys `raw`) otherwise. */
export async function tunnelAccept(raw: Duplex, opts: TunnelAcceptOptions): Promise<SecureStream> {
  const io = new HandshakeIo(raw);
  return withDeadline(raw, io, opts.timeoutMs ?? 10_000, async () => {
    const m1 = parseJson(await io.next());
    if (m1.v !== VERSION) throw new ImError('IM_TUNNEL_AUTH', `tunnel handshake: unsupported version ${String(m1.v)}`);
    const iNode = field(m1, 'node', HEX64);
    const iEph = Buffer.from(field(m1, 'eph', HEX64), 'hex');
    if (!opts.allow(iNode)) throw new ImError('IM_TUNNEL_AUTH', `tunnel handshake: node ${iNode.slice(0, 12)}… is not a member of this group`);
    const eph = x25519Pair();
    const transcript = transcriptOf(iNode, opts.identity.publicKeyHex, iEph, eph.pub);
    const secret = x25519Shared(eph.priv, iEph);
    io.send({ node: opts.identity.publicKeyHex, eph: eph.pub.toString('hex'), sig: await sign(opts.identity.privateKey, signedBytes('responder', transcript)) });
    const m3 = parseJson(await io.next());
    if (!(await verify(iNode, field(m3, 'sig', HEX128), signedBytes('initiator', transcript)))) throw new ImError('IM_TUNNEL_AUTH', 'tunnel handshake: the initiator signature does not verify');
    const keys = sessionKeys(secret, transcript);
    return new CipherStream(raw, io.detach(), keys.r2i, keys.i2r, iNode);
  });
}

function nonce(counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(counter, 4);
  return n;
}

/** The encrypted stream over `raw`, after the handshake. */
class CipherStream extends Duplex implements SecureStream {
  private sendCounter = 0n;
  private recvCounter = 0n;
  private readonly reader = new FrameReader(MAX_FRAME_PAYLOAD + 1 + TAG);
  /** The peer's authenticated end of stream arrived. */
  private ended = false;
  /** Ours was sent. */
  private finalSent = false;

  constructor(
    private readonly raw: Duplex,
    pending: Buffer,
    private readonly sendKey: Buffer,
    private readonly recvKey: Buffer,
    readonly peerId: string,
  ) {
    super({ allowHalfOpen: true });
    raw.on('data', (d: Buffer) => this.receive(d));
    raw.on('end', () => {
      if (!this.ended) this.destroy(new ImError('IM_TUNNEL_CLOSED', 'the tunnel connection ended without an authenticated end of stream'));
    });
    raw.on('close', () => {
      if (!this.ended) this.destroy(new ImError('IM_TUNNEL_CLOSED', 'the tunnel connection closed'));
    });
    raw.on('error', (err) => this.destroy(new ImError('IM_TUNNEL_CLOSED', `tunnel connection: ${err.message}`, { cause: err })));
    raw.on('drain', () => this.flushWaiter());
    if (pending.length > 0) this.receive(pending);
  }

  private writeWaiter: (() => void) | undefined;
  private flushWaiter(): void {
    const w = this.writeWaiter;
    this.writeWaiter = undefined;
    w?.();
  }

  private seal(type: number, payload: Buffer): Buffer {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(1 + payload.length + TAG);
    const c = createCipheriv('chacha20-poly1305', this.sendKey, nonce(this.sendCounter++), { authTagLength: TAG });
    c.setAAD(len, { plaintextLength: 1 + payload.length });
    return Buffer.concat([len, c.update(Buffer.from([type])), c.update(payload), c.final(), c.getAuthTag()]);
  }

  private receive(d: Buffer): void {
    if (this.destroyed) return;
    let frames: Buffer[];
    try {
      frames = this.reader.push(d);
    } catch (err) {
      this.authFailure((err as Error).message);
      return;
    }
    for (const f of frames) {
      if (this.ended) return this.authFailure('data after the end of stream');
      if (f.length < 1 + TAG) return this.authFailure('short frame');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(f.length);
      const dc = createDecipheriv('chacha20-poly1305', this.recvKey, nonce(this.recvCounter++), { authTagLength: TAG });
      dc.setAAD(len, { plaintextLength: f.length - TAG });
      dc.setAuthTag(f.subarray(f.length - TAG));
      let plain: Buffer;
      try {
        plain = Buffer.concat([dc.update(f.subarray(0, f.length - TAG)), dc.final()]);
      } catch {
        return this.authFailure('a frame did not authenticate');
      }
      if (plain[0] === TYPE_DATA) this.push(plain.subarray(1));
      else if (plain[0] === TYPE_END) {
        this.ended = true;
        this.push(null);
        // Both directions done: the raw connection has nothing more to carry.
        if (this.finalSent) this.raw.end();
      } else return this.authFailure(`unknown frame type ${plain[0]}`);
    }
  }

  private authFailure(why: string): void {
    this.raw.destroy();
    this.destroy(new ImError('IM_TUNNEL_AUTH', `tunnel: ${why}; stream closed`));
  }

  override _read(): void {
    // Frames are pushed as they arrive; back-pressure goes to the raw stream's own buffer.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let ok = true;
    for (let off = 0; off < chunk.length; off += MAX_FRAME_PAYLOAD) ok = this.raw.write(this.seal(TYPE_DATA, chunk.subarray(off, off + MAX_FRAME_PAYLOAD)));
    if (ok) cb();
    else this.writeWaiter = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.raw.write(this.seal(TYPE_END, Buffer.alloc(0)));
    this.finalSent = true;
    if (this.ended) this.raw.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.flushWaiter();
    this.raw.destroy();
    cb(err);
  }
}
