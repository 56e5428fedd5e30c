/**
 * The slice of binaryen's C API that the fuel pass needs. binaryen.js exposes
 * these functions but its typings do not; reading children through them is
 * several times faster than getExpressionInfo, which builds an object per node.
 */
import type binaryen from 'binaryen';

type Ref = number;
type Get = (e: Ref) => Ref;
type GetAt = (e: Ref, i: number) => Ref;

export interface Raw {
  _BinaryenExpressionGetId: Get;
  _BinaryenBlockGetNumChildren: Get;
  _BinaryenBlockGetChildAt: GetAt;
  _BinaryenIfGetCondition: Get;
  _BinaryenIfGetIfTrue: Get;
  _BinaryenIfGetIfFalse: Get;
  _BinaryenLoopGetBody: Get;
  _BinaryenLoopSetBody: (e: Ref, body: Ref) => void;
  _BinaryenBreakGetCondition: Get;
  _BinaryenBreakGetValue: Get;
  _BinaryenSwitchGetCondition: Get;
  _BinaryenSwitchGetValue: Get;
  _BinaryenCallGetNumOperands: Get;
  _BinaryenCallGetOperandAt: GetAt;
  _BinaryenCallIndirectGetTarget: Get;
  _BinaryenCallIndirectGetNumOperands: Get;
  _BinaryenCallIndirectGetOperandAt: GetAt;
  _BinaryenLocalSetGetValue: Get;
  _BinaryenGlobalSetGetValue: Get;
  _BinaryenLoadGetPtr: Get;
  _BinaryenStoreGetPtr: Get;
  _BinaryenStoreGetValue: Get;
  _BinaryenSIMDExtractGetVec: Get;
  _BinaryenSIMDReplaceGetVec: Get;
  _BinaryenSIMDReplaceGetValue: Get;
  _BinaryenSIMDShuffleGetLeft: Get;
  _BinaryenSIMDShuffleGetRight: Get;
  _BinaryenSIMDTernaryGetA: Get;
  _BinaryenSIMDTernaryGetB: Get;
  _BinaryenSIMDTernaryGetC: Get;
  _BinaryenSIMDShiftGetVec: Get;
  _BinaryenSIMDShiftGetShift: Get;
  _BinaryenSIMDLoadGetPtr: Get;
  _BinaryenSIMDLoadStoreLaneGetPtr: Get;
  _BinaryenSIMDLoadStoreLaneGetVec: Get;
  _BinaryenMemoryInitGetDest: Get;
  _BinaryenMemoryInitGetOffset: Get;
  _BinaryenMemoryInitGetSize: Get;
  _BinaryenMemoryInitSetSize: (e: Ref, size: Ref) => void;
  _BinaryenMemoryCopyGetDest: Get;
  _BinaryenMemoryCopyGetSource: Get;
  _BinaryenMemoryCopyGetSize: Get;
  _BinaryenMemoryCopySetSize: (e: Ref, size: Ref) => void;
  _BinaryenMemoryFillGetDest: Get;
  _BinaryenMemoryFillGetValue: Get;
  _BinaryenMemoryFillGetSize: Get;
  _BinaryenMemoryFillSetSize: (e: Ref, size: Ref) => void;
  _BinaryenUnaryGetValue: Get;
  _BinaryenBinaryGetLeft: Get;
  _BinaryenBinaryGetRight: Get;
  _BinaryenSelectGetIfTrue: Get;
  _BinaryenSelectGetIfFalse: Get;
  _BinaryenSelectGetCondition: Get;
  _BinaryenDropGetValue: Get;
  _BinaryenReturnGetValue: Get;
  _BinaryenMemoryGrowGetDelta: Get;
  _BinaryenRefIsNullGetValue: Get;
  _BinaryenRefEqGetLeft: Get;
  _BinaryenRefEqGetRight: Get;
  _BinaryenTableGetGetIndex: Get;
  _BinaryenTableSetGetIndex: Get;
  _BinaryenTableSetGetValue: Get;
  _BinaryenTableGrowGetValue: Get;
  _BinaryenTableGrowGetDelta: Get;
  _BinaryenTupleMakeGetNumOperands: Get;
  _BinaryenTupleMakeGetOperandAt: GetAt;
  _BinaryenTupleExtractGetTuple: Get;
  _BinaryenFunctionAddVar: (func: Ref, type: number) => number;
  _BinaryenFunctionSetBody: (func: Ref, body: Ref) => void;
}

export type Binaryen = typeof binaryen;

export function rawApi(b: Binaryen): Raw {
  return b as unknown as Raw;
}
