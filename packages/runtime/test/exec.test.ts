import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { instrumentModule, runTask, type RunResult } from '../src/index.js';
import { ECHO_WAT, SPIN_WAT, TASK_IMPORTS_WAT, bytes, instrumented, limits, text, wat } from './helpers.js';

function failed(r: RunResult, code: string, pattern?: RegExp): void {
  assert.equal(r.ok, false, `expected ${code}, got success`);
  if (r.ok) return;
  assert.equal(r.error.code, code, r.error.message);
  if (pattern) assert.match(r.error.message, pattern);
}

void test('echo: output is the input, fuel counted', async () => {
  const m = await instrumented(ECHO_WAT);
  const r = runTask(m.module, m.abi, bytes('\u0005hello'), limits());
  assert.ok(r.ok);
  assert.equal(text(r.output), '\u0005hello');
  assert.ok(r.fuel > 5);
});

void test('fuel is identical across runs and across separately instrumented copies', async () => {
  const a = await instrumented(ECHO_WAT);
  const b = await instrumented(ECHO_WAT);
  const input = bytes('\u0064 same input');
  const fuels = [runTask(a.module, a.abi, input, limits()), runTask(a.module, a.abi, input, limits()), runTask(b.module, b.abi, input, limits())].map((r) => r.fuel);
  assert.equal(new Set(fuels).size, 1, `fuel differs: ${fuels.join(', ')}`);
});

void test('fuel grows by a fixed amount per loop iteration (property)', async () => {
  const m = await instrumented(ECHO_WAT);
  const fuelFor = (n: number): number => runTask(m.module, m.abi, new Uint8Array([n]), limits()).fuel;
  const perIteration = fuelFor(1) - fuelFor(0);
  assert.ok(perIteration > 0);
  fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), (n) => fuelFor(n) === fuelFor(0) + n * perIteration));
});

void test('an infinite loop exhausts its fuel: IM_FUEL_EXHAUSTED, fuel = limit', async () => {
  const m = await instrumented(SPIN_WAT);
  const r = runTask(m.module, m.abi, new Uint8Array(0), limits({ fuel: 123_456 }));
  failed(r, 'IM_FUEL_EXHAUSTED');
  assert.equal(r.fuel, 123_456);
});

void test('an infinite start function is metered too', async () => {
  const m = await instrumented('(module (func $s (loop $l (br $l))) (start $s) (func (export "run") (result i32) (i32.const 0)))');
  const r = runTask(m.module, m.abi, new Uint8Array(0), limits({ fuel: 50_000 }));
  failed(r, 'IM_FUEL_EXHAUSTED');
  assert.equal(r.fuel, 50_000);
});

void test('bulk memory pays for the bytes it moves', async () => {
  const fill = (n: number): string => `(module (memory 2) (func (export "run") (result i32) (memory.fill (i32.const 0) (i32.const 7) (i32.const ${n})) (i32.const 0)))`;
  const small = await instrumented(fill(16));
  const big = await instrumented(fill(65536 * 2));
  const fs = runTask(small.module, small.abi, new Uint8Array(0), limits()).fuel;
  const fb = runTask(big.module, big.abi, new Uint8Array(0), limits()).fuel;
  assert.equal(fb - fs, (65536 * 2 - 16) / 16);
  failed(runTask(big.module, big.abi, new Uint8Array(0), limits({ fuel: 1000 })), 'IM_FUEL_EXHAUSTED');
});

void test('traps are IM_TRAP with the trap message', async () => {
  const unreachable = await instrumented('(module (func (export "run") (result i32) unreachable))');
  failed(runTask(unreachable.module, unreachable.abi, new Uint8Array(0), limits()), 'IM_TRAP', /unreachable/);
  const div = await instrumented('(module (func (export "run") (result i32) (i32.div_s (i32.const 1) (i32.const 0))))');
  failed(runTask(div.module, div.abi, new Uint8Array(0), limits()), 'IM_TRAP', /divi/);
  const oob = await instrumented('(module (memory 1) (func (export "run") (result i32) (i32.load (i32.const 70000))))');
  failed(runTask(oob.module, oob.abi, new Uint8Array(0), limits()), 'IM_TRAP', /out of bounds/);
});

void test('run() returning non-zero is IM_EXIT_NONZERO', async () => {
  const m = await instrumented('(module (func (export "run") (result i32) (i32.const 3)))');
  failed(runTask(m.module, m.abi, new Uint8Array(0), limits()), 'IM_EXIT_NONZERO', /3/);
});

void test('output over limits.outputBytes is IM_OUTPUT_TOO_LARGE', async () => {
  const m = await instrumented(ECHO_WAT);
  failed(runTask(m.module, m.abi, bytes('\u0000 this is longer than ten bytes'), limits({ outputBytes: 10 })), 'IM_OUTPUT_TOO_LARGE');
  assert.ok(runTask(m.module, m.abi, bytes('\u0000short'), limits({ outputBytes: 10 })).ok);
});

