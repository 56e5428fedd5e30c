/**
 * One QuickJS interpreter (its own wasm instance) for one task. The guest
 * gets a bare context plus a captured console and a seeded Math.random; it
 * has no host objects at all.
 *
 * Fuel is counted in the interrupt handler (see meter.ts): its call count is
 * a function of the program only, and lives on the host where the guest
 * cannot reach it.
 */
import { newQuickJSWASMModule, newVariant, RELEASE_SYNC, type QuickJSContext, type QuickJSHandle, type QuickJSWASMModule } from 'quickjs-emscripten';
import type { RealClock, GuestClock } from '../determinism.js';
import { CappedText } from '../output.js';
import { JS_FUEL_PER_INTERRUPT } from './meter.js';
import { result } from '../task.js';
import type { CodeResult, CodeTask } from '../types.js';

/**
 * QuickJS's own stack limit. It must trip before V8's native stack runs out
 * under the interpreter's frames, so recursion ends in a catchable,
 * deterministic InternalError rather than a host RangeError.
 */
const MAX_STACK_BYTES = 256 * 1024;
const MB = 1024 * 1024;

/**
 * Installs console and Math.random. Guest code, so formatting is metered
 * like the rest; `write` is the only host function and stays in the closure.
 */
const PRELUDE = `(function (write, seed) {
  'use strict';
  const show = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return String(v.stack ? v + '\\n' + v.stack : v);
    if (typeof v === 'object' && v !== null) {
      try { const j = JSON.stringify(v); if (j !== undefined) return j; } catch (e) { /* cyclic or BigInt */ }
    }
    return String(v);
  };
  const line = (args) => args.map(show).join(' ') + '\\n';
  const out = (...args) => write(1, line(args));
  const err = (...args) => write(2, line(args));
  globalThis.console = { log: out, info: out, debug: out, error: err, warn: err, trace: err };
  let s = seed >>> 0;
  // mulberry32
  Math.random = function random() {
    s = (s + 0x6D2B79F5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})`;

/** A fresh QuickJS instance (its own memory) of the module the sandbox compiled. */
export function loadQuickJs(module: WebAssembly.Module): Promise<QuickJSWASMModule> {
  return newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmModule: module }));
}

type Stop = 'fuel' | 'time' | null;

export function runJs(qjs: QuickJSWASMModule, task: CodeTask, clock: GuestClock, realNow: RealClock): CodeResult {
  const { fuel: limit, memoryMb, outputBytes, timeoutMs } = task.limits;
  const out = new CappedText(outputBytes);
  const err = new CappedText(outputBytes);
  const rt = qjs.newRuntime();
  let interrupts = 0;
  let stop: Stop = null;
  const deadline = realNow() + timeoutMs;
  rt.setMemoryLimit(memoryMb * MB);
  rt.setMaxStackSize(MAX_STACK_BYTES);
  let counting = false;
  rt.setInterruptHandler(() => {
    if (!counting) return false;
    if (stop !== null) return true;
    interrupts++;
    if (interrupts * JS_FUEL_PER_INTERRUPT > limit) stop = 'fuel';
    else if (realNow() > deadline) stop = 'time';
    return stop !== null;
  });
  const ctx = rt.newContext();
  let crashed = false;
  try {
    prelude(ctx, task.seed ?? 0, out, err);
    clock.reset();
    counting = true;
    let phase: 'program' | 'tests' = 'program';
    const stopped = (): boolean => stop !== null;
    let failure = evaluate(ctx, task.program, 'program.js', stopped);
    if (failure === null) {
      phase = 'tests';
      failure = evaluate(ctx, task.tests, 'tests.js', stopped);
    }
    const fuel = Math.min(interrupts * JS_FUEL_PER_INTERRUPT, limit);
    const why = stop as Stop;
    if (why === 'fuel') return result('timed-out', limit, out.text(), err.text(), 'IM_FUEL_EXHAUSTED', `The task used all its fuel (${limit}) in the ${phase}.`);
    if (why === 'time') return result('timed-out', fuel, out.text(), err.text(), 'IM_TIMEOUT', `The task ran past its wall-clock cap of ${timeoutMs} ms in the ${phase}.`);
    if (failure === null) return result('passed', fuel, out.text(), err.text());
    err.write(`${failure.stack}\n`);
    if (failure.outOfMemory) return result('errored', fuel, out.text(), err.text(), 'IM_MEMORY_EXCEEDED', `The ${phase} needed more than the ${memoryMb} MiB allowed.`);
    return phase === 'program'
      ? result('errored', fuel, out.text(), err.text(), 'IM_TRAP', `The program threw ${failure.summary}`)
      : result('failed', fuel, out.text(), err.text(), 'IM_TRAP', `The tests threw ${failure.summary}`);
  } catch (e) {
    // A host-level failure inside the interpreter (V8 stack overflow, wasm trap): the instance is unusable.
    // Where a host-level failure happens depends on the JIT, not the program: charge the whole limit.
    crashed = true;
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    return result('errored', limit, out.text(), err.text(), 'IM_TRAP', `The interpreter crashed: ${message.slice(0, 500)}`);
  } finally {
    if (!crashed) {
      ctx.dispose();
      rt.dispose();
    }
  }
}

