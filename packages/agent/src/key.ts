import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateNodeKey, importNodeKey, ImError } from '@idlemesh/protocol';
import type { NodeKeyPair } from '@idlemesh/protocol';
import type { Logger } from './log.js';

/**
 * Loads the node key (PKCS#8 DER) or creates one with mode 0600. The node id
 * is the public key in hex, so losing this file means a new identity.
 */
export async function loadOrCreateKey(keyFile: string, log?: Logger): Promise<{ key: NodeKeyPair; created: boolean }> {
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(keyFile);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ImError('IM_CONFIG_INVALID', `cannot read key file ${keyFile}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (bytes !== undefined) {
    if (process.platform !== 'win32') {
      const { mode } = await stat(keyFile);
      if ((mode & 0o077) !== 0) {
        log?.warn(`key file ${keyFile} is readable by other users; run: chmod 600 ${keyFile}`, { mode: (mode & 0o777).toString(8) });
      }
    }
    try {
      return { key: await importNodeKey(new Uint8Array(bytes)), created: false };
    } catch (err) {
      throw new ImError('IM_CONFIG_INVALID', `key file ${keyFile} does not hold a PKCS#8 Ed25519 key`, { cause: err });
    }
  }
  const key = await generateNodeKey();
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  try {
    // 'wx': never overwrite a key another process created meanwhile.
    await writeFile(keyFile, key.pkcs8, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKey(keyFile, log);
    throw err;
  }
  log?.info(`created node key ${keyFile}`, { nodeId: key.publicKeyHex });
  return { key, created: true };
}
