import { Worker } from 'node:worker_threads';
import { ImError } from '@idlemesh/protocol';
import type { InstrumentedModule } from '@idlemesh/runtime';
import type { InstrumentRequest, InstrumentResponse } from './wire.js';

const WORKER_URL = new URL('./instrument-worker.js', import.meta.url);

/**
 * The fuel pass in a worker thread: binaryen works for a while on a large
 * module and, on an internal abort, stays broken until its process restarts.
 * Here it blocks no request, and a broken worker is simply replaced.
 */
export class Instrumenter {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: InstrumentedModule) => void; reject: (e: unknown) => void }>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: { maxMemoryMb: number; maxBytes: number }) {}

  /** Instruments one module at a time (binaryen is single-threaded anyway). */
  instrument(bytes: Uint8Array): Promise<InstrumentedModule> {
    const run = this.chain.then(() => this.send(bytes));
    this.chain = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private send(bytes: Uint8Array): Promise<InstrumentedModule> {
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: InstrumentRequest = { id, bytes: bytes.slice(), maxMemoryMb: this.opts.maxMemoryMb, maxBytes: this.opts.maxBytes };
      worker.postMessage(req, [req.bytes.buffer as ArrayBuffer]);
    });
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_URL);
    w.unref();
    w.on('message', (res: InstrumentResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve({ bytes: res.bytes, abi: res.abi, memory: res.memory });
      else p.reject(ImError.fromWire(res.error));
    });
    const fail = (why: string): void => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new ImError('IM_INTERNAL', `the instrumentation worker ${why}; try the upload again`));
      this.pending.clear();
    };
    w.on('error', (err) => fail(`crashed: ${err.message}`));
    w.on('exit', (code) => fail(`exited with code ${code}`));
    this.worker = w;
    return w;
  }
}