function prelude(ctx: QuickJSContext, seed: number, out: CappedText, err: CappedText): void {
  const write = ctx.newFunction('write', (fd, text) => {
    (ctx.getNumber(fd) === 2 ? err : out).write(ctx.getString(text));
  });
  const seedHandle = ctx.newNumber(seed);
  try {
    const fn = ctx.unwrapResult(ctx.evalCode(PRELUDE, 'prelude.js'));
    try {
      ctx.unwrapResult(ctx.callFunction(fn, ctx.undefined, write, seedHandle)).dispose();
    } finally {
      fn.dispose();
    }
  } finally {
    seedHandle.dispose();
    write.dispose();
  }
}

interface Thrown {
  summary: string;
  stack: string;
  outOfMemory: boolean;
}

/** Runs one source and its pending jobs; null when nothing was thrown. */
function evaluate(ctx: QuickJSContext, source: string, filename: string, stopped: () => boolean): Thrown | null {
  const r = ctx.evalCode(source, filename, { type: 'global' });
  if (r.error !== undefined) return describe(ctx, r.error, stopped);
  r.value.dispose();
  const jobs = ctx.runtime.executePendingJobs();
  if (jobs.error !== undefined) return describe(ctx, jobs.error, stopped);
  return null;
}

const INTERRUPTED: Thrown = { summary: 'InternalError: interrupted', stack: 'InternalError: interrupted', outOfMemory: false };

/**
 * Reads what was thrown without trusting it: any value may be thrown, and
 * reading an Error's fields can run the guest's getters (still metered).
 */
function describe(ctx: QuickJSContext, thrown: QuickJSHandle, stopped: () => boolean): Thrown {
  try {
    // After a stop every guest getter would be interrupted again; the verdict does not need the text.
    if (stopped()) return INTERRUPTED;
    const text = (h: QuickJSHandle): string => {
      try {
        return ctx.typeof(h) === 'string' ? ctx.getString(h) : String(ctx.dump(h) as unknown);
      } finally {
        h.dispose();
      }
    };
    if (ctx.typeof(thrown) === 'object' && !isNull(ctx, thrown)) {
      const name = text(ctx.getProp(thrown, 'name'));
      const message = text(ctx.getProp(thrown, 'message'));
      const stack = text(ctx.getProp(thrown, 'stack'));
      const summary = name === 'undefined' ? `a non-Error object ${safeJson(ctx.dump(thrown))}` : `${name}: ${message}`;
      return { summary: summary.slice(0, 500), stack: `${summary}\n${stack === 'undefined' ? '' : stack}`.trimEnd(), outOfMemory: name === 'InternalError' && message === 'out of memory' };
    }
    const value = ctx.typeof(thrown) === 'string' ? JSON.stringify(ctx.getString(thrown)) : safeJson(ctx.dump(thrown));
    return { summary: `a non-Error value ${value}`.slice(0, 500), stack: `uncaught ${value}`, outOfMemory: false };
  } catch {
    return { summary: 'an exception that could not be read', stack: 'uncaught exception', outOfMemory: false };
  } finally {
    thrown.dispose();
  }
}

function isNull(ctx: QuickJSContext, h: QuickJSHandle): boolean {
  const n = ctx.null;
  return ctx.eq(h, n);
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
