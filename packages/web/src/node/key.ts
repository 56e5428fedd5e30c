/**
 * The browser node's identity: an Ed25519 key pair made with WebCrypto and
 * kept in IndexedDB. The private key is non-extractable: the page can sign
 * with it but nothing (no script, no export) can read it out. The node id is
 * the raw public key in hex, as for every agent.
 */
import { toHex } from '@idlemesh/protocol';
import type { NodeKeyPair } from '@idlemesh/protocol';

const DB = 'idlemesh-node';
const STORE = 'keys';
const ID = 'node';

interface Stored {
  privateKey: CryptoKey;
  publicKeyHex: string;
  createdAt: number;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB is unavailable'));
  });
}

function tx<T>(db: IDBDatabase, mode: IDBTransactionMode, run: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = run(t.objectStore(STORE));
    t.oncomplete = () => resolve(req.result as T);
    t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
    t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
  });
}

function asPair(s: Stored): NodeKeyPair {
  // The private key never leaves the browser: there are no PKCS#8 bytes to give.
  return { publicKeyHex: s.publicKeyHex, privateKey: s.privateKey as NodeKeyPair['privateKey'], pkcs8: new Uint8Array(0) };
}

/** Loads this browser's node key, or creates and stores one. */
export async function loadOrCreateNodeKey(): Promise<{ key: NodeKeyPair; created: boolean; createdAt: number }> {
  const db = await open();
  try {
    const found = await tx<Stored | undefined>(db, 'readonly', (s) => s.get(ID));
    if (found?.privateKey && /^[0-9a-f]{64}$/.test(found.publicKeyHex)) return { key: asPair(found), created: false, createdAt: found.createdAt };
    const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const stored: Stored = { privateKey: pair.privateKey, publicKeyHex: toHex(raw), createdAt: Date.now() };
    await tx(db, 'readwrite', (s) => s.put(stored, ID));
    return { key: asPair(stored), created: true, createdAt: stored.createdAt };
  } finally {
    db.close();
  }
}

/** Forgets the key: the next start is a new node (its earnings stay with the old id). */
export async function forgetNodeKey(): Promise<void> {
  const db = await open();
  try {
    await tx(db, 'readwrite', (s) => s.delete(ID));
  } finally {
    db.close();
  }
}
