import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ModuleAbi, sha256Hex } from '@idlemesh/protocol';
import type { Logger } from './log.js';
import type { TaskSandbox } from './sandbox.js';

const FETCH_TIMEOUT_MS = 120_000;

/**
 * Gets instrumented modules into the sandbox: from the sandbox itself, the
 * disk cache (<dataDir>/modules/<hash>.wasm + .abi), or the coordinator.
 * Concurrent requests for one hash share a single fetch.
 */
export class ModuleCache {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    /** The coordinator currently connected to (it changes on failover). */
    private readonly httpBase: () => string,
    private readonly dir: string,
    private readonly sandbox: TaskSandbox,
    private readonly log: Logger,
  ) {}

  ensure(hash: string): Promise<void> {
    if (this.sandbox.hasModule(hash)) return Promise.resolve();
    let p = this.inflight.get(hash);
    if (p === undefined) {
      p = this.load(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    return p;
  }

  private async load(hash: string): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error(`invalid module hash ${hash}`);
    const cached = await this.readDisk(hash);
    if (cached !== undefined) {
      await this.sandbox.addModule(hash, cached.bytes, cached.abi);
      return;
    }
    const { bytes, abi } = await this.fetchModule(hash);
    await this.writeDisk(hash, bytes, abi);
    await this.sandbox.addModule(hash, bytes, abi);
  }

  private async readDisk(hash: string): Promise<{ bytes: Uint8Array; abi: ModuleAbi } | undefined> {
    try {
      const bytes = new Uint8Array(await readFile(join(this.dir, `${hash}.wasm`)));
      const abi = ModuleAbi.safeParse((await readFile(join(this.dir, `${hash}.abi`), 'utf8')).trim());
      if (!abi.success || (await sha256Hex(bytes)) !== hash) {
        this.log.warn(`ignoring corrupt cached module ${hash}`);
        return undefined;
      }
      return { bytes, abi: abi.data };
    } catch {
      return undefined;
    }
  }

  private async writeDisk(hash: string, bytes: Uint8Array, abi: ModuleAbi): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
      // abi first, wasm last and atomically: a .wasm on disk always has its .abi.
      await writeFile(join(this.dir, `${hash}.abi`), abi);
      const tmp = join(this.dir, `${hash}.wasm.${process.pid}.tmp`);
      await writeFile(tmp, bytes);
      await rename(tmp, join(this.dir, `${hash}.wasm`));
    } catch (err) {
      // The cache is an optimisation; a read-only disk must not stop work.
      this.log.warn(`cannot cache module ${hash}: ${(err as Error).message}`);
    }
  }

  private async fetchModule(hash: string): Promise<{ bytes: Uint8Array; abi: ModuleAbi }> {
    const url = `${this.httpBase()}/v1/modules/${hash}/instrumented`;
    const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) {
      const body = await res.text().catch(() => '');
      throw new Error(`GET ${url} answered ${res.status}${body === '' ? '' : `: ${body.slice(0, 300)}`}`);
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    const abi = ModuleAbi.safeParse(res.headers.get('x-idlemesh-abi') ?? '');
    if (!abi.success) throw new Error(`GET ${url}: missing or unknown x-idlemesh-abi header`);
    if ((await sha256Hex(bytes)) !== hash) throw new Error(`GET ${url}: body does not match its sha256`);
    this.log.debug(`fetched module ${hash}`, { bytes: bytes.length, abi: abi.data });
    return { bytes, abi: abi.data };
  }
}
