/** Upload-time checks of a module's imports and entry point against the task ABI. */
import type binaryen from 'binaryen';
import { ImError } from '@idlemesh/protocol';
import { ENTRY, RESERVED_MODULE, TASK_IMPORTS, TASK_MODULE, WASI_IMPORTS, WASI_MODULE, type ModuleAbi } from '../abi.js';
import type { Binaryen } from './raw.js';

const ABI_IMPORTS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  [TASK_MODULE]: TASK_IMPORTS,
  [WASI_MODULE]: WASI_IMPORTS,
};

/** Names only, from V8's view of the module (before binaryen parses it). */
export function checkImportNames(imports: WebAssembly.ModuleImportDescriptor[]): void {
  for (const imp of imports) {
    const what = `${imp.module}.${imp.name} (${imp.kind})`;
    if (imp.module === RESERVED_MODULE) {
      throw new ImError('IM_WASM_BANNED_IMPORT', `The module imports ${what}; the module name ${RESERVED_MODULE} is reserved for the runtime.`, { details: { import: `${imp.module}.${imp.name}` } });
    }
    const allowed = ABI_IMPORTS[imp.module];
    if (imp.kind !== 'function' || allowed === undefined || !Object.hasOwn(allowed, imp.name)) {
      throw new ImError('IM_WASM_BANNED_IMPORT', `The module imports ${what}, which is outside the task ABI; only functions of idlemesh.* and WASI stdin/stdout are allowed (docs/wasm-abi.md).`, { details: { import: `${imp.module}.${imp.name}` } });
    }
  }
}

export function entryFor(exports: WebAssembly.ModuleExportDescriptor[]): ModuleAbi {
  const fn = new Set(exports.filter((e) => e.kind === 'function').map((e) => e.name));
  if (fn.has(ENTRY['idlemesh/1'].name)) return 'idlemesh/1';
  if (fn.has(ENTRY.wasi_snapshot_preview1.name)) return 'wasi_snapshot_preview1';
  throw new ImError('IM_WASM_NO_ENTRY');
}

function letter(b: Binaryen, t: binaryen.Type): string {
  return t === b.i32 ? 'i' : t === b.i64 ? 'I' : t === b.f32 ? 'f' : t === b.f64 ? 'F' : '?';
}

export function signature(b: Binaryen, f: binaryen.FunctionRef): string {
  const info = b.getFunctionInfo(f);
  const params = b.expandType(info.params).map((t) => letter(b, t)).join('');
  const results = b.expandType(info.results).map((t) => letter(b, t)).join('');
  return `${params}:${results}`;
}

function show(sig: string): string {
  const [p = '', r = ''] = sig.split(':');
  const names = (s: string): string => [...s].map((c) => ({ i: 'i32', I: 'i64', f: 'f32', F: 'f64' })[c] ?? '?').join(', ');
  return `(${names(p)}) -> (${names(r)})`;
}

/** Types, which V8 does not reflect in Node 20, from binaryen's parse. */
export function checkSignatures(b: Binaryen, m: binaryen.Module, abi: ModuleAbi): void {
  const n = m.getNumFunctions();
  for (let i = 0; i < n; i++) {
    const f = m.getFunctionByIndex(i);
    const info = b.getFunctionInfo(f);
    if (!info.module || info.base === null) continue;
    const expected = ABI_IMPORTS[info.module]?.[info.base];
    const actual = signature(b, f);
    if (expected !== actual) {
      throw new ImError('IM_WASM_BANNED_IMPORT', `The module imports ${info.module}.${info.base} with type ${show(actual)}; the task ABI defines it as ${show(expected ?? '?:?')}.`, { details: { import: `${info.module}.${info.base}` } });
    }
  }
  const entry = ENTRY[abi];
  const exp = b.getExportInfo(m.getExport(entry.name));
  const actual = signature(b, m.getFunction(exp.value));
  if (actual !== entry.signature) {
    throw new ImError('IM_WASM_NO_ENTRY', `The export ${entry.name} has type ${show(actual)}; the ABI requires ${show(entry.signature)}.`);
  }
}
