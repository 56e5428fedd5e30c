/**
 * Coordinator side: check an uploaded module against the task ABI and add
 * fuel metering. Runs once per module (the coordinator caches by hash); the
 * agent never loads this file, nor binaryen.
 */
import type binaryen from 'binaryen';
import { ImError } from '@idlemesh/protocol';
import { FUEL_IMPORT, MAX_PAGES, MEMORY_IMPORT, META_SECTION, PAGES_PER_MB, RESERVED_MODULE, encodeMeta, type ModuleAbi, type ModuleMeta } from '../abi.js';
import { checkImportNames, checkSignatures, entryFor } from './checks.js';
import { FUEL_GLOBAL, meterModule } from './fuel.js';
import type { Binaryen } from './raw.js';
import { stripCustomSections } from './sections.js';

export interface InstrumentOptions {
  /** Largest memory.initial accepted, in MiB; also caps the reported maxPages. */
  maxMemoryMb: number;
  /** Largest module accepted, in bytes. */
  maxBytes?: number;
}

export interface InstrumentedModule {
  bytes: Uint8Array;
  abi: ModuleAbi;
  memory: { initialPages: number; maxPages: number };
}

export const DEFAULT_MAX_MODULE_BYTES = 32 * 1024 * 1024;
/** funcref tables are capped so table.grow cannot allocate without bound. */
export const MAX_TABLE_ELEMENTS = 1 << 20;

let binaryenLoad: Promise<Binaryen> | undefined;
function loadBinaryen(): Promise<Binaryen> {
  binaryenLoad ??= import('binaryen').then((mod) => mod.default);
  return binaryenLoad;
}

function features(b: Binaryen): number {
  const F = b.Features;
  // Only deterministic, single-threaded features (no threads, relaxed SIMD, GC, exceptions).
  return F.MutableGlobals | F.NontrappingFPToInt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.SignExt
    | F.ReferenceTypes | F.Multivalue | F.TailCall | F.ExtendedConst | F.CallIndirectOverlong;
}

export async function instrumentModule(bytes: Uint8Array, opts: InstrumentOptions): Promise<InstrumentedModule> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_MODULE_BYTES;
  if (bytes.length > maxBytes) {
    throw new ImError('IM_WASM_TOO_LARGE', `The module is ${bytes.length} bytes; the limit is ${maxBytes}.`);
  }
  let compiled: WebAssembly.Module;
  try {
    compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new ImError('IM_WASM_INVALID', `The module is not valid WebAssembly: ${(err as Error).message}`);
  }
  checkImportNames(WebAssembly.Module.imports(compiled));
  const abi = entryFor(WebAssembly.Module.exports(compiled));

  const b = await loadBinaryen();
  let m: binaryen.Module;
  try {
    m = b.readBinary(stripCustomSections(bytes));
  } catch (err) {
    throw new ImError('IM_WASM_INVALID', `The module could not be parsed for instrumentation: ${(err as Error).message}`);
  }
  try {
    m.setFeatures(features(b));
    checkSignatures(b, m, abi);
    const memory = importMemory(m, opts.maxMemoryMb);
    capTables(b, m);
    meterModule(b, m);
    m.addGlobalImport(FUEL_GLOBAL, RESERVED_MODULE, FUEL_IMPORT, b.i64, true);
    const meta: ModuleMeta = { v: 1, abi, memory };
    m.addCustomSection(META_SECTION, encodeMeta(meta));
    if (!m.validate()) {
      throw new ImError('IM_WASM_INVALID', 'The module uses WebAssembly features idlemesh does not run (threads, GC, exceptions, memory64, relaxed SIMD…); see docs/wasm-abi.md.');
    }
    const out = m.emitBinary();
    const capPages = opts.maxMemoryMb * PAGES_PER_MB;
    return {
      bytes: out,
      abi,
      memory: memory === null ? { initialPages: 0, maxPages: 0 } : { initialPages: memory.initialPages, maxPages: Math.min(memory.maxPages, capPages) },
    };
  } finally {
    m.dispose();
  }
}

/**
 * The module's own memory becomes an import so the host can create it with
 * each job's cap as its maximum; data segments still initialise it.
 */
function importMemory(m: binaryen.Module, maxMemoryMb: number): ModuleMeta['memory'] {
  if (!m.hasMemory()) return null;
  const info = m.getMemoryInfo();
  if (info.shared || info.is64) {
    throw new ImError('IM_WASM_INVALID', 'The module declares a shared or 64-bit memory; idlemesh runs single-threaded wasm32 modules only.');
  }
  const capPages = maxMemoryMb * PAGES_PER_MB;
  if (info.initial > capPages) {
    throw new ImError('IM_WASM_MEMORY_LIMIT', `The module's initial memory is ${info.initial} pages (${info.initial / PAGES_PER_MB} MiB); the limit is ${maxMemoryMb} MiB.`, { details: { initialPages: info.initial, maxPages: capPages } });
  }
  // Custom sections are stripped before parsing, so memory 0 has binaryen's default name.
  m.addMemoryImport('0', RESERVED_MODULE, MEMORY_IMPORT);
  const after = m.getMemoryInfo();
  if (after.module !== RESERVED_MODULE) throw new Error('instrument: could not turn the memory into an import');
  return { initialPages: info.initial, maxPages: Math.min(info.max ?? MAX_PAGES, MAX_PAGES) };
}

interface TableApi {
  hasMax(t: binaryen.TableRef): boolean;
  getMax(t: binaryen.TableRef): number;
  setMax(t: binaryen.TableRef, max: number): void;
}

function capTables(b: Binaryen, m: binaryen.Module): void {
  const tables = (b as unknown as { Table: TableApi }).Table;
  const n = m.getNumTables();
  for (let i = 0; i < n; i++) {
    const t = m.getTableByIndex(i);
    const info = b.getTableInfo(t);
    if (info.initial > MAX_TABLE_ELEMENTS) {
      throw new ImError('IM_WASM_MEMORY_LIMIT', `The module's table ${info.name} starts with ${info.initial} elements; the limit is ${MAX_TABLE_ELEMENTS}.`);
    }
    if (!tables.hasMax(t) || tables.getMax(t) > MAX_TABLE_ELEMENTS) tables.setMax(t, MAX_TABLE_ELEMENTS);
  }
}