const GROW_WAT = (after: string): string => `(module ${TASK_IMPORTS_WAT}
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (loop $g (br_if $g (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    ${after}))`;

void test('a memory.grow bomb stops at the job cap', async () => {
  const m = await instrumented(GROW_WAT('(i32.store (i32.const 0) (memory.size)) (call $output_write (i32.const 0) (i32.const 4)) (i32.const 0)'));
  for (const memoryMb of [1, 3]) {
    const r = runTask(m.module, m.abi, new Uint8Array(0), limits({ memoryMb }));
    assert.ok(r.ok);
    assert.equal(new DataView(r.output.buffer, r.output.byteOffset).getUint32(0, true), memoryMb * 16);
  }
  const dies = await instrumented(GROW_WAT('unreachable'));
  failed(runTask(dies.module, dies.abi, new Uint8Array(0), limits({ memoryMb: 2 })), 'IM_MEMORY_EXCEEDED', /2 MiB/);
});

void test('a module whose initial memory exceeds the job cap is IM_MEMORY_EXCEEDED', async () => {
  const m = await instrumented('(module (memory 64) (func (export "run") (result i32) (i32.const 0)))');
  failed(runTask(m.module, m.abi, new Uint8Array(0), limits({ memoryMb: 1 })), 'IM_MEMORY_EXCEEDED', /1 MiB/);
  assert.ok(runTask(m.module, m.abi, new Uint8Array(0), limits({ memoryMb: 4 })).ok);
});

void test('a data segment is still applied to the imported memory', async () => {
  const m = await instrumented(`(module ${TASK_IMPORTS_WAT} (memory 1) (data (i32.const 8) "from data")
    (func (export "run") (result i32) (call $output_write (i32.const 8) (i32.const 9)) (i32.const 0)))`);
  const r = runTask(m.module, m.abi, new Uint8Array(0), limits());
  assert.ok(r.ok);
  assert.equal(text(r.output), 'from data');
});

void test('a module that was not instrumented is refused by runTask', async () => {
  const raw = new WebAssembly.Module((await wat('(module (func (export "run") (result i32) (i32.const 0)))')) as Uint8Array<ArrayBuffer>);
  failed(runTask(raw, 'idlemesh/1', new Uint8Array(0), limits()), 'IM_AGENT_ERROR', /instrumented/);
});

void test('deep recursion is a trap, not a crash', async () => {
  const m = await instrumented('(module (func $f (result i32) (call $f)) (func (export "run") (result i32) (call $f)))');
  failed(runTask(m.module, m.abi, new Uint8Array(0), limits({ fuel: 1e12 })), 'IM_TRAP');
});

void test('instrumentModule output runs even when the original exports its memory under another name', async () => {
  const inst = await instrumentModule(await wat('(module (memory (export "mem") 1) (func (export "run") (result i32) (i32.store (i32.const 0) (i32.const 1)) (i32.const 0)))'), { maxMemoryMb: 8 });
  const r = runTask(new WebAssembly.Module(inst.bytes as Uint8Array<ArrayBuffer>), inst.abi, new Uint8Array(0), limits());
  assert.ok(r.ok);
});

void test('a task never sees the memory of the task before it (memories are reused zeroed, or not at all once grown)', async () => {
  // Outputs 16 bytes at 1024 as it found them, then leaves its input there (and, with grow, grows first).
  const leak = (grow: boolean): string => `(module ${TASK_IMPORTS_WAT} (memory 1)
    (func (export "run") (result i32)
      ${grow ? '(drop (memory.grow (i32.const 1)))' : ''}
      (call $output_write (i32.const 1024) (i32.const 16))
      (call $input_read (i32.const 1024))
      (i32.const 0)))`;
  for (const grow of [false, true]) {
    const m = await instrumented(leak(grow));
    for (let i = 0; i < 5; i++) {
      const r = runTask(m.module, m.abi, bytes(`secret of task ${i}`), limits());
      assert.ok(r.ok, JSON.stringify(r));
      assert.deepEqual([...r.output], new Array(16).fill(0), `task ${i} (grow ${grow}) saw ${text(r.output)}`);
    }
  }
  // A data segment is written again into a reused memory.
  const data = await instrumented(`(module ${TASK_IMPORTS_WAT} (memory 1) (data (i32.const 8) "from data")
    (func (export "run") (result i32) (call $output_write (i32.const 8) (i32.const 9)) (i32.store8 (i32.const 8) (i32.const 88)) (i32.const 0)))`);
  for (let i = 0; i < 3; i++) assert.equal(text((runTask(data.module, data.abi, new Uint8Array(0), limits()) as { output: Uint8Array }).output), 'from data');
});
