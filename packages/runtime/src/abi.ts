/**
 * The task ABI as data, shared by the upload check (instrument/) and the host
 * (exec/, wasi/). Signatures are `params:results` in wasm value-type letters
 * (i = i32, I = i64), so both sides agree without importing binaryen.
 */
import type { ModuleAbi } from '@idlemesh/protocol';

export type { ModuleAbi };

/**
 * Import module reserved for the runtime itself (fuel global, memory). User
 * modules may not import from it: they would be able to reset their own fuel.
 */
export const RESERVED_MODULE = 'idlemesh_rt';
export const FUEL_IMPORT = 'fuel';
export const MEMORY_IMPORT = 'memory';

/** Custom section the instrumenter adds so the host knows memory limits without type reflection. */
export const META_SECTION = 'idlemesh_rt.meta';

export const TASK_MODULE = 'idlemesh';
export const WASI_MODULE = 'wasi_snapshot_preview1';

export const TASK_IMPORTS: Readonly<Record<string, string>> = {
  input_len: ':i',
  input_read: 'i:',
  output_write: 'ii:',
};

export const WASI_IMPORTS: Readonly<Record<string, string>> = {
  fd_read: 'iiii:i',
  fd_write: 'iiii:i',
  fd_close: 'i:i',
  fd_fdstat_get: 'ii:i',
  fd_seek: 'iIii:i',
  fd_prestat_get: 'ii:i',
  fd_prestat_dir_name: 'iii:i',
  proc_exit: 'i:',
  args_sizes_get: 'ii:i',
  args_get: 'ii:i',
  environ_sizes_get: 'ii:i',
  environ_get: 'ii:i',
  clock_time_get: 'iIi:i',
  clock_res_get: 'ii:i',
  random_get: 'ii:i',
  sched_yield: ':i',
};

/** Entry points; `run` wins when a module exports both. */
export const ENTRY: Readonly<Record<ModuleAbi, { name: string; signature: string }>> = {
  'idlemesh/1': { name: 'run', signature: ':i' },
  wasi_snapshot_preview1: { name: '_start', signature: ':' },
};

export const WASM_PAGE_BYTES = 65536;
export const PAGES_PER_MB = (1024 * 1024) / WASM_PAGE_BYTES;
/** The wasm32 address space: 4 GiB. */
export const MAX_PAGES = 65536;

/**
 * Fuel charged per this many bytes moved by bulk memory instructions and host
 * copies, so a single memory.fill of 1 GiB is not "one instruction".
 */
export const BYTES_PER_FUEL = 16;

export interface ModuleMeta {
  v: 1;
  abi: ModuleAbi;
  /** null when the module has no memory. */
  memory: { initialPages: number; maxPages: number } | null;
}

export function encodeMeta(meta: ModuleMeta): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(meta));
}

export function decodeMeta(bytes: ArrayBuffer): ModuleMeta {
  const meta = JSON.parse(new TextDecoder().decode(bytes)) as ModuleMeta;
  if (meta.v !== 1) throw new Error(`unknown ${META_SECTION} version`);
  return meta;
}
