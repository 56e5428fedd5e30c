/**
 * The pipeline engine on random-weight llama models made in the test:
 * the SIMD kernel against the JS one, frames and their refusals, split runs
 * bit-identical to unsplit ones (1, 2, 3 stages; 4 and 8 blocks), batched
 * equal to token by token, and a stage killed mid-generation replaced and
 * replayed with the generated tokens equal to an uninterrupted run.
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import {
  createKernel, decodeFrame, encodeFrame, FRAME_HEADER_BYTES, ggufFromBytes, LocalStageTransport, PipelineSession, Rng, splitLayers, Stage,
  wasmSimdAvailable, writeRandomLlama, type Frame, type GgufSource, type KernelChoice, type PipelineEvent, type StageTransport,
} from '../src/index.js';

const BASE = { heads: 4, kvHeads: 2, vocab: 320, ctx: 128, type: 'f16' } as const;
/** 4 blocks; ff 168 is not a multiple of 16, so the kernel's 4-wide tail runs too. */
const FOUR = { ...BASE, blocks: 4, hidden: 64, ff: 168, seed: 11 };
const EIGHT = { ...BASE, blocks: 8, hidden: 96, heads: 6, ff: 200, seed: 12, untied: true };

const PROMPT = [1, 300, 260, 270, 299, 310, 280, 265, 290, 301, 302];

function same(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

async function stagesFor(src: GgufSource, n: number, kernel: KernelChoice = 'auto'): Promise<Stage[]> {
  const blocks = Number(src.header.metadata.get('llama.block_count')?.value);
  return Promise.all(splitLayers(blocks, n).map((r) => Stage.load(src, { ...r, kernel })));
}

function session(stages: Stage[]): PipelineSession {
  return new PipelineSession({ stages: stages.map((s) => new LocalStageTransport(s)) });
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('matmul kernels', () => {
  it('WASM SIMD and JS agree within float rounding, odd shapes and batches included', () => {
    assert.ok(wasmSimdAvailable(), 'Node 20 runs WebAssembly SIMD');
    const wasm = createKernel('auto');
    const js = createKernel('js');
    assert.equal(wasm.kind, 'wasm-simd');
    assert.equal(js.kind, 'js');
    const rng = new Rng(5);
    for (const [rows, cols, n] of [[1, 4, 1], [7, 12, 3], [64, 64, 1], [33, 200, 5], [5, 7, 2], [320, 96, 4]] as const) {
      const w = Float32Array.from({ length: rows * cols }, () => rng.next() * 2 - 1);
      const x = Float32Array.from({ length: cols * n }, () => rng.next() * 2 - 1);
      const a = new Float32Array(rows * n);
      const b = new Float32Array(rows * n);
      wasm.matmul(wasm.upload(w, rows, cols), x, n, a);
      js.matmul(js.upload(w, rows, cols), x, n, b);
      // An exact reference in f64.
      for (let t = 0; t < n; t++) {
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[t * cols + c]!;
          assert.ok(Math.abs(a[t * rows + r]! - s) < 1e-5 * Math.sqrt(cols), `wasm ${rows}×${cols}×${n} [${t},${r}]: ${a[t * rows + r]} vs ${s}`);
          assert.ok(Math.abs(b[t * rows + r]! - s) < 1e-5 * Math.sqrt(cols), `js ${rows}×${cols}×${n} [${t},${r}]`);
        }
      }
      // Each column alone gives the same bits as in the batch: what replay relies on.
      for (let t = 0; t < n; t++) {
        const one = new Float32Array(rows);
        const m = wasm.upload(w, rows, cols);
        wasm.matmul(m, x.subarray(t * cols, (t + 1) * cols), 1, one);
        assert.ok(same(one, a.subarray(t * rows, (t + 1) * rows)), `column ${t} alone`);
      }
    }
  });

  it('a whole forward pass agrees between the kernels within 1e-3', async () => {
    const src = ggufFromBytes(writeRandomLlama(FOUR));
    const [w] = await stagesFor(src, 1, 'wasm-simd');
    const [j] = await stagesFor(src, 1, 'js');
    assert.equal(w!.kernel.kind, 'wasm-simd');
    assert.equal(j!.kernel.kind, 'js');
    const a = await session([w!]).logits(PROMPT);
    const b = await session([j!]).logits(PROMPT);
    for (let i = 0; i < a.length; i++) assert.ok(maxAbs(a[i]!, b[i]!) < 1e-3, `position ${i}: ${maxAbs(a[i]!, b[i]!)}`);
  });
});

describe('frames', () => {
  const hidden = Float32Array.from({ length: 2 * 8 }, (_, i) => (i - 8) / 4);

  it('round-trip tokens, hidden states (f16 and f32) and logits', () => {
    const frames: Frame[] = [
      { kind: 'tokens', position: 3, tokens: Uint32Array.from([1, 2, 70000]), allLogits: true },
      { kind: 'hidden', position: 5, count: 2, width: 8, hidden, allLogits: false },
      { kind: 'logits', position: 6, count: 1, width: 4, logits: Float32Array.from([0.1, -2, 3.5, 1e-7]) },
    ];
    for (const f of frames) assert.deepEqual(decodeFrame(encodeFrame(f)), f);
    assert.equal(encodeFrame(frames[1]!).length, FRAME_HEADER_BYTES + 16 * 2, 'f16 hidden: 2 bytes a value');
    assert.equal(encodeFrame(frames[1]!, { hiddenType: 'f32' }).length, FRAME_HEADER_BYTES + 16 * 4);
    assert.deepEqual(decodeFrame(encodeFrame(frames[1]!, { hiddenType: 'f32' })), frames[1]);
  });

  it('refuses bad frames with IM_PIPELINE_FRAME', () => {
    const good = encodeFrame({ kind: 'hidden', position: 0, count: 2, width: 8, hidden, allLogits: false });
    const patch = (at: number, f: (v: DataView) => void): Uint8Array => {
      const b = good.slice();
      f(new DataView(b.buffer));
      return at < 0 ? b.subarray(0, b.length + at) : b;
    };
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['short', good.subarray(0, 10), /shorter than its 24-byte header/],
      ['magic', patch(0, (v) => v.setUint8(0, 0x41)), /bad magic/],
      ['version', patch(0, (v) => v.setUint8(4, 2)), /version 2/],
      ['kind', patch(0, (v) => v.setUint8(5, 9)), /not a valid combination/],
      ['dtype', patch(0, (v) => v.setUint8(6, 1)), /not a valid combination/],
      ['flags', patch(0, (v) => v.setUint8(7, 4)), /unknown frame flags/],
      ['rows', patch(0, (v) => v.setUint32(12, 0, true)), /0 rows/],
      ['declared length', patch(0, (v) => v.setUint32(20, 30, true)), /says 30 payload bytes/],
      ['cut', patch(-1, () => undefined), /cut or padded/],
      ['huge', patch(0, (v) => { v.setUint32(12, 1 << 20, true); v.setUint32(16, 1 << 22, true); }), /over the .*limit/],
    ];
    for (const [name, bytes, pattern] of cases) {
      assert.throws(() => decodeFrame(bytes), (err: unknown) => err instanceof ImError && err.code === 'IM_PIPELINE_FRAME' && pattern.test(err.message), name);
    }
  });
});

