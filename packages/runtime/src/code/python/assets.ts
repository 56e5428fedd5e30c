/**
 * Main-thread side of Python: the metered interpreter (compiled once, shared
 * with every worker) and the memory snapshot that pooled interpreters are
 * restored from. Both are built in worker threads, so the event loop stays
 * free, and cached on disk outside the repository, keyed by what went into
 * them: the first use on a machine pays about ten seconds, later ones none.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromWorker, WorkerRole } from '../messages.js';
import { PYODIDE_METER_VERSION } from './meter.js';
import { SNAPSHOT_RECIPE } from './recipe.js';

export interface PythonAssets {
  module: WebAssembly.Module;
  /** Shared, so that each new worker reads it without a copy per message. */
  snapshot: SharedArrayBuffer;
  indexURL: string;
}

const WORKER_URL = new URL('../worker.js', import.meta.url);
const loads = new Map<string, Promise<PythonAssets>>();

/** One build per cache directory and process; concurrent callers share it. */
export function pythonAssets(cacheDir: string): Promise<PythonAssets> {
  let p = loads.get(cacheDir);
  if (p === undefined) {
    p = build(cacheDir);
    loads.set(cacheDir, p);
    // A failed build may succeed later (disk full, killed worker): do not cache the failure.
    p.catch(() => loads.delete(cacheDir));
  }
  return p;
}

async function build(cacheDir: string): Promise<PythonAssets> {
  const source = fileURLToPath(import.meta.resolve('pyodide/pyodide.asm.wasm'));
  const indexURL = `${dirname(source)}/`;
  const original = await readFile(source);
  const key = createHash('sha256').update(original).update(`idlemesh meter v${PYODIDE_METER_VERSION}`).digest('hex').slice(0, 16);
  await mkdir(cacheDir, { recursive: true });

  const wasmPath = join(cacheDir, `pyodide-${key}.wasm`);
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(await readFile(wasmPath));
  } catch {
    // Missing, or damaged: build it again.
    await rm(wasmPath, { force: true });
    await inWorker({ role: 'instrument', source, target: wasmPath });
    module = await WebAssembly.compile(await readFile(wasmPath));
  }

  const snapKey = createHash('sha256').update(key).update(SNAPSHOT_RECIPE).digest('hex').slice(0, 16);
  const snapPath = join(cacheDir, `pyodide-${key}-${snapKey}.snapshot`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(snapPath);
  } catch {
    const built = await inWorker({ role: 'snapshot', module, indexURL });
    if (built === null) throw new Error('the snapshot worker sent no snapshot');
    bytes = built;
    await writeAtomically(snapPath, bytes).catch(() => { /* a read-only cache only costs the next process a rebuild */ });
  }
  const snapshot = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(snapshot).set(bytes);
  return { module, snapshot, indexURL };
}

async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

function inWorker(role: WorkerRole): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_URL, { workerData: role, env: {}, execArgv: [] });
    let done = false;
    const finish = (err: Error | null, bytes: Uint8Array | null = null): void => {
      if (done) return;
      done = true;
      void w.terminate();
      if (err === null) resolve(bytes);
      else reject(err);
    };
    w.on('message', (msg: FromWorker) => {
      if (msg.t === 'built') finish(null, msg.bytes);
      else if (msg.t === 'fatal') finish(new Error(`building the Python sandbox failed: ${msg.message}`));
    });
    w.on('error', (err) => finish(new Error(`building the Python sandbox failed: ${err.message}`)));
    w.on('exit', (code) => finish(new Error(`the Python build worker exited with code ${code}`)));
  });
}
