import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ImError } from '@idlemesh/protocol';
import { instrumentModule } from '../src/index.js';
import { ECHO_WAT, TASK_IMPORTS_WAT, wat } from './helpers.js';

async function refused(text: string | Uint8Array, code: string, pattern?: RegExp, maxMemoryMb = 64): Promise<void> {
  const bytes = typeof text === 'string' ? await wat(text) : text;
  await assert.rejects(instrumentModule(bytes, { maxMemoryMb }), (err: unknown) => {
    assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

void test('invalid bytes are refused with IM_WASM_INVALID', async () => {
  await refused(new Uint8Array([1, 2, 3, 4]), 'IM_WASM_INVALID', /not valid WebAssembly/);
  await refused(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 99]), 'IM_WASM_INVALID');
});

void test('a module over the size cap is refused with IM_WASM_TOO_LARGE', async () => {
  const bytes = await wat(ECHO_WAT);
  await assert.rejects(instrumentModule(bytes, { maxMemoryMb: 64, maxBytes: 10 }), { code: 'IM_WASM_TOO_LARGE' });
});

void test('imports outside the task ABI are refused, naming the import', async () => {
  const entry = '(func (export "run") (result i32) (i32.const 0))';
  await refused(`(module (import "env" "f" (func)) ${entry})`, 'IM_WASM_BANNED_IMPORT', /env\.f/);
  await refused(`(module (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32))) ${entry})`, 'IM_WASM_BANNED_IMPORT', /path_open/);
  await refused(`(module (import "idlemesh_rt" "fuel" (global (mut i64))) ${entry})`, 'IM_WASM_BANNED_IMPORT', /reserved/);
  await refused(`(module (import "idlemesh_rt" "memory" (memory 1)) ${entry})`, 'IM_WASM_BANNED_IMPORT', /reserved/);
  await refused(`(module (import "env" "memory" (memory 1)) ${entry})`, 'IM_WASM_BANNED_IMPORT', /env\.memory/);
  await refused(`(module (import "idlemesh" "input_len" (func (param i32))) ${entry})`, 'IM_WASM_BANNED_IMPORT', /idlemesh\.input_len.*\(i32\) -> \(\)/);
});

void test('a module without run or _start is refused with IM_WASM_NO_ENTRY', async () => {
  await refused('(module (func (export "main") (result i32) (i32.const 0)))', 'IM_WASM_NO_ENTRY');
  await refused('(module (func (export "run") (param i32) (result i32) (i32.const 0)))', 'IM_WASM_NO_ENTRY', /run/);
});

void test('the ABI follows the entry point; run wins over _start', async () => {
  const both = await instrumentModule(await wat('(module (func (export "_start")) (func (export "run") (result i32) (i32.const 0)))'), { maxMemoryMb: 64 });
  assert.equal(both.abi, 'idlemesh/1');
  const wasi = await instrumentModule(await wat('(module (func (export "_start")))'), { maxMemoryMb: 64 });
  assert.equal(wasi.abi, 'wasi_snapshot_preview1');
});

void test('initial memory above the cap is refused with IM_WASM_MEMORY_LIMIT', async () => {
  await refused('(module (memory 2000) (func (export "run") (result i32) (i32.const 0)))', 'IM_WASM_MEMORY_LIMIT', /64 MiB/);
});

void test('memory limits are reported, clamped to the cap', async () => {
  const a = await instrumentModule(await wat('(module (memory 3 5000) (func (export "run") (result i32) (i32.const 0)))'), { maxMemoryMb: 64 });
  assert.deepEqual(a.memory, { initialPages: 3, maxPages: 64 * 16 });
  const b = await instrumentModule(await wat('(module (memory 3 7) (func (export "run") (result i32) (i32.const 0)))'), { maxMemoryMb: 64 });
  assert.deepEqual(b.memory, { initialPages: 3, maxPages: 7 });
});

void test('the memory and fuel become imports from the reserved module', async () => {
  const inst = await instrumentModule(await wat(`(module ${TASK_IMPORTS_WAT} (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))`), { maxMemoryMb: 64 });
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(inst.bytes as Uint8Array<ArrayBuffer>));
  const reserved = imports.filter((i) => i.module === 'idlemesh_rt').map((i) => `${i.name}:${i.kind}`).sort();
  assert.deepEqual(reserved, ['fuel:global', 'memory:memory']);
});

void test('instrumentation is deterministic: same input, same bytes', async () => {
  const bytes = await wat(ECHO_WAT);
  const a = await instrumentModule(bytes, { maxMemoryMb: 64 });
  const b = await instrumentModule(bytes.slice(), { maxMemoryMb: 64 });
  assert.deepEqual(a.bytes, b.bytes);
  assert.notDeepEqual(a.bytes, bytes);
});

void test('custom sections are stripped, so a user cannot forge the runtime metadata', async () => {
  const base = await wat('(module (func (export "run") (result i32) (i32.const 0)))');
  // Append a custom section named like the runtime's own.
  const name = new TextEncoder().encode('idlemesh_rt.meta');
  const payload = new TextEncoder().encode('{"v":1,"abi":"idlemesh/1","memory":null}');
  const body = [name.length, ...name, ...payload];
  const forged = new Uint8Array([...base, 0, body.length, ...body]);
  const inst = await instrumentModule(forged, { maxMemoryMb: 64 });
  const mod = new WebAssembly.Module(inst.bytes as Uint8Array<ArrayBuffer>);
  assert.equal(WebAssembly.Module.customSections(mod, 'idlemesh_rt.meta').length, 1);
});

void test('threads and exceptions are refused, and instrumentation keeps working afterwards', async () => {
  const eh = await wat('(module (tag $t) (func (export "run") (result i32) (try (do (throw $t)) (catch $t)) (i32.const 0)))', { exceptions: true });
  await assert.rejects(instrumentModule(eh, { maxMemoryMb: 8 }), (err: unknown) => err instanceof ImError && err.code === 'IM_WASM_INVALID' && /Try/.test(err.message));
  const shared = await wat('(module (memory 1 1 shared) (func (export "run") (result i32) (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1))) (i32.const 0)))', { threads: true });
  await assert.rejects(instrumentModule(shared, { maxMemoryMb: 8 }), { code: 'IM_WASM_INVALID' });
  const ok = await instrumentModule(await wat(ECHO_WAT), { maxMemoryMb: 8 });
  assert.equal(ok.abi, 'idlemesh/1');
});
