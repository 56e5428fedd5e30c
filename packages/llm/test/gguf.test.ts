/**
 * GGUF: the writer's files read back to the same metadata and tensors; the
 * random llama models are deterministic; broken files fail with
 * IM_GGUF_INVALID and a message that says what is wrong; the file source
 * reads only the tensors asked for.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImError } from '@idlemesh/protocol';
import {
  decodeTensor, encodeTensor, f16BitsToF32, f32ToF16Bits, ggufFromBytes, GgmlType, GgufValueType, llamaConfigOf, openGgufFile,
  parseGgufHeader, RANDOM_LLAMA_TOKENS, Stage, writeGguf, writeRandomLlama, type GgufValue,
} from '../src/index.js';

const SMALL = { blocks: 2, hidden: 32, heads: 4, kvHeads: 2, ff: 64, vocab: 300, ctx: 64, seed: 1, type: 'f16' } as const;

function isGgufError(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof ImError, `expected ImError, got ${String(err)}`);
    assert.equal(err.code, 'IM_GGUF_INVALID');
    assert.match(err.message, pattern);
    return true;
  };
}

describe('f16', () => {
  it('rounds to nearest even and keeps specials', () => {
    assert.equal(f32ToF16Bits(1), 0x3c00);
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00, 'rounds up to infinity');
    assert.equal(f32ToF16Bits(Infinity), 0x7c00);
    assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001, 'smallest subnormal');
    assert.equal(f32ToF16Bits(2 ** -26), 0x0000, 'below half the smallest subnormal');
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1).
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    for (let h = 0; h < 0x7c00; h += 7) assert.equal(f32ToF16Bits(f16BitsToF32(h)), h, `bits ${h} round-trip`);
  });
});

describe('GGUF writer and reader', () => {
  it('round-trips metadata of every type and tensors of F32, F16 and Q8_0', () => {
    const metadata: Array<[string, GgufValue]> = [
      ['u8', { type: GgufValueType.UINT8, value: 250 }],
      ['i8', { type: GgufValueType.INT8, value: -5 }],
      ['u16', { type: GgufValueType.UINT16, value: 65000 }],
      ['i16', { type: GgufValueType.INT16, value: -300 }],
      ['u32', { type: GgufValueType.UINT32, value: 4_000_000_000 }],
      ['i32', { type: GgufValueType.INT32, value: -7 }],
      ['f32', { type: GgufValueType.FLOAT32, value: 0.5 }],
      ['f64', { type: GgufValueType.FLOAT64, value: Math.PI }],
      ['u64', { type: GgufValueType.UINT64, value: 2n ** 60n }],
      ['i64', { type: GgufValueType.INT64, value: -(2n ** 40n) }],
      ['bool', { type: GgufValueType.BOOL, value: true }],
      ['str', { type: GgufValueType.STRING, value: 'héllo ▁wörld' }],
      ['arr', { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: ['a', '', 'ccc'] }],
      ['nums', { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: [1, -2, 3] }],
    ];
    const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 3);
    const tensors = [
      { name: 'a', dims: [64], type: GgmlType.F32, data: encodeTensor(values, GgmlType.F32) },
      { name: 'b', dims: [32, 2], type: GgmlType.F16, data: encodeTensor(values, GgmlType.F16) },
      { name: 'c', dims: [64], type: GgmlType.Q8_0, data: encodeTensor(values, GgmlType.Q8_0) },
    ];
    const bytes = writeGguf({ metadata, tensors, alignment: 64 });
    const h = parseGgufHeader(bytes);
    assert.equal(h.version, 3);
    assert.equal(h.alignment, 64);
    assert.equal(h.dataOffset % 64, 0);
    for (const [k, v] of metadata) assert.deepEqual(h.metadata.get(k), v, k);
    assert.deepEqual(h.metadata.get('general.alignment'), { type: GgufValueType.UINT32, value: 64 });
    assert.deepEqual(h.tensors.map((t) => [t.name, t.dims, t.type, t.offset % 64]), [['a', [64], 0, 0], ['b', [32, 2], 1, 0], ['c', [64], 8, 0]]);
    const src = ggufFromBytes(bytes);
    const [a, b, c] = h.tensors as [typeof h.tensors[0], typeof h.tensors[0], typeof h.tensors[0]];
    return Promise.all([src.tensorBytes(a), src.tensorBytes(b), src.tensorBytes(c)]).then(([ra, rb, rc]) => {
      assert.deepEqual(decodeTensor(a, ra), values, 'f32 is exact');
      const fb = decodeTensor(b, rb);
      const fc = decodeTensor(c, rc);
      for (let i = 0; i < 64; i++) {
        assert.ok(Math.abs(fb[i]! - values[i]!) <= Math.abs(values[i]!) * 2 ** -11 + 1e-7, `f16 ${i}`);
        assert.ok(Math.abs(fc[i]! - values[i]!) <= 3 / 127, `q8_0 ${i}: ${fc[i]} vs ${values[i]}`);
      }
    });
  });

  it('writes the same random llama for the same seed, and another for another seed', () => {
    const a = writeRandomLlama(SMALL);
    assert.deepEqual(writeRandomLlama(SMALL), a);
    assert.notDeepEqual(writeRandomLlama({ ...SMALL, seed: 2 }), a);
    const h = parseGgufHeader(a);
    const c = llamaConfigOf(h);
    assert.deepEqual({ ...c }, {
      blocks: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, ff: 64, vocab: 300, contextLength: 64,
      ropeBase: 10000, ropeDims: 8, rmsEps: c.rmsEps, tiedHead: true,
    });
    assert.ok(Math.abs(c.rmsEps - 1e-5) < 1e-9);
    // 1 embedding + 9 per block + the final norm; tied head.
    assert.equal(h.tensors.length, 1 + 9 * 2 + 1);
    const tokens = h.metadata.get('tokenizer.ggml.tokens');
    assert.ok(tokens?.type === GgufValueType.ARRAY);
    assert.equal(tokens.value.length, 300);
    assert.equal(tokens.value[RANDOM_LLAMA_TOKENS.bos], '<s>');
    assert.equal(tokens.value[RANDOM_LLAMA_TOKENS.firstByte + 10], '<0x0A>');
    assert.equal(new Set(tokens.value).size, 300, 'tokens are unique');
    const untied = parseGgufHeader(writeRandomLlama({ ...SMALL, untied: true }));
    assert.equal(llamaConfigOf(untied).tiedHead, false);
  });

  it('refuses impossible shapes', () => {
    assert.throws(() => writeRandomLlama({ ...SMALL, heads: 3 }), /multiple of heads/);
    assert.throws(() => writeRandomLlama({ ...SMALL, vocab: 100 }), /vocab must be at least/);
    assert.throws(() => writeGguf({ metadata: [], tensors: [{ name: 'x', dims: [4], type: GgmlType.F32, data: new Uint8Array(15) }] }), /15 bytes of data/);
  });
});

describe('broken GGUF files', () => {
  const good = writeRandomLlama(SMALL);

  it('bad magic', () => {
    const b = good.slice();
    b.set(new TextEncoder().encode('GGML'), 0);
    assert.throws(() => parseGgufHeader(b), isGgufError(/not a GGUF file.*"GGML"/));
  });

  it('unsupported version', () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(4, 1, true);
    assert.throws(() => parseGgufHeader(b), isGgufError(/version 1 is not supported/));
  });

  it('truncated inside the header and inside the data', () => {
    assert.throws(() => parseGgufHeader(good.subarray(0, 3)), isGgufError(/ends inside the GGUF header/));
    assert.throws(() => parseGgufHeader(good.subarray(0, 2000)), isGgufError(/ends inside the GGUF header.*truncated/));
    assert.throws(() => parseGgufHeader(good.subarray(0, good.length - 100)), isGgufError(/output_norm\.weight.*ends past the end of the file.*truncated/));
  });

  it('a tensor whose size runs past the file', () => {
    // Make output_norm.weight (the last tensor, 1-D) 1000 times longer than its data.
    const b = good.slice();
    const name = new TextEncoder().encode('output_norm.weight');
    const at = indexOf(b, name) + name.length;
    const v = new DataView(b.buffer);
    assert.equal(v.getUint32(at, true), 1, 'one dimension');
    assert.equal(v.getBigUint64(at + 4, true), 32n);
    v.setBigUint64(at + 4, 32000n, true);
    assert.throws(() => parseGgufHeader(b), isGgufError(/output_norm\.weight \(32000 F32, 128000 bytes.*ends past the end/));
  });

  it('a corrupt count', () => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(16, 2n ** 50n, true);
    assert.throws(() => parseGgufHeader(b), isGgufError(/metadata count is 1125899906842624/));
  });

  it('a tensor of the wrong shape for the model', async () => {
    const h = parseGgufHeader(good);
    const src = ggufFromBytes(good);
    const tensors = await Promise.all(h.tensors.map(async (t) => {
      if (t.name !== 'blk.1.attn_k.weight') return { name: t.name, dims: t.dims, type: t.type, data: await src.tensorBytes(t) };
      return { name: t.name, dims: [32, 8], type: GgmlType.F32, data: new Uint8Array(32 * 8 * 4) };
    }));
    const bad = writeGguf({ metadata: h.metadata, tensors });
    await assert.rejects(Stage.load(ggufFromBytes(bad), { from: 0, to: 2 }), isGgufError(/blk\.1\.attn_k\.weight is 32×8, expected 32×16.*wrong tensor size/));
    // The first layer alone does not touch it.
    const s = await Stage.load(ggufFromBytes(bad), { from: 0, to: 1 });
    assert.equal(s.tensorNames.includes('blk.1.attn_k.weight'), false);
  });

  it('an architecture other than llama', () => {
    const h = parseGgufHeader(good);
    h.metadata.set('general.architecture', { type: GgufValueType.STRING, value: 'gpt2' });
    assert.throws(() => llamaConfigOf(h), isGgufError(/runs llama models; this GGUF is "gpt2"/));
  });
});

describe('GGUF files on disk', () => {
  it('reads the header and only the tensors asked for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gguf-'));
    try {
      const bytes = writeRandomLlama({ ...SMALL, blocks: 4 });
      const path = join(dir, 'm.gguf');
      writeFileSync(path, bytes);
      const f = await openGgufFile(path);
      try {
        assert.equal(f.size, bytes.length);
        assert.deepEqual([...f.header.metadata.keys()], [...parseGgufHeader(bytes).metadata.keys()]);
        const read: string[] = [];
        const counting = { header: f.header, tensorBytes: (t: Parameters<typeof f.tensorBytes>[0]) => { read.push(t.name); return f.tensorBytes(t); } };
        const mid = await Stage.load(counting, { from: 1, to: 3 });
        assert.deepEqual(read, mid.tensorNames);
        assert.ok(read.every((n) => n.startsWith('blk.1.') || n.startsWith('blk.2.')), `read ${read.join(', ')}`);
        assert.equal(read.length, 18);
        const t = f.header.tensors.find((x) => x.name === 'blk.2.ffn_up.weight')!;
        assert.deepEqual(await f.tensorBytes(t), await ggufFromBytes(bytes).tensorBytes(t));
      } finally {
        await f.close();
      }
      writeFileSync(path, bytes.subarray(0, bytes.length - 64));
      await assert.rejects(openGgufFile(path), isGgufError(/ends past the end of the file/));
      writeFileSync(path, bytes.subarray(0, 1000));
      await assert.rejects(openGgufFile(path), isGgufError(/truncated/));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error('not found');
}
