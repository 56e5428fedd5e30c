/**
 * Worker side: what the host changes in Pyodide so that a program sees only
 * its task. Pyodide's JS glue instantiates pyodide.asm.wasm itself, so the
 * worker intercepts that one WebAssembly.instantiate call: the metered module
 * is used instead of the file's bytes, the fuel global is added to the
 * imports, and the imports that reach the host (clock aside: see
 * determinism.ts) are replaced: randomness, heap growth, exit, sockets,
 * dynamic loading and system().
 */
import { FUEL_IMPORT, RESERVED_MODULE } from '../../abi.js';
import type { SeededBytes } from '../determinism.js';

/** emscripten's errno numbering (not Linux's). */
const EACCES = 2;
const ENOSPC = 51;
const ENOSYS = 52;

/** Per-worker state the wrapped imports read and write; the engine resets it per task. */
export interface PythonHost {
  fuel: WebAssembly.Global;
  random: SeededBytes;
  /** Largest heap, in bytes, that growth may reach. */
  heapCapBytes: number;
  heapRefused: boolean;
  /** Bytes of file contents the program may still add to the in-memory file system. */
  fileQuotaBytes: number;
  fileRefused: boolean;
  exitCode: number | null;
  instance: WebAssembly.Instance | null;
}

type Imports = Record<string, Record<string, unknown>>;
type Fn = (...args: number[]) => number;

export function installInstantiateHook(module: WebAssembly.Module, host: PythonHost): void {
  const instantiate = WebAssembly.instantiate.bind(WebAssembly) as (m: WebAssembly.Module, i?: Imports) => Promise<WebAssembly.Instance>;
  const original = WebAssembly.instantiate;
  const hooked = async (source: unknown, imports?: Imports): Promise<unknown> => {
    // Only the interpreter links against the dynamic-linking GOT; Pyodide's small helper modules do not.
    if (imports === undefined || imports['GOT.mem'] === undefined) return (original as (s: unknown, i?: Imports) => Promise<unknown>)(source, imports);
    wrapImports(imports, host);
    imports[RESERVED_MODULE] = { [FUEL_IMPORT]: host.fuel };
    const instance = await instantiate(module, imports);
    host.instance = instance;
    return { instance, module };
  };
  WebAssembly.instantiate = hooked as typeof WebAssembly.instantiate;
}

function wrapImports(imports: Imports, host: PythonHost): void {
  const env = imports.env as Record<string, unknown>;
  const wasi = imports.wasi_snapshot_preview1 as Record<string, unknown>;
  const memory = (): ArrayBuffer => (host.instance?.exports.memory as WebAssembly.Memory).buffer;

  wasi.random_get = (ptr: number, len: number): number => {
    host.random.fill(new Uint8Array(memory(), ptr >>> 0, len >>> 0));
    return 0;
  };

  const resize = env.emscripten_resize_heap as Fn;
  env.emscripten_resize_heap = (requested: number): number => {
    // malloc sees the refusal as out of memory, so the program gets a MemoryError.
    if (requested >>> 0 > host.heapCapBytes) {
      host.heapRefused = true;
      return 0;
    }
    return resize(requested);
  };

  for (const [mod, name] of [[wasi, 'proc_exit'], [env, 'exit']] as const) {
    const exit = mod[name] as Fn;
    mod[name] = (code: number): number => {
      host.exitCode = code;
      return exit(code);
    };
  }

  // emscripten would open WebSockets for sockets and a host shell for system().
  for (const name of ['__syscall_socket', '__syscall_socketpair', '__syscall_connect', '__syscall_bind', '__syscall_listen', '__syscall_accept4', '__syscall_sendto', '__syscall_recvfrom', '__syscall_sendmsg', '__syscall_recvmsg']) {
    if (name in env) env[name] = () => -EACCES;
  }
  // Pipes buffer in JS memory outside every cap.
  env.__syscall_pipe = () => -EACCES;
  env._emscripten_system = (command: number) => (command === 0 ? 0 : -ENOSYS);
  // Side modules would run unmetered code with the interpreter's imports.
  env._dlopen_js = () => 0;
  env._dlsym_js = () => 0;
  env._emscripten_dlopen_js = () => {
    throw new Error('dynamic loading is disabled in the sandbox');
  };
}

