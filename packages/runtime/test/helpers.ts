/** Test modules are written in WAT and compiled with wabt. */
import { createHash } from 'node:crypto';
import type { JobLimits } from '@idlemesh/protocol';
import { instrumentModule, type InstrumentedModule } from '../src/index.js';

type Wabt = Awaited<ReturnType<typeof import('wabt')>>;
let wabt: Promise<Wabt> | undefined;

export async function wat(text: string, features: Record<string, boolean> = {}): Promise<Uint8Array> {
  wabt ??= import('wabt').then((m) => m.default());
  const w = await wabt;
  const mod = w.parseWat('test.wat', text, { bulk_memory: true, mutable_globals: true, sign_extension: true, ...features });
  try {
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
}

export async function instrumented(text: string, maxMemoryMb = 64): Promise<InstrumentedModule & { module: WebAssembly.Module; hash: string }> {
  const inst = await instrumentModule(await wat(text), { maxMemoryMb });
  const module = await WebAssembly.compile(inst.bytes as Uint8Array<ArrayBuffer>);
  return { ...inst, module, hash: sha256(inst.bytes) };
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function limits(over: Partial<JobLimits> = {}): JobLimits {
  return { fuel: 10_000_000, memoryMb: 16, timeoutMs: 10_000, outputBytes: 1024 * 1024, ...over };
}

export const text = (b: Uint8Array): string => new TextDecoder().decode(b);
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** idlemesh/1 imports, for splicing into test modules. */
export const TASK_IMPORTS_WAT = `
  (import "idlemesh" "input_len" (func $input_len (result i32)))
  (import "idlemesh" "input_read" (func $input_read (param i32)))
  (import "idlemesh" "output_write" (func $output_write (param i32 i32)))`;

/** Echoes its input, after looping input[0] times. */
export const ECHO_WAT = `(module ${TASK_IMPORTS_WAT}
  (memory (export "memory") 1)
  (func (export "run") (result i32) (local $i i32) (local $n i32)
    (call $input_read (i32.const 0))
    (local.set $n (i32.load8_u (i32.const 0)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $output_write (i32.const 0) (call $input_len))
    (i32.const 0)))`;

export const SPIN_WAT = `(module (func (export "run") (result i32) (loop $l (br $l)) (i32.const 0)))`;
