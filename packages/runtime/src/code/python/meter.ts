/**
 * The fuel pass for Pyodide's interpreter (pyodide.asm.wasm). Every function
 * entry and every loop iteration subtracts 1 from an i64 global, and
 * memory.fill/copy also subtract 1 per 16 bytes they move; the interpreter
 * traps once the global goes negative.
 *
 * Unlike instrument/fuel.ts, a loop header does not pay for its body's
 * expression count: CPython's bytecode dispatch is one loop whose body holds
 * every opcode handler, so each bytecode would cost ~10^5. Counting calls and
 * iterations keeps fuel proportional to work, since straight-line code
 * between two of them is bounded.
 *
 * The global is imported from the runtime's reserved module, so it lives
 * outside the linear memory: nothing the Python program does, even with
 * corrupted interpreter memory, can reach it. Pyodide needs what user
 * modules may not use (legacy exception handling, dynamic-linking imports),
 * so this pass has its own walker. Runs once per Pyodide build; the result
 * is cached.
 */
import type binaryen from 'binaryen';
import { BYTES_PER_FUEL, FUEL_IMPORT, RESERVED_MODULE } from '../../abi.js';
import { childTable } from '../../instrument/children.js';
import { rawApi, type Binaryen, type Raw } from '../../instrument/raw.js';

type Ref = number;
type Children = (r: Raw, e: Ref, out: Ref[]) => void;

/** Bump when the pass changes what it counts: cached builds are keyed on it. */
export const PYODIDE_METER_VERSION = 2;

const FUEL = 'idlemesh_rt$fuel';
const BYTES_SHIFT = Math.log2(BYTES_PER_FUEL);

interface RawEh {
  _BinaryenTryGetBody: (e: Ref) => Ref;
  _BinaryenTryGetNumCatchBodies: (e: Ref) => number;
  _BinaryenTryGetCatchBodyAt: (e: Ref, i: number) => Ref;
  _BinaryenThrowGetNumOperands: (e: Ref) => number;
  _BinaryenThrowGetOperandAt: (e: Ref, i: number) => Ref;
}

/** Features of the Pyodide build that Node 20 runs; binaryen must not emit newer encodings. */
function features(b: Binaryen): number {
  const F = b.Features;
  return F.MutableGlobals | F.NontrappingFPToInt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.SignExt
    | F.ExceptionHandling | F.TailCall | F.ReferenceTypes | F.Multivalue | F.ExtendedConst | F.CallIndirectOverlong;
}

function table(b: Binaryen): Map<number, Children> {
  const t = childTable(b);
  const eh = b as unknown as RawEh;
  t.set(b.TryId, (_r, e, out) => {
    out.push(eh._BinaryenTryGetBody(e));
    const n = eh._BinaryenTryGetNumCatchBodies(e);
    for (let i = 0; i < n; i++) out.push(eh._BinaryenTryGetCatchBodyAt(e, i));
  });
  t.set(b.ThrowId, (_r, e, out) => {
    const n = eh._BinaryenThrowGetNumOperands(e);
    for (let i = 0; i < n; i++) out.push(eh._BinaryenThrowGetOperandAt(e, i));
  });
  t.set(b.RethrowId, () => {});
  t.set(b.PopId, () => {});
  return t;
}

export async function meterPyodide(bytes: Uint8Array): Promise<Uint8Array> {
  const b = (await import('binaryen')).default;
  const m = b.readBinary(bytes);
  try {
    m.setFeatures(features(b));
    m.addGlobalImport(FUEL, RESERVED_MODULE, FUEL_IMPORT, b.i64, true);
    const raw = rawApi(b);
    const kids = table(b);
    const n = m.getNumFunctions();
    for (let i = 0; i < n; i++) {
      const f = m.getFunctionByIndex(i);
      const info = b.getFunctionInfo(f);
      if (info.body === 0) continue; // imported
      meterFunction(b, raw, kids, m, f, info.body);
    }
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

function i64(m: binaryen.Module, v: number): Ref {
  // binaryen 132 takes one bigint here; its typings still say (low, high).
  return (m.i64.const as unknown as (value: bigint) => Ref)(BigInt(v));
}

function charge(b: Binaryen, m: binaryen.Module, cost: Ref): Ref[] {
  return [
    m.global.set(FUEL, m.i64.sub(m.global.get(FUEL, b.i64), cost)),
    m.if(m.i64.lt_s(m.global.get(FUEL, b.i64), i64(m, 0)), m.unreachable()),
  ];
}

function meterFunction(b: Binaryen, raw: Raw, kids: Map<number, Children>, m: binaryen.Module, f: binaryen.FunctionRef, body: Ref): void {
  const loops: Ref[] = [];
  const bulk: Ref[] = [];
  // Iterative, so that deeply nested code cannot overflow the JS stack.
  const stack: Ref[] = [body];
  while (stack.length > 0) {
    const e = stack.pop() as Ref;
    const id = raw._BinaryenExpressionGetId(e);
    if (id === b.LoopId) loops.push(e);
    else if (id === b.MemoryFillId || id === b.MemoryCopyId) bulk.push(e);
    const children = kids.get(id);
    if (children === undefined) throw new Error(`meterPyodide: unexpected expression id ${id}`);
    children(raw, e, stack);
  }
  for (const loop of loops) {
    raw._BinaryenLoopSetBody(loop, m.block(null, [...charge(b, m, i64(m, 1)), raw._BinaryenLoopGetBody(loop)], b.auto));
  }
  if (bulk.length > 0) {
    const tmp = raw._BinaryenFunctionAddVar(f, b.i32);
    for (const op of bulk) {
      const fill = raw._BinaryenExpressionGetId(op) === b.MemoryFillId;
      const size = fill ? raw._BinaryenMemoryFillGetSize(op) : raw._BinaryenMemoryCopyGetSize(op);
      const bytesCost = m.i64.shr_u(m.i64.extend_u(m.local.get(tmp, b.i32)), i64(m, BYTES_SHIFT));
      // The size operand is evaluated last, so charging inside it keeps the operands' order.
      const metered = m.block(null, [m.local.set(tmp, size), ...charge(b, m, bytesCost), m.local.get(tmp, b.i32)], b.i32);
      if (fill) raw._BinaryenMemoryFillSetSize(op, metered);
      else raw._BinaryenMemoryCopySetSize(op, metered);
    }
  }
  raw._BinaryenFunctionSetBody(f, m.block(null, [...charge(b, m, i64(m, 1)), body], b.auto));
}
