/**
 * Worker side: one Pyodide interpreter, restored from the shared memory
 * snapshot, locked down, then used for exactly one task. Fuel is the i64
 * global the metered interpreter decrements (meter.ts); it is set to the
 * task's limit just before the program starts, so everything before that
 * (restore, lockdown) is free and the same in every worker.
 */
import type { PyodideAPI } from 'pyodide';
import { CappedText } from '../output.js';
import { SeededBytes, type GuestClock } from '../determinism.js';
import { result } from '../task.js';
import type { CodeResult, CodeTask } from '../types.js';
import { capFileStorage, disableCodeGeneration, installInstantiateHook, removeBuiltins, type EmscriptenModule, type PythonHost } from './hooks.js';
import { BLOCKED_BUILTINS, lockdownSource } from './prelude.js';
import { PYTHON_ENV, SNAPSHOT_IMPORTS } from './recipe.js';

const MB = 1024 * 1024;
/** Fuel before the task starts: restore and lockdown must never run out. */
const UNMETERED = 1n << 62n;
/** Label of our own code in tracebacks; its frames are dropped from what the program's author sees. */
const OWN_FILENAME = '<idlemesh>';

interface PyCallable {
  (...args: unknown[]): unknown;
  destroy(): void;
}
interface PythonErrorLike extends Error {
  type: string;
}
/**
 * Raw bytes, decoded per stream. Pyodide's batched (line) handlers would be
 * simpler but only hand over a last line without its newline at fsync, and
 * then add one, so output would not be byte-exact.
 */
class Streams {
  readonly out: CappedText;
  readonly err: CappedText;
  private readonly outDecoder = new TextDecoder();
  private readonly errDecoder = new TextDecoder();
  private frozen = false;

  constructor(limit: number) {
    this.out = new CappedText(limit);
    this.err = new CappedText(limit);
  }

  /** After a crash Pyodide dumps the Python stack to stdout; how deep it got is not deterministic. */
  freeze(): void {
    this.frozen = true;
  }

  write(fd: 1 | 2, bytes: Uint8Array): void {
    if (this.frozen) return;
    if (fd === 1) this.out.write(this.outDecoder.decode(bytes, { stream: true }));
    else this.err.write(this.errDecoder.decode(bytes, { stream: true }));
  }

  end(): void {
    this.out.write(this.outDecoder.decode());
    this.err.write(this.errDecoder.decode());
  }
}

function newHost(): PythonHost {
  return {
    fuel: new WebAssembly.Global({ value: 'i64', mutable: true }, UNMETERED),
    random: new SeededBytes(0),
    heapCapBytes: Infinity,
    heapRefused: false,
    fileQuotaBytes: Infinity,
    fileRefused: false,
    exitCode: null,
    instance: null,
  };
}

async function load(indexURL: string, extra: { _loadSnapshot?: Uint8Array; _makeSnapshot?: boolean }): Promise<PyodideAPI> {
  const { loadPyodide } = await import('pyodide');
  return loadPyodide({
    indexURL,
    packages: [],
    jsglobals: {},
    env: { ...PYTHON_ENV },
    _sysExecutable: PYTHON_ENV._,
    stdin: () => null,
    // Pyodide's defaults write to the process's own stdout and stderr.
    stdout: () => {},
    stderr: () => {},
    ...extra,
  });
}

/** A cold start, then the memory image every pooled interpreter is restored from. */
export async function makeSnapshot(module: WebAssembly.Module, indexURL: string): Promise<Uint8Array> {
  installInstantiateHook(module, newHost());
  const py = await load(indexURL, { _makeSnapshot: true });
  py.runPython(SNAPSHOT_IMPORTS);
  return py.makeMemorySnapshot();
}

export interface PythonEngine {
  run(task: CodeTask): CodeResult;
}

