/**
 * Children of each expression kind the runtime accepts, in evaluation order.
 * A kind missing from the table is refused at upload: the fuel pass must see
 * every node to count it, and unknown kinds (GC, exceptions, threads) are
 * outside what idlemesh runs deterministically.
 */
import type { Binaryen, Raw } from './raw.js';

type Ref = number;
type Children = (r: Raw, e: Ref, out: Ref[]) => void;

function list(count: (e: Ref) => number, at: (e: Ref, i: number) => Ref): (e: Ref, out: Ref[]) => void {
  return (e, out) => {
    const n = count(e);
    for (let i = 0; i < n; i++) out.push(at(e, i));
  };
}

function push(out: Ref[], ...refs: Ref[]): void {
  // Absent optional children (if without else, br without value) read as 0.
  for (const r of refs) if (r !== 0) out.push(r);
}

export function childTable(b: Binaryen): Map<number, Children> {
  const t = new Map<number, Children>();
  const leaf: Children = () => {};
  for (const id of [b.NopId, b.LocalGetId, b.GlobalGetId, b.ConstId, b.MemorySizeId, b.UnreachableId, b.DataDropId, b.RefNullId, b.RefFuncId, b.TableSizeId]) t.set(id, leaf);
  t.set(b.BlockId, (r, e, out) => list(r._BinaryenBlockGetNumChildren, r._BinaryenBlockGetChildAt)(e, out));
  t.set(b.IfId, (r, e, out) => push(out, r._BinaryenIfGetCondition(e), r._BinaryenIfGetIfTrue(e), r._BinaryenIfGetIfFalse(e)));
  t.set(b.LoopId, (r, e, out) => push(out, r._BinaryenLoopGetBody(e)));
  t.set(b.BreakId, (r, e, out) => push(out, r._BinaryenBreakGetValue(e), r._BinaryenBreakGetCondition(e)));
  t.set(b.SwitchId, (r, e, out) => push(out, r._BinaryenSwitchGetValue(e), r._BinaryenSwitchGetCondition(e)));
  t.set(b.CallId, (r, e, out) => list(r._BinaryenCallGetNumOperands, r._BinaryenCallGetOperandAt)(e, out));
  t.set(b.CallIndirectId, (r, e, out) => {
    list(r._BinaryenCallIndirectGetNumOperands, r._BinaryenCallIndirectGetOperandAt)(e, out);
    push(out, r._BinaryenCallIndirectGetTarget(e));
  });
  t.set(b.LocalSetId, (r, e, out) => push(out, r._BinaryenLocalSetGetValue(e)));
  t.set(b.GlobalSetId, (r, e, out) => push(out, r._BinaryenGlobalSetGetValue(e)));
  t.set(b.LoadId, (r, e, out) => push(out, r._BinaryenLoadGetPtr(e)));
  t.set(b.StoreId, (r, e, out) => push(out, r._BinaryenStoreGetPtr(e), r._BinaryenStoreGetValue(e)));
  t.set(b.SIMDExtractId, (r, e, out) => push(out, r._BinaryenSIMDExtractGetVec(e)));
  t.set(b.SIMDReplaceId, (r, e, out) => push(out, r._BinaryenSIMDReplaceGetVec(e), r._BinaryenSIMDReplaceGetValue(e)));
  t.set(b.SIMDShuffleId, (r, e, out) => push(out, r._BinaryenSIMDShuffleGetLeft(e), r._BinaryenSIMDShuffleGetRight(e)));
  t.set(b.SIMDTernaryId, (r, e, out) => push(out, r._BinaryenSIMDTernaryGetA(e), r._BinaryenSIMDTernaryGetB(e), r._BinaryenSIMDTernaryGetC(e)));
  t.set(b.SIMDShiftId, (r, e, out) => push(out, r._BinaryenSIMDShiftGetVec(e), r._BinaryenSIMDShiftGetShift(e)));
  t.set(b.SIMDLoadId, (r, e, out) => push(out, r._BinaryenSIMDLoadGetPtr(e)));
  t.set(b.SIMDLoadStoreLaneId, (r, e, out) => push(out, r._BinaryenSIMDLoadStoreLaneGetPtr(e), r._BinaryenSIMDLoadStoreLaneGetVec(e)));
  t.set(b.MemoryInitId, (r, e, out) => push(out, r._BinaryenMemoryInitGetDest(e), r._BinaryenMemoryInitGetOffset(e), r._BinaryenMemoryInitGetSize(e)));
  t.set(b.MemoryCopyId, (r, e, out) => push(out, r._BinaryenMemoryCopyGetDest(e), r._BinaryenMemoryCopyGetSource(e), r._BinaryenMemoryCopyGetSize(e)));
  t.set(b.MemoryFillId, (r, e, out) => push(out, r._BinaryenMemoryFillGetDest(e), r._BinaryenMemoryFillGetValue(e), r._BinaryenMemoryFillGetSize(e)));
  t.set(b.UnaryId, (r, e, out) => push(out, r._BinaryenUnaryGetValue(e)));
  t.set(b.BinaryId, (r, e, out) => push(out, r._BinaryenBinaryGetLeft(e), r._BinaryenBinaryGetRight(e)));
  t.set(b.SelectId, (r, e, out) => push(out, r._BinaryenSelectGetIfTrue(e), r._BinaryenSelectGetIfFalse(e), r._BinaryenSelectGetCondition(e)));
  t.set(b.DropId, (r, e, out) => push(out, r._BinaryenDropGetValue(e)));
  t.set(b.ReturnId, (r, e, out) => push(out, r._BinaryenReturnGetValue(e)));
  t.set(b.MemoryGrowId, (r, e, out) => push(out, r._BinaryenMemoryGrowGetDelta(e)));
  t.set(b.RefIsNullId, (r, e, out) => push(out, r._BinaryenRefIsNullGetValue(e)));
  t.set(b.RefEqId, (r, e, out) => push(out, r._BinaryenRefEqGetLeft(e), r._BinaryenRefEqGetRight(e)));
  t.set(b.TableGetId, (r, e, out) => push(out, r._BinaryenTableGetGetIndex(e)));
  t.set(b.TableSetId, (r, e, out) => push(out, r._BinaryenTableSetGetIndex(e), r._BinaryenTableSetGetValue(e)));
  t.set(b.TableGrowId, (r, e, out) => push(out, r._BinaryenTableGrowGetValue(e), r._BinaryenTableGrowGetDelta(e)));
  t.set(b.TupleMakeId, (r, e, out) => list(r._BinaryenTupleMakeGetNumOperands, r._BinaryenTupleMakeGetOperandAt)(e, out));
  t.set(b.TupleExtractId, (r, e, out) => push(out, r._BinaryenTupleExtractGetTuple(e)));
  return t;
}
