/**
 * The fuel pass. Each function entry and each loop header subtracts a static
 * cost from an i64 fuel global and traps once it goes negative. The cost of a
 * scope is its number of expression nodes, not counting the bodies of loops
 * nested in it (those pay at their own header, once per iteration). Bulk
 * memory instructions also pay for the bytes they move, at run time.
 *
 * Everything here depends only on the module's bytes and the binaryen
 * version, so every machine that runs the instrumented module counts the same.
 */
import type binaryen from 'binaryen';
import { ImError } from '@idlemesh/protocol';
import { BYTES_PER_FUEL } from '../abi.js';
import { childTable } from './children.js';
import { rawApi, type Binaryen, type Raw } from './raw.js';

type Ref = number;

const BYTES_SHIFT = Math.log2(BYTES_PER_FUEL);

export const FUEL_GLOBAL = 'idlemesh_rt$fuel';

export function meterModule(b: Binaryen, m: binaryen.Module): void {
  const raw = rawApi(b);
  const table = childTable(b);
  const n = m.getNumFunctions();
  for (let i = 0; i < n; i++) {
    const f = m.getFunctionByIndex(i);
    const info = b.getFunctionInfo(f);
    if (info.body === 0) continue; // imported
    meterFunction(b, raw, table, m, f, info.body);
  }
}

// binaryen 132 takes one bigint here; its typings still say (low, high).
function i64(m: binaryen.Module, v: number): Ref {
  return (m.i64.const as unknown as (value: bigint) => Ref)(BigInt(v));
}

function charge(b: Binaryen, m: binaryen.Module, cost: Ref): Ref[] {
  return [
    m.global.set(FUEL_GLOBAL, m.i64.sub(m.global.get(FUEL_GLOBAL, b.i64), cost)),
    m.if(m.i64.lt_s(m.global.get(FUEL_GLOBAL, b.i64), i64(m, 0)), m.unreachable()),
  ];
}

function staticCharge(b: Binaryen, m: binaryen.Module, cost: number): Ref[] {
  return charge(b, m, i64(m, Math.max(1, cost)));
}

function meterFunction(
  b: Binaryen,
  raw: Raw,
  table: ReturnType<typeof childTable>,
  m: binaryen.Module,
  f: binaryen.FunctionRef,
  body: Ref,
): void {
  const loops: Ref[] = [];
  const bulk: Ref[] = [];
  const stack: Ref[] = [];

  // Iterative so that deeply nested code cannot overflow the JS stack.
  const scope = (root: Ref): number => {
    let cost = 0;
    stack.push(root);
    while (stack.length > 0) {
      const e = stack.pop() as Ref;
      cost++;
      const id = raw._BinaryenExpressionGetId(e);
      if (id === b.LoopId) {
        loops.push(e);
        continue;
      }
      const children = table.get(id);
      if (children === undefined) {
        throw new ImError('IM_WASM_INVALID', `The module uses an instruction idlemesh does not run (${expressionName(b, id)}); see docs/wasm-abi.md for the supported features.`);
      }
      if (id === b.MemoryFillId || id === b.MemoryCopyId || id === b.MemoryInitId) bulk.push(e);
      children(raw, e, stack);
    }
    return cost;
  };

  const entryCost = scope(body);
  while (loops.length > 0) {
    const loop = loops.pop() as Ref;
    const loopBody = raw._BinaryenLoopGetBody(loop);
    const cost = scope(loopBody);
    raw._BinaryenLoopSetBody(loop, m.block(null, [...staticCharge(b, m, cost), loopBody], b.auto));
  }
  if (bulk.length > 0) meterBulk(b, raw, m, f, bulk);
  raw._BinaryenFunctionSetBody(f, m.block(null, [...staticCharge(b, m, entryCost), body], b.auto));
}

function expressionName(b: Binaryen, id: number): string {
  const key = Object.keys(b).find((k) => k.endsWith('Id') && (b as unknown as Record<string, unknown>)[k] === id);
  return key === undefined ? `expression id ${id}` : key.slice(0, -2);
}

/**
 * The size operand is evaluated last in memory.fill/copy/init, so charging
 * inside that operand's slot keeps the evaluation order of the other operands.
 */
function meterBulk(b: Binaryen, raw: Raw, m: binaryen.Module, f: binaryen.FunctionRef, ops: Ref[]): void {
  const tmp = raw._BinaryenFunctionAddVar(f, b.i32);
  for (const op of ops) {
    const id = raw._BinaryenExpressionGetId(op);
    const [get, set] =
      id === b.MemoryFillId ? [raw._BinaryenMemoryFillGetSize, raw._BinaryenMemoryFillSetSize]
      : id === b.MemoryCopyId ? [raw._BinaryenMemoryCopyGetSize, raw._BinaryenMemoryCopySetSize]
      : [raw._BinaryenMemoryInitGetSize, raw._BinaryenMemoryInitSetSize];
    const size = get(op);
    const bytesCost = m.i64.shr_u(m.i64.extend_u(m.local.get(tmp, b.i32)), i64(m, BYTES_SHIFT));
    set(op, m.block(null, [m.local.set(tmp, size), ...charge(b, m, bytesCost), m.local.get(tmp, b.i32)], b.i32));
  }
}