export async function startPython(module: WebAssembly.Module, indexURL: string, snapshot: Uint8Array, clock: GuestClock): Promise<PythonEngine> {
  const host = newHost();
  installInstantiateHook(module, host);
  let streams: Streams | null = null;
  const py = await load(indexURL, { _loadSnapshot: snapshot });
  // Pyodide's fatal-error path announces itself on console.error before it dumps anything.
  console.error = (first?: unknown) => {
    if (typeof first === 'string' && first.startsWith('Pyodide has suffered a fatal error')) streams?.freeze();
  };
  py.setStdout({ write: (bytes: Uint8Array) => (streams?.write(1, bytes), bytes.length) });
  py.setStderr({ write: (bytes: Uint8Array) => (streams?.write(2, bytes), bytes.length) });
  const instance = host.instance;
  if (instance === null) throw new Error('Pyodide did not instantiate the metered interpreter');
  const memory = instance.exports.memory as WebAssembly.Memory;
  const PythonError = (py.ffi as unknown as { PythonError: new () => PythonErrorLike }).PythonError;
  const runner = py.runPython(lockdownSource(), { filename: OWN_FILENAME }) as { toJs(o: { depth: number }): PyCallable[]; destroy(): void };
  const [seed, run, flush] = runner.toJs({ depth: 1 }) as [PyCallable, PyCallable, PyCallable];
  runner.destroy();
  const removed = removeBuiltins(instance, BLOCKED_BUILTINS);
  if (!removed.includes('_ctypes')) throw new Error('could not remove _ctypes from the interpreter');
  capFileStorage((py as unknown as { _module: EmscriptenModule })._module, host);
  // Nothing of the public API stays reachable from a leftover proxy of it (mountNodeFS, loadPackage, _module…).
  for (const key of Reflect.ownKeys(py)) Reflect.deleteProperty(py, key);
  disableCodeGeneration();

  return {
    run(task: CodeTask): CodeResult {
      const { fuel: limit, memoryMb, outputBytes } = task.limits;
      const io = new Streams(outputBytes);
      streams = io;
      host.random = new SeededBytes(task.seed ?? 0);
      host.heapCapBytes = memory.buffer.byteLength + memoryMb * MB;
      host.fileQuotaBytes = memoryMb * MB;
      clock.reset();
      let phase: 'program' | 'tests' = 'program';
      let failure: unknown = null;
      host.fuel.value = BigInt(limit);
      try {
        seed(task.seed ?? 0);
        run(task.program, '<program>');
        flush();
        phase = 'tests';
        run(task.tests, '<tests>');
        flush();
      } catch (err) {
        failure = err;
        if ((host.fuel.value as bigint) >= 0n && host.exitCode === null) {
          try {
            flush();
          } catch { /* the interpreter is gone; what was flushed is what there is */ }
        }
      }
      io.end();
      const left = host.fuel.value as bigint;
      const used = left < 0n ? limit : Number(BigInt(limit) - left);
      const out = (): string => io.out.text();
      if (left < 0n) return result('timed-out', limit, out(), io.err.text(), 'IM_FUEL_EXHAUSTED', `The task used all its fuel (${limit}) in the ${phase}.`);
      if (failure === null) return result('passed', used, out(), io.err.text());
      if (host.exitCode !== null) {
        return result('errored', used, out(), io.err.text(), 'IM_EXIT_NONZERO', `The ${phase} ended the interpreter with exit status ${host.exitCode}.`);
      }
      if (host.heapRefused || host.fileRefused) {
        const what = host.heapRefused ? 'heap' : 'file storage';
        return result('errored', used, out(), io.err.text(), 'IM_MEMORY_EXCEEDED', `The ${phase} needed more than the ${memoryMb} MiB of ${what} allowed.`);
      }
      if (failure instanceof PythonError) {
        const traceback = ownFramesDropped(failure.message);
        io.err.write(traceback.endsWith('\n') ? traceback : `${traceback}\n`);
        const summary = exceptionLine(traceback, failure.type);
        if (phase === 'program' && failure.type === 'SystemExit') {
          return result('errored', used, out(), io.err.text(), 'IM_EXIT_NONZERO', `The program raised ${summary}.`);
        }
        return phase === 'program'
          ? result('errored', used, out(), io.err.text(), 'IM_TRAP', `The program raised ${summary}`)
          : result('failed', used, out(), io.err.text(), 'IM_TRAP', `The tests raised ${summary}`);
      }
      // The interpreter itself failed, typically V8's native stack overflowing under deep C recursion.
      // Where that happens depends on the JIT's frame sizes, so the task is charged its whole fuel limit.
      const message = failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure);
      return result('errored', limit, out(), io.err.text(), 'IM_TRAP', `The interpreter crashed in the ${phase}: ${message.slice(0, 500)}`);
    },
  };
}

function ownFramesDropped(traceback: string): string {
  const lines = traceback.split('\n');
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.includes(`File "${OWN_FILENAME}"`)) {
      // A frame line may be followed by its source line, indented further.
      if ((lines[i + 1] ?? '').startsWith('    ')) i++;
      continue;
    }
    kept.push(line);
  }
  return kept.join('\n');
}

/** The `Type: message` line; Pyodide may print notes (install hints) after it. */
function exceptionLine(traceback: string, type: string): string {
  const lines = traceback.trimEnd().split('\n');
  const short = type.split('.').pop() ?? type;
  const line = [...lines].reverse().find((l) => /^[\w.]+(:|$)/.test(l) && (l.split(':')[0] as string).split('.').pop() === short);
  return (line ?? lines[lines.length - 1] ?? '').slice(0, 500);
}