interface MemNode {
  usedBytes: number;
}
interface MemFs {
  ops_table: { file: { stream: { write: (stream: { node: MemNode }, buf: Uint8Array, off: number, len: number, pos: number, own?: boolean) => number } } } | null;
  resizeFileStorage: (node: MemNode, size: number) => void;
}
export interface EmscriptenModule {
  FS: { filesystems: Record<string, unknown>; ErrnoError: new (errno: number) => Error };
}

/**
 * File contents live in JS typed arrays, outside the wasm heap and its cap,
 * so growth of files is counted against a quota of its own.
 */
export function capFileStorage(m: EmscriptenModule, host: PythonHost): void {
  const memfs = m.FS.filesystems.MEMFS as MemFs;
  const ops = memfs.ops_table?.file.stream;
  if (ops === undefined) throw new Error('MEMFS has no file operations table');
  const take = (bytes: number): void => {
    if (bytes <= 0) return;
    if (bytes > host.fileQuotaBytes) {
      host.fileRefused = true;
      throw new m.FS.ErrnoError(ENOSPC);
    }
    host.fileQuotaBytes -= bytes;
  };
  const write = ops.write;
  ops.write = (stream, buf, off, len, pos, own) => {
    take(pos + len - stream.node.usedBytes);
    return write(stream, buf, off, len, pos, own);
  };
  const resize = memfs.resizeFileStorage.bind(memfs);
  memfs.resizeFileStorage = (node, size) => {
    take(size - node.usedBytes);
    resize(node, size);
  };
  // Mounting host directories is the one FS operation that reaches the disk.
  for (const name of ['NODEFS', 'NODERAWFS', 'PROXYFS', 'WORKERFS', 'IDBFS']) delete m.FS.filesystems[name];
}

/**
 * Removes modules from the interpreter's table of built-in modules by
 * blanking their names in linear memory, so `import _ctypes` finds nothing
 * however the program rearranges the import system.
 */
export function removeBuiltins(instance: WebAssembly.Instance, names: readonly string[]): string[] {
  const inittab = instance.exports.PyImport_Inittab as WebAssembly.Global | undefined;
  if (inittab === undefined) throw new Error('the interpreter does not export PyImport_Inittab');
  const buf = (instance.exports.memory as WebAssembly.Memory).buffer;
  const u8 = new Uint8Array(buf);
  const u32 = new Uint32Array(buf);
  const wanted = new Set(names);
  const removed: string[] = [];
  // struct _inittab { const char *name; PyObject *(*initfunc)(void); }, terminated by a NULL name.
  for (let p = u32[(inittab.value as number) >>> 2] as number; ; p += 8) {
    const namePtr = u32[p >>> 2] as number;
    if (namePtr === 0) break;
    let end = namePtr;
    while (u8[end] !== 0) end++;
    const name = new TextDecoder().decode(u8.subarray(namePtr, end));
    if (wanted.has(name)) {
      u8[namePtr] = 0;
      removed.push(name);
    }
  }
  return removed;
}

/**
 * With no way to build functions from strings, a JS object a program might
 * still get hold of through a leftover proxy leads nowhere: the worker's
 * globals are only reachable through eval or a Function constructor.
 */
export function disableCodeGeneration(): void {
  const refuse = function (): never {
    throw new EvalError('code generation from strings is disabled in the sandbox');
  };
  const protos = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}) as object,
    Object.getPrototypeOf(function* () {}) as object,
    Object.getPrototypeOf(async function* () {}) as object,
  ];
  for (const proto of protos) Object.defineProperty(proto, 'constructor', { value: refuse, writable: false, configurable: false });
  Object.defineProperty(globalThis, 'eval', { value: refuse, writable: false, configurable: false });
}
