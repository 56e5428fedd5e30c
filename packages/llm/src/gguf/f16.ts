/**
 * IEEE half precision by hand: Node 20 has no Float16Array. Conversion from
 * f32 rounds to nearest, ties to even (as x86's F16C, which llama.cpp uses).
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to x (round to nearest even; overflow → ±Inf; NaN stays NaN). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  // Re-bias: f32 exponent 127, f16 exponent 15.
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal in f16 (or zero): shift the mantissa with its hidden bit in.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m += 1;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to Inf).
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1;
  return h;
}

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

/** The value of an f16 bit pattern. */
export function f16BitsToF32(h: number): number {
  return F16_TABLE[h & 0xffff]!;
}

/** Rounds every element to the nearest f16 value, in place. */
export function roundToF16(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = F16_TABLE[f32ToF16Bits(a[i]!)]!;
  return a;
}

export function encodeF16(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16Bits(a[i]!);
  return out;
}

export function decodeF16(h: Uint16Array, out: Float32Array = new Float32Array(h.length)): Float32Array {
  for (let i = 0; i < h.length; i++) out[i] = F16_TABLE[h[i]!]!;
  return out;
}
