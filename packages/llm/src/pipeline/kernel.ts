/**
 * Matrix × vectors for the forward pass: a WebAssembly SIMD kernel where the
 * runtime has SIMD, plain JS otherwise. The two sum in different orders, so
 * they agree within float rounding, not bit for bit: every stage of one
 * pipeline must use the same kind for split runs to equal unsplit ones.
 *
 * Weights live where the kernel reads them (WASM linear memory for SIMD),
 * uploaded once at load; inputs and outputs are copied in and out per call,
 * cheap next to the rows×cols multiply-adds in between.
 */
import { ImError } from '@idlemesh/protocol';
import { MATMUL_WASM } from './wasm-matmul.js';

export type KernelKind = 'wasm-simd' | 'js';
export type KernelChoice = KernelKind | 'auto';

/** A weight matrix uploaded to a kernel: `rows` outputs, each a dot product over `cols` inputs. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
}

export interface MatmulKernel {
  readonly kind: KernelKind;
  /** Takes a row-major rows×cols matrix (row r = data[r·cols, (r+1)·cols)). */
  upload(data: Float32Array, rows: number, cols: number): Matrix;
  /** out[t·rows + r] = Σ_c m[r, c] · x[t·cols + c], for t < n. */
  matmul(m: Matrix, x: Float32Array, n: number, out: Float32Array): void;
  /** Bytes of weights held. */
  readonly weightBytes: number;
}

/**
 * The part of the WebAssembly API used here. @types/node 20 does not declare
 * the namespace (lib.dom does, which this package does not load), so it is
 * declared locally; at run time this is the global.
 */
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
  Memory: new (d: { initial: number }) => { readonly buffer: ArrayBuffer; grow(pages: number): number };
};

let simdSupported: boolean | undefined;

/** Whether this runtime runs WebAssembly SIMD (the kernel module validates). */
export function wasmSimdAvailable(): boolean {
  if (simdSupported === undefined) simdSupported = typeof WebAssembly === 'object' && WebAssembly.validate(MATMUL_WASM);
  return simdSupported;
}

export function createKernel(choice: KernelChoice = 'auto'): MatmulKernel {
  if (choice === 'js') return new JsKernel();
  if (wasmSimdAvailable()) return new WasmKernel();
  if (choice === 'wasm-simd') throw new ImError('IM_CONFIG_INVALID', 'WebAssembly SIMD is not available in this runtime; use the js kernel');
  return new JsKernel();
}

interface JsMatrix extends Matrix {
  data: Float32Array;
}

class JsKernel implements MatmulKernel {
  readonly kind = 'js' as const;
  weightBytes = 0;

  upload(data: Float32Array, rows: number, cols: number): Matrix {
    checkShape(data, rows, cols);
    this.weightBytes += rows * cols * 4;
    const m: JsMatrix = { rows, cols, data: data.slice(0, rows * cols) };
    return m;
  }

  matmul(m: Matrix, x: Float32Array, n: number, out: Float32Array): void {
    const { rows, cols, data } = m as JsMatrix;
    checkCall(m, x, n, out);
    for (let t = 0; t < n; t++) {
      const xo = t * cols;
      for (let r = 0; r < rows; r++) {
        const wo = r * cols;
        // Four partial sums: independent chains run faster than one.
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let c = 0;
        for (; c + 4 <= cols; c += 4) {
          s0 += data[wo + c]! * x[xo + c]!;
          s1 += data[wo + c + 1]! * x[xo + c + 1]!;
          s2 += data[wo + c + 2]! * x[xo + c + 2]!;
          s3 += data[wo + c + 3]! * x[xo + c + 3]!;
        }
        for (; c < cols; c++) s0 += data[wo + c]! * x[xo + c]!;
        out[t * rows + r] = s0 + s1 + (s2 + s3);
      }
    }
  }
}

interface WasmMatrix extends Matrix {
  ptr: number;
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: wasm32's address space

class WasmKernel implements MatmulKernel {
  readonly kind = 'wasm-simd' as const;
  private readonly memory = new WebAssembly.Memory({ initial: 1 });
  private readonly fn: (w: number, x: number, out: number, rows: number, cols: number, n: number) => void;
  private readonly js = new JsKernel();
  /** Weights are bump-allocated from 0; the scratch for inputs and outputs lives above them. */
  private top = 0;
  weightBytes = 0;

  constructor() {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(MATMUL_WASM), { env: { memory: this.memory } });
    this.fn = instance.exports['matmul'] as WasmKernel['fn'];
  }

  upload(data: Float32Array, rows: number, cols: number): Matrix {
    checkShape(data, rows, cols);
    // The SIMD loop needs rows of whole f32x4 lanes; odd widths (tiny test models) go to JS.
    if (cols % 4 !== 0) return this.js.upload(data, rows, cols);
    const bytes = rows * cols * 4;
    const ptr = this.top;
    this.ensure(ptr + bytes);
    new Float32Array(this.memory.buffer, ptr, rows * cols).set(data.subarray(0, rows * cols));
    this.top = align16(ptr + bytes);
    this.weightBytes += bytes;
    const m: WasmMatrix = { rows, cols, ptr };
    return m;
  }

  matmul(m: Matrix, x: Float32Array, n: number, out: Float32Array): void {
    if (!('ptr' in m)) return this.js.matmul(m, x, n, out);
    checkCall(m, x, n, out);
    const { rows, cols, ptr } = m as WasmMatrix;
    const xp = this.top;
    const op = align16(xp + n * cols * 4);
    this.ensure(op + n * rows * 4);
    new Float32Array(this.memory.buffer, xp, n * cols).set(x.subarray(0, n * cols));
    this.fn(ptr, xp, op, rows, cols, n);
    out.set(new Float32Array(this.memory.buffer, op, n * rows));
  }

  private ensure(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    const pages = Math.ceil((bytes - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES) throw new ImError('IM_CONFIG_INVALID', `a stage's weights need more than 4 GiB of WebAssembly memory (${Math.ceil(bytes / 2 ** 20)} MiB); give it fewer layers`);
    this.memory.grow(pages);
  }
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

function checkShape(data: Float32Array, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || data.length < rows * cols) {
    throw new ImError('IM_INTERNAL', `matrix ${rows}×${cols} from ${data.length} values`);
  }
}

function checkCall(m: Matrix, x: Float32Array, n: number, out: Float32Array): void {
  if (x.length < n * m.cols || out.length < n * m.rows) throw new ImError('IM_INTERNAL', `matmul ${m.rows}×${m.cols} by ${n}: input ${x.length}, output ${out.length}`);
}
