/**
 * GGUF (llama.cpp's model file, version 3) as data: metadata value types,
 * ggml tensor types and their block sizes, the parsed header.
 *
 * Layout: "GGUF" | u32 version | u64 tensor count | u64 metadata count |
 * metadata (key, type, value)* | tensor infos (name, dims, type, offset)* |
 * padding to `general.alignment` (default 32) | tensor data, each tensor at
 * its offset from the start of the data section (a multiple of the
 * alignment). Everything is little-endian; dims are innermost first (ne0 is
 * the length of a row).
 */

/** Metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Tensor element types (ggml_type); the ones this package can decode are listed in DECODABLE. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

/** [elements per block, bytes per block] for each type whose size is known (sizes let a reader check the file before decoding). */
export const BLOCK: Readonly<Partial<Record<GgmlType, readonly [number, number]>>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.Q4_0]: [32, 18],
  [GgmlType.Q4_1]: [32, 20],
  [GgmlType.Q5_0]: [32, 22],
  [GgmlType.Q5_1]: [32, 24],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.Q8_1]: [32, 36],
  [GgmlType.Q2_K]: [256, 84],
  [GgmlType.Q3_K]: [256, 110],
  [GgmlType.Q4_K]: [256, 144],
  [GgmlType.Q5_K]: [256, 176],
  [GgmlType.Q6_K]: [256, 210],
  [GgmlType.Q8_K]: [256, 292],
};

/** Types decodeTensor() turns into f32. */
export const DECODABLE: readonly GgmlType[] = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0];

export type GgufScalar = number | bigint | boolean | string;

/** A metadata value with its type, so a written file reads back to the same types. */
export type GgufValue =
  | { type: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar }
  | { type: GgufValueType.ARRAY; itemType: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar[] };

export interface GgufTensorInfo {
  name: string;
  /** Innermost first: dims[0] is the row length. */
  dims: number[];
  type: GgmlType;
  /** From the start of the data section. */
  offset: number;
  /** Bytes of data; undefined for a type whose block size this reader does not know. */
  bytes: number | undefined;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
}

/** Elements of a tensor. */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Bytes a tensor of this type and shape takes, or undefined when the type's block size is unknown. */
export function tensorBytes(type: GgmlType, dims: readonly number[]): number | undefined {
  const b = BLOCK[type];
  if (!b) return undefined;
  const n = elementCount(dims);
  if ((dims[0] ?? 1) % b[0] !== 0) return undefined;
  return (n / b[0]) * b[1];
}
