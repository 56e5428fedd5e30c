/**
 * The hot loop, hand-assembled: a WebAssembly SIMD f32 matmul, built here as
 * bytes so the package needs no toolchain. It is this module in text form:
 *
 *   (module
 *     (import "env" "memory" (memory 1))
 *     ;; out[t·rows + r] = Σ_c W[r·cols + c] · X[t·cols + c]  for r < rows, t < n
 *     ;; (byte addresses; cols a multiple of 4)
 *     (func (export "matmul") (param $w i32) (param $x i32) (param $out i32)
 *                             (param $rows i32) (param $cols i32) (param $n i32)
 *       (local $r i32) (local $t i32) (local $wp i32) (local $xp i32) (local $c i32)
 *       (local $end16 i32) (local $rowBytes i32) (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
 *       rowBytes = cols·4;  end16 = (cols & ~15)·4;  wp = w
 *       for r < rows:                       ;; one weight row, kept in L1 ...
 *         for t < n:                        ;; ... against every input column
 *           xp = x + t·rowBytes;  a0..a3 = 0;  c = 0
 *           while c < end16: a0..a3 += f32x4(wp+c+16k) · f32x4(xp+c+16k), k=0..3;  c += 64
 *           while c < rowBytes: a0 += f32x4(wp+c) · f32x4(xp+c);  c += 16
 *           a0 = (a0 + a1) + (a2 + a3)
 *           f32 out[t·rows + r] = (a0[0] + a0[1]) + (a0[2] + a0[3])
 *         wp += rowBytes)
 *
 * Each output is one dot product whose order of additions depends only on
 * cols, never on n or on which other columns are in the batch: a prompt run
 * as one batch or token by token gives bit-identical results, which the
 * pipeline's replay relies on.
 */

const I32 = 0x7f, V128 = 0x7b;
const op = {
  block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Const: 0x41, i32Add: 0x6a, i32Mul: 0x6c, i32And: 0x71, i32Shl: 0x74, i32GeU: 0x4f,
  f32Add: 0x92, f32Store: 0x38,
  simd: 0xfd,
} as const;
// SIMD sub-opcodes (after 0xfd, as unsigned LEB128).
const simd = { v128Load: 0x00, v128Const: 0x0c, f32x4ExtractLane: 0x1f, f32x4Add: 0xe4, f32x4Mul: 0xe6 } as const;
const BLOCK_VOID = 0x40;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const name = (s: string): number[] => [...uleb(s.length), ...new TextEncoder().encode(s)];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

// Locals: params 0..5, then i32 6..12, v128 13..16.
const W = 0, X = 1, OUT = 2, ROWS = 3, COLS = 4, N = 5;
const R = 6, T = 7, WP = 8, XP = 9, C = 10, END16 = 11, ROWBYTES = 12;
const A = [13, 14, 15, 16] as const;

const get = (i: number): number[] => [op.localGet, i];
const set = (i: number): number[] => [op.localSet, i];
const i32 = (v: number): number[] => [op.i32Const, ...sleb(v)];
const s = (sub: number, ...imm: number[]): number[] => [op.simd, ...uleb(sub), ...imm];
/** v128.load (base + c) with a static byte offset; alignment hint 4 bytes. */
const load = (base: number, offset: number): number[] => [...get(base), ...get(C), op.i32Add, ...s(simd.v128Load, 2, ...uleb(offset))];
/** a += load(wp + c + off) · load(xp + c + off) */
const fma = (acc: number, offset: number): number[] => [...get(acc), ...load(WP, offset), ...load(XP, offset), ...s(simd.f32x4Mul), ...s(simd.f32x4Add), ...set(acc)];
/** block { loop { br_if 1 (a >= b); body; br 0 } } */
const whileLt = (a: number, b: number, body: number[]): number[] => [
  op.block, BLOCK_VOID, op.loop, BLOCK_VOID,
  ...get(a), ...get(b), op.i32GeU, op.brIf, 1,
  ...body,
  op.br, 0, op.end, op.end,
];
const inc = (local: number, by: number): number[] => [...get(local), ...i32(by), op.i32Add, ...set(local)];

function body(): number[] {
  const dot = [
    // xp = x + t·rowBytes
    ...get(X), ...get(T), ...get(ROWBYTES), op.i32Mul, op.i32Add, ...set(XP),
    ...s(simd.v128Const, ...new Array<number>(16).fill(0)), op.localTee, A[0], op.localTee, A[1], op.localTee, A[2], ...set(A[3]),
    ...i32(0), ...set(C),
    ...whileLt(C, END16, [...fma(A[0], 0), ...fma(A[1], 16), ...fma(A[2], 32), ...fma(A[3], 48), ...inc(C, 64)]),
    ...whileLt(C, ROWBYTES, [...fma(A[0], 0), ...inc(C, 16)]),
    ...get(A[0]), ...get(A[1]), ...s(simd.f32x4Add), ...get(A[2]), ...get(A[3]), ...s(simd.f32x4Add), ...s(simd.f32x4Add), ...set(A[0]),
    // address out + ((t·rows + r) << 2)
    ...get(OUT), ...get(T), ...get(ROWS), op.i32Mul, ...get(R), op.i32Add, ...i32(2), op.i32Shl, op.i32Add,
    ...get(A[0]), ...s(simd.f32x4ExtractLane, 0), ...get(A[0]), ...s(simd.f32x4ExtractLane, 1), op.f32Add,
    ...get(A[0]), ...s(simd.f32x4ExtractLane, 2), ...get(A[0]), ...s(simd.f32x4ExtractLane, 3), op.f32Add, op.f32Add,
    op.f32Store, 2, 0,
    ...inc(T, 1),
  ];
  return [
    ...get(COLS), ...i32(2), op.i32Shl, ...set(ROWBYTES),
    ...get(COLS), ...i32(-16), op.i32And, ...i32(2), op.i32Shl, ...set(END16),
    ...get(W), ...set(WP),
    ...whileLt(R, ROWS, [
      ...i32(0), ...set(T),
      ...whileLt(T, N, dot),
      ...get(WP), ...get(ROWBYTES), op.i32Add, ...set(WP),
      ...inc(R, 1),
    ]),
    op.end,
  ];
}

function assemble(): Uint8Array {
  const fn = [2, ...uleb(7), I32, ...uleb(4), V128, ...body()];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, I32, I32, I32, I32, I32, I32, 0]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, ...uleb(1)]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('matmul'), 0x00, 0]),
    ...section(10, [1, ...uleb(fn.length), ...fn]),
  ]);
}

/** The module's bytes (valid wherever WebAssembly SIMD is). */
export const MATMUL_WASM: Uint8Array = assemble();
