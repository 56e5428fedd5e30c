import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { Instrumenter } from '../src/modules/index.js';

async function wat(text: string): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  return new Uint8Array(wabt.parseWat('t.wat', text, {}).toBinary({}).buffer);
}

describe('instrumenter worker', () => {
  it('instruments off the event loop, reports module errors with their codes, and survives its worker dying', async () => {
    const inst = new Instrumenter({ maxMemoryMb: 64, maxBytes: 1 << 20 });
    try {
      const ok = await inst.instrument(await wat('(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))'));
      assert.equal(ok.abi, 'idlemesh/1');
      assert.ok(ok.bytes.byteLength > 0);
      await assert.rejects(inst.instrument(new Uint8Array([1, 2, 3])), (e: unknown) => e instanceof ImError && e.code === 'IM_WASM_INVALID');
      const banned = await wat('(module (import "env" "f" (func)) (func (export "run") (result i32) (i32.const 0)))');
      await assert.rejects(inst.instrument(banned), (e: unknown) => e instanceof ImError && e.code === 'IM_WASM_BANNED_IMPORT');
      // Kill the worker behind its back: the next request gets a fresh one.
      await (inst as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      const again = await inst.instrument(await wat('(module (func (export "run") (result i32) (i32.const 7)))'));
      assert.equal(again.abi, 'idlemesh/1');
    } finally {
      await inst.close();
    }
  });
});
