/**
 * What one run owns: its fuel, memory, input cursor and output. Host
 * functions are created once per thread and read the current run's state
 * from here, which is safe because a run is synchronous.
 */
import { BYTES_PER_FUEL } from '../abi.js';

/** Thrown by host functions; caught by runTask, never seen by the module. */
export class FuelOut extends Error {}
export class OutputTooLarge extends Error {}
export class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

const STDERR_TAIL = 1024;

export class RunState {
  inputPos = 0;
  private chunks: Uint8Array[] = [];
  private outLen = 0;
  private stderr = '';
  /** xorshift32 state for random_get: fixed seed, so every run sees the same bytes. */
  rng = 0x9e3779b9;

  constructor(
    readonly input: Uint8Array,
    readonly outputLimit: number,
    readonly fuel: WebAssembly.Global,
    readonly memory: WebAssembly.Memory | null,
  ) {}

  /** Host calls pay for the bytes they move, like bulk memory does. */
  charge(bytes: number): void {
    const left = (this.fuel.value as bigint) - BigInt(1 + Math.floor(bytes / BYTES_PER_FUEL));
    this.fuel.value = left;
    if (left < 0n) throw new FuelOut('fuel exhausted in a host call');
  }

  mem(fn: string, ptr: number, len: number): Uint8Array {
    if (this.memory === null) throw new WebAssembly.RuntimeError(`${fn}: the module has no memory`);
    const buf = this.memory.buffer;
    const p = ptr >>> 0;
    const n = len >>> 0;
    if (p + n > buf.byteLength) throw new WebAssembly.RuntimeError(`${fn}: memory access out of bounds`);
    return new Uint8Array(buf, p, n);
  }

  view(fn: string, ptr: number, len: number): DataView {
    const bytes = this.mem(fn, ptr, len);
    return new DataView(bytes.buffer, bytes.byteOffset, len);
  }

  write(bytes: Uint8Array): void {
    if (this.outLen + bytes.length > this.outputLimit) {
      throw new OutputTooLarge(`The task wrote more than ${this.outputLimit} bytes of output.`);
    }
    this.chunks.push(bytes.slice());
    this.outLen += bytes.length;
  }

  writeStderr(bytes: Uint8Array): void {
    this.stderr = (this.stderr + new TextDecoder().decode(bytes.subarray(-STDERR_TAIL))).slice(-STDERR_TAIL);
  }

  stderrTail(): string {
    return this.stderr === '' ? '' : ` (stderr: ${this.stderr.trimEnd()})`;
  }

  output(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0] as Uint8Array;
    const out = new Uint8Array(this.outLen);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}