for (const [label, opts] of [['4-block', FOUR], ['8-block', EIGHT]] as const) {
  describe(`a ${label} model split into stages`, () => {
    let src: GgufSource;
    let whole: Float32Array[];

    before(async () => {
      src = ggufFromBytes(writeRandomLlama(opts));
      whole = await session(await stagesFor(src, 1)).logits(PROMPT);
    });

    it('has sane logits', () => {
      const all = whole.flatMap((r) => [...r]);
      const rms = Math.sqrt(all.reduce((a, b) => a + b * b, 0) / all.length);
      assert.ok(rms > 0.5 && rms < 5, `logit rms ${rms}`);
      assert.ok(all.every(Number.isFinite));
      assert.ok(!same(whole[0]!, whole[1]!), 'positions differ');
    });

    for (const n of [2, 3]) {
      it(`${n} stages give bit-identical logits to 1`, async () => {
        const stages = await stagesFor(src, n);
        assert.equal(stages.length, n);
        assert.deepEqual(stages.map((s) => [s.first, s.last]), stages.map((_, i) => [i === 0, i === n - 1]));
        const split = await session(stages).logits(PROMPT);
        assert.equal(split.length, PROMPT.length);
        split.forEach((row, i) => assert.ok(same(row, whole[i]!), `position ${i}`));
      });
    }

    it('token by token gives the same bits as the prompt at once', async () => {
      const s = session(await stagesFor(src, 3));
      await s.reset();
      for (let i = 0; i < PROMPT.length; i++) {
        const [row] = await s.forward([PROMPT[i]!]);
        assert.ok(same(row!, whole[i]!), `position ${i}`);
      }
      assert.equal(s.position, PROMPT.length);
    });

    it('each stage reads only its own tensors', async () => {
      const stages = await stagesFor(src, 3);
      const blocks = opts.blocks;
      const ranges = splitLayers(blocks, 3);
      stages.forEach((s, i) => {
        const r = ranges[i]!;
        const own = s.tensorNames.filter((t) => t.startsWith('blk.')).map((t) => Number(t.split('.')[1]));
        assert.deepEqual([...new Set(own)], Array.from({ length: r.to - r.from }, (_, k) => r.from + k));
        // The last stage reads the embedding too when the head is tied to it.
        const untied = 'untied' in opts;
        assert.equal(s.tensorNames.includes('token_embd.weight'), i === 0 || (i === 2 && !untied));
        assert.equal(s.tensorNames.includes('output.weight'), i === 2 && untied);
        assert.equal(s.tensorNames.includes('output_norm.weight'), i === 2);
      });
    });
  });
}

