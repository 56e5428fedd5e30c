import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTask } from '../src/index.js';
import { bytes, instrumented, limits, text } from './helpers.js';

const WASI = (name: string, sig: string): string => `(import "wasi_snapshot_preview1" "${name}" (func $${name} ${sig}))`;

/** Reads stdin 16 bytes at a time, writes it upper-cased to stdout. */
const UPPER_WAT = `(module
  ${WASI('fd_read', '(param i32 i32 i32 i32) (result i32)')}
  ${WASI('fd_write', '(param i32 i32 i32 i32) (result i32)')}
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32) (local $i i32) (local $c i32)
    (loop $read
      (i32.store (i32.const 0) (i32.const 64))
      (i32.store (i32.const 4) (i32.const 16))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (if (i32.eqz (local.get $n)) (then (return)))
      (local.set $i (i32.const 0))
      (loop $up
        (local.set $c (i32.load8_u (i32.add (i32.const 64) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (i32.const 64) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $up (i32.lt_u (local.get $i) (local.get $n))))
      (i32.store (i32.const 4) (local.get $n))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))
      (br $read))))`;

void test('a WASI program reads stdin and writes stdout', async () => {
  const m = await instrumented(UPPER_WAT);
  assert.equal(m.abi, 'wasi_snapshot_preview1');
  const input = 'hello, idlemesh! this input is longer than one 16-byte read.';
  const r = runTask(m.module, m.abi, bytes(input), limits());
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(text(r.output), input.toUpperCase());
  const again = runTask(m.module, m.abi, bytes(input), limits());
  assert.equal(again.fuel, r.fuel);
});

void test('proc_exit with a non-zero status is IM_EXIT_NONZERO, with the stderr tail', async () => {
  const m = await instrumented(`(module
    ${WASI('fd_write', '(param i32 i32 i32 i32) (result i32)')}
    ${WASI('proc_exit', '(param i32)')}
    (memory (export "memory") 1)
    (data (i32.const 100) "boom: bad input")
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 15))
      (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
      (call $proc_exit (i32.const 3))))`);
  const r = runTask(m.module, m.abi, new Uint8Array(0), limits());
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.error.code, 'IM_EXIT_NONZERO');
    assert.match(r.error.message, /status 3/);
    assert.match(r.error.message, /boom: bad input/);
  }
});

void test('proc_exit(0) is success and keeps the output', async () => {
  const m = await instrumented(`(module
    ${WASI('fd_write', '(param i32 i32 i32 i32) (result i32)')}
    ${WASI('proc_exit', '(param i32)')}
    (memory (export "memory") 1)
    (data (i32.const 100) "ok")
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 2))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (call $proc_exit (i32.const 0))
      unreachable))`);
  const r = runTask(m.module, m.abi, new Uint8Array(0), limits());
  assert.ok(r.ok);
  assert.equal(text(r.output), 'ok');
});

void test('clock, random, args and environment are deterministic', async () => {
  const m = await instrumented(`(module
    ${WASI('fd_write', '(param i32 i32 i32 i32) (result i32)')}
    ${WASI('clock_time_get', '(param i32 i64 i32) (result i32)')}
    ${WASI('random_get', '(param i32 i32) (result i32)')}
    ${WASI('args_sizes_get', '(param i32 i32) (result i32)')}
    ${WASI('environ_sizes_get', '(param i32 i32) (result i32)')}
    (memory (export "memory") 1)
    (func (export "_start")
      (i64.store (i32.const 100) (i64.const -1))
      (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 100)))
      (drop (call $random_get (i32.const 108) (i32.const 16)))
      (i32.store (i32.const 124) (i32.const -1))
      (i32.store (i32.const 128) (i32.const -1))
      (drop (call $args_sizes_get (i32.const 124) (i32.const 128)))
      (drop (call $environ_sizes_get (i32.const 132) (i32.const 136)))
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 40))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
  const a = runTask(m.module, m.abi, new Uint8Array(0), limits());
  const b = runTask(m.module, m.abi, new Uint8Array(0), limits());
  assert.ok(a.ok && b.ok);
  assert.deepEqual(a.output, b.output);
  const v = new DataView(a.output.buffer, a.output.byteOffset, a.output.byteLength);
  assert.equal(v.getBigUint64(0, true), 0n, 'clock is 0');
  assert.notDeepEqual(a.output.subarray(8, 24), new Uint8Array(16), 'random bytes are not all zero');
  assert.equal(v.getUint32(24, true), 0, 'argc');
  assert.equal(v.getUint32(32, true), 0, 'environ count');
});

void test('writes to other file descriptors fail with EBADF, not a trap', async () => {
  const m = await instrumented(`(module
    ${WASI('fd_write', '(param i32 i32 i32 i32) (result i32)')}
    (memory (export "memory") 1)
    (func (export "_start")
      (if (i32.ne (call $fd_write (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 8)) (i32.const 8)) (then unreachable))))`);
  assert.ok(runTask(m.module, m.abi, new Uint8Array(0), limits()).ok);
});
