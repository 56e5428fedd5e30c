/**
 * Agent side: run one task of an instrumented module, synchronously, in the
 * current thread. A fresh instance and memory per task: nothing of one task
 * can leak into the next.
 */
import type { ErrorCode, JobLimits } from '@idlemesh/protocol';
import { ENTRY, FUEL_IMPORT, MEMORY_IMPORT, META_SECTION, PAGES_PER_MB, RESERVED_MODULE, TASK_MODULE, WASI_MODULE, decodeMeta, type ModuleAbi, type ModuleMeta } from '../abi.js';
import { wasiImports } from '../wasi/index.js';
import { taskImports } from './host.js';
import { FuelOut, OutputTooLarge, ProcExit, RunState } from './state.js';
import type { RunResult } from './types.js';

let current: RunState | null = null;
const state = (): RunState => {
  if (current === null) throw new Error('host function called outside a run');
  return current;
};
const TASK = taskImports(state);
const WASI = wasiImports(state);

const metas = new WeakMap<WebAssembly.Module, ModuleMeta>();

/**
 * Memories of earlier tasks, zeroed, by initial/maximum pages. A fresh
 * WebAssembly.Memory per task made V8 run a full collection about every
 * 100 ms under load (each reserves a large guarded region), a 1-3 ms pause
 * in a tiny task's latency. Only small memories that their task did not grow
 * come back here, after every byte is zeroed, so a task still finds exactly
 * what a fresh memory holds.
 */
const POOL_MAX_PAGES = 16;
/** A thread runs one task at a time: one memory per shape is all it reuses. At most 16 MiB kept per thread. */
const POOL_SHAPES = 16;
const pool = new Map<string, WebAssembly.Memory[]>();

function takeMemory(initial: number, maximum: number): WebAssembly.Memory {
  if (initial <= POOL_MAX_PAGES) {
    const free = pool.get(`${initial}/${maximum}`)?.pop();
    if (free !== undefined) return free;
  }
  return new WebAssembly.Memory({ initial, maximum });
}

function giveBack(memory: WebAssembly.Memory, initial: number, maximum: number): void {
  if (initial > POOL_MAX_PAGES || memory.buffer.byteLength !== initial * 65536) return;
  const shape = `${initial}/${maximum}`;
  let free = pool.get(shape);
  if (free === undefined) {
    if (pool.size >= POOL_SHAPES) pool.clear();
    free = [];
    pool.set(shape, free);
  }
  if (free.length > 0) return;
  new Uint8Array(memory.buffer).fill(0);
  free.push(memory);
}

function metaOf(module: WebAssembly.Module): ModuleMeta {
  let meta = metas.get(module);
  if (meta === undefined) {
    const sections = WebAssembly.Module.customSections(module, META_SECTION);
    const section = sections[0];
    if (sections.length !== 1 || section === undefined) throw new Error(`module was not instrumented (no ${META_SECTION} section)`);
    meta = decodeMeta(section);
    metas.set(module, meta);
  }
  return meta;
}

function fail(code: ErrorCode, message: string, fuel: number): RunResult {
  return { ok: false, fuel, error: { code, message } };
}

export function runTask(module: WebAssembly.Module, abi: ModuleAbi, input: Uint8Array, limits: JobLimits): RunResult {
  let meta: ModuleMeta;
  try {
    meta = metaOf(module);
  } catch (err) {
    return fail('IM_AGENT_ERROR', (err as Error).message, 0);
  }
  const capPages = limits.memoryMb * PAGES_PER_MB;
  let memory: WebAssembly.Memory | null = null;
  const initial = meta.memory?.initialPages ?? 0;
  const maximum = Math.min(capPages, meta.memory?.maxPages ?? 0);
  if (meta.memory !== null) {
    if (initial > capPages) {
      return fail('IM_MEMORY_EXCEEDED', `The module starts with ${initial / PAGES_PER_MB} MiB of memory; the job allows ${limits.memoryMb} MiB.`, 0);
    }
    try {
      memory = takeMemory(initial, maximum);
    } catch (err) {
      return fail('IM_AGENT_ERROR', `could not allocate the task memory: ${(err as Error).message}`, 0);
    }
  }
  const result = runIn(module, abi, meta, memory, input, limits, capPages);
  if (memory !== null) giveBack(memory, initial, maximum);
  return result;
}

function runIn(module: WebAssembly.Module, abi: ModuleAbi, meta: ModuleMeta, memory: WebAssembly.Memory | null, input: Uint8Array, limits: JobLimits, capPages: number): RunResult {
  const limit = BigInt(limits.fuel);
  const fuel = new WebAssembly.Global({ value: 'i64', mutable: true }, limit);
  const s = new RunState(input, limits.outputBytes, fuel, memory);
  const rt: Record<string, WebAssembly.Global | WebAssembly.Memory> = { [FUEL_IMPORT]: fuel };
  if (memory !== null) rt[MEMORY_IMPORT] = memory;
  const used = (): number => {
    const left = fuel.value as bigint;
    return left < 0n ? limits.fuel : Number(limit - left);
  };

  current = s;
  try {
    // The start function, if any, runs (metered) inside the constructor.
    const instance = new WebAssembly.Instance(module, { [TASK_MODULE]: TASK, [WASI_MODULE]: WASI, [RESERVED_MODULE]: rt });
    const entry = instance.exports[ENTRY[abi].name] as () => number | undefined;
    const rc = entry();
    if (abi === 'idlemesh/1' && rc !== 0) return fail('IM_EXIT_NONZERO', `run() returned ${rc}${s.stderrTail()}`, used());
  } catch (err) {
    if (!(err instanceof ProcExit && err.code === 0)) return classify(err, s, meta, capPages, used());
  } finally {
    current = null;
  }
  return { ok: true, output: s.output(), fuel: used() };
}

function classify(err: unknown, s: RunState, meta: ModuleMeta, capPages: number, fuel: number): RunResult {
  if (err instanceof ProcExit) return fail('IM_EXIT_NONZERO', `The program exited with status ${err.code}${s.stderrTail()}`, fuel);
  if (err instanceof OutputTooLarge) return fail('IM_OUTPUT_TOO_LARGE', err.message, fuel);
  if (err instanceof FuelOut || (s.fuel.value as bigint) < 0n) return fail('IM_FUEL_EXHAUSTED', 'The task used all its fuel; raise the job fuel limit.', fuel);
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof WebAssembly.LinkError) return fail('IM_AGENT_ERROR', `link error: ${message}`, fuel);
  // A program that dies right after its memory hit the job cap most likely ran out of it.
  const pages = s.memory === null ? 0 : s.memory.buffer.byteLength / 65536;
  if (meta.memory !== null && pages >= capPages && capPages < meta.memory.maxPages) {
    return fail('IM_MEMORY_EXCEEDED', `The task trapped (${message}) after its memory reached the job cap of ${capPages / PAGES_PER_MB} MiB${s.stderrTail()}`, fuel);
  }
  if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) return fail('IM_TRAP', `${message}${s.stderrTail()}`, fuel);
  return fail('IM_TRAP', `host error: ${message}${s.stderrTail()}`, fuel);
}