describe('stages refuse what does not fit', () => {
  let src: GgufSource;
  let stages: Stage[];
  before(async () => {
    src = ggufFromBytes(writeRandomLlama(FOUR));
    stages = await stagesFor(src, 2);
  });

  const fails = (code: string, pattern: RegExp) => (err: unknown): boolean => err instanceof ImError && err.code === code && pattern.test(err.message);

  it('the wrong kind, width, token or position', () => {
    const [a, b] = stages as [Stage, Stage];
    a.reset();
    b.reset();
    assert.throws(() => b.forward({ kind: 'tokens', position: 0, tokens: Uint32Array.from([1]), allLogits: false }), fails('IM_PIPELINE_FRAME', /takes hidden states/));
    assert.throws(() => a.forward({ kind: 'hidden', position: 0, count: 1, width: 64, hidden: new Float32Array(64), allLogits: false }), fails('IM_PIPELINE_FRAME', /first stage takes token ids/));
    assert.throws(() => b.forward({ kind: 'hidden', position: 0, count: 1, width: 32, hidden: new Float32Array(32), allLogits: false }), fails('IM_PIPELINE_FRAME', /width 32; this model's is 64/));
    assert.throws(() => a.forward({ kind: 'tokens', position: 0, tokens: Uint32Array.from([320]), allLogits: false }), fails('IM_PIPELINE_FRAME', /outside the vocabulary/));
    assert.throws(() => a.forward({ kind: 'tokens', position: 2, tokens: Uint32Array.from([1]), allLogits: false }), fails('IM_PIPELINE_POSITION', /cache holds 0/));
    assert.throws(() => a.forward({ kind: 'tokens', position: 0, tokens: new Uint32Array(129).fill(5), allLogits: false }), fails('IM_VALIDATION', /context of 128/));
    assert.equal(a.position, 0, 'a refused frame leaves the cache as it was');
  });

  it('rewinds when a frame starts inside the cache', async () => {
    const s = session(stages);
    const first = await s.logits(PROMPT);
    // Stage by stage: re-run the last 3 positions; the logits must be the same bits.
    const a = stages[0]!, b = stages[1]!;
    const h = a.forward({ kind: 'tokens', position: PROMPT.length - 3, tokens: Uint32Array.from(PROMPT.slice(-3)), allLogits: true });
    const out = b.forward(h);
    assert.equal(out.kind, 'logits');
    if (out.kind !== 'logits') return;
    assert.equal(out.position, PROMPT.length - 3);
    for (let r = 0; r < 3; r++) assert.ok(same(out.logits.subarray(r * 320, (r + 1) * 320), first[PROMPT.length - 3 + r]!));
  });
});

/** A transport that fails (as a dropped connection) on chosen calls. */
class FlakyTransport implements StageTransport {
  calls = 0;
  constructor(private readonly inner: StageTransport, private readonly failOn: ReadonlySet<number>, private readonly label: string) {}
  async forward(frame: Uint8Array): Promise<Uint8Array> {
    this.calls += 1;
    if (this.failOn.has(this.calls)) throw Object.assign(new Error(`${this.label}: connection reset`), { code: 'ECONNRESET' });
    return this.inner.forward(frame);
  }
  async reset(): Promise<void> {
    await this.inner.reset();
  }
}

describe('a stage killed mid-generation', () => {
  let src: GgufSource;
  before(() => {
    src = ggufFromBytes(writeRandomLlama(EIGHT));
  });

  const collect = async (it: AsyncIterable<number>): Promise<number[]> => {
    const out: number[] = [];
    for await (const t of it) out.push(t);
    return out;
  };

  for (const sampling of [{ temperature: 0 }, { temperature: 0.9, seed: 42 }]) {
    it(`is replaced and replayed: the tokens equal an uninterrupted run (temperature ${sampling.temperature})`, async () => {
      const opts = { maxTokens: 24, ...sampling };
      const reference = await collect(session(await stagesFor(src, 1)).generate(PROMPT, opts));
      assert.equal(reference.length, 24);
      if (sampling.temperature > 0) {
        const greedy = await collect(session(await stagesFor(src, 1)).generate(PROMPT, { maxTokens: 24 }));
        assert.notDeepEqual(reference, greedy, 'sampling is not greedy');
      }

      const ranges = splitLayers(8, 3);
      const stages = await stagesFor(src, 3);
      // Stage 1 dies on its 6th frame (generation step 5), stage 2 on its 15th; the first replacement of stage 1 dies during its replay.
      const transports: StageTransport[] = [
        new LocalStageTransport(stages[0]!),
        new FlakyTransport(new LocalStageTransport(stages[1]!), new Set([6]), 'stage 1'),
        new FlakyTransport(new LocalStageTransport(stages[2]!), new Set([15]), 'stage 2'),
      ];
      const events: PipelineEvent[] = [];
      const replaced: number[] = [];
      const s = new PipelineSession({
        stages: transports,
        onEvent: (e) => events.push(e),
        replace: async (i) => {
          replaced.push(i);
          const fresh = new LocalStageTransport(await Stage.load(src, ranges[i]!));
          // The first replacement of stage 1 fails at once, during its replay.
          return replaced.filter((x) => x === 1).length === 1 && i === 1 ? new FlakyTransport(fresh, new Set([1]), 'stage 1 again') : fresh;
        },
      });
      const tokens = await collect(s.generate(PROMPT, opts));
      assert.deepEqual(tokens, reference);
      assert.deepEqual(replaced, [1, 1, 2]);
      assert.equal(s.recoveryCount, 3);
      assert.deepEqual(events.map((e) => `${e.type}:${e.stage}`), ['stage-failed:1', 'stage-failed:1', 'stage-replaced:1', 'stage-failed:2', 'stage-replaced:2']);
      const replays = events.filter((e) => e.type === 'stage-replaced').map((e) => (e as { replayedRows: number }).replayedRows);
      // Stage 1 failed on its 6th frame: the prompt and 4 generated tokens were kept; stage 2 on its 15th: the prompt and 13.
      assert.deepEqual(replays, [PROMPT.length + 4, PROMPT.length + 13]);
      assert.notEqual(s.transports[1], transports[1]);
      assert.equal(s.transports[0], transports[0], 'healthy stages are kept');
    });
  }

  it('a stage that lost its cache is replayed in place', async () => {
    const stages = await stagesFor(src, 2);
    const reference = await collect(session(await stagesFor(src, 1)).generate(PROMPT, { maxTokens: 10 }));
    const s = session(stages);
    const out: number[] = [];
    for await (const t of s.generate(PROMPT, { maxTokens: 10 })) {
      out.push(t);
      if (out.length === 4) stages[1]!.reset(); // as if the process restarted with its weights but no cache
    }
    assert.deepEqual(out, reference);
    assert.equal(s.recoveryCount, 1);
  });

  it('without a replacement, or past the budget, the run ends with IM_SPLIT_STAGE_FAILED', async () => {
    const stages = await stagesFor(src, 2);
    const dead = (): StageTransport => new FlakyTransport(new LocalStageTransport(stages[1]!), new Set(Array.from({ length: 100 }, (_, i) => i + 1)), 'dead');
    const none = new PipelineSession({ stages: [new LocalStageTransport(stages[0]!), dead()] });
    await assert.rejects(collect(none.generate(PROMPT, { maxTokens: 3 })), (err: unknown) => err instanceof ImError && err.code === 'IM_SPLIT_STAGE_FAILED' && /no replacement was offered/.test(err.message));
    const budget = new PipelineSession({ stages: [new LocalStageTransport(stages[0]!), dead()], replace: async () => dead(), maxRecoveries: 2 });
    await assert.rejects(collect(budget.generate(PROMPT, { maxTokens: 3 })), (err: unknown) => err instanceof ImError && err.code === 'IM_SPLIT_STAGE_FAILED' && /budget is spent/.test(err.message));
    assert.equal(budget.recoveryCount, 2);
  });

  it('a bad frame is not retried on a replacement', async () => {
    const stages = await stagesFor(src, 2);
    let asked = 0;
    const s = new PipelineSession({ stages: stages.map((x) => new LocalStageTransport(x)), replace: async () => { asked += 1; throw new Error('unreachable'); } });
    await assert.rejects(s.forward([1, 99999]), (err: unknown) => err instanceof ImError && err.code === 'IM_PIPELINE_FRAME');
    assert.equal(asked, 0);
  });
});
