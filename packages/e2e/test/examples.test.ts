// The example workloads in examples/: build them from their .wat sources, run
// them under a minimal host for each ABI (idlemesh/1 and WASI stdin/stdout),
// and check every output against an independent reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// dist/test/examples.test.js -> dist/test -> dist -> packages/e2e -> packages -> root
const repoRoot = new URL('../../../../', import.meta.url);
const examplePath = (rel: string): string => fileURLToPath(new URL(`examples/${rel}`, repoRoot));

// --- The WebAssembly JS API, typed locally: the workspace compiles without
// the DOM lib, and a global declaration here could clash with other packages.
interface CompiledModule { readonly __brand: 'WebAssembly.Module' }
interface WasmMemory { readonly buffer: ArrayBuffer }
interface ModuleImportDescriptor { readonly module: string; readonly name: string; readonly kind: string }
interface ModuleExportDescriptor { readonly name: string; readonly kind: string }
type Imports = Record<string, Record<string, (...args: number[]) => number | void>>;
interface WasmApi {
  compile(bytes: Uint8Array): Promise<CompiledModule>;
  instantiate(module: CompiledModule, imports: Imports): Promise<{ readonly exports: Record<string, unknown> }>;
  readonly Module: {
    imports(module: CompiledModule): ModuleImportDescriptor[];
    exports(module: CompiledModule): ModuleExportDescriptor[];
  };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface BuildModule {
  buildExamples(options?: { force?: boolean; quiet?: boolean }): Promise<string[]>;
  listWatFiles(): string[];
}

function exportedFunction(exports: Record<string, unknown>, name: string): () => unknown {
  const f = exports[name];
  assert.equal(typeof f, 'function', `module must export function ${name}`);
  return f as () => unknown;
}

function exportedMemory(exports: Record<string, unknown>): WasmMemory {
  const m = exports['memory'];
  assert.ok(typeof m === 'object' && m !== null && 'buffer' in m, 'module must export memory');
  return m as WasmMemory;
}

// --- Input files: each non-empty line is one task input. A JSON string is
// its UTF-8 bytes, {"base64": "..."} is those bytes, anything else is the
// UTF-8 bytes of the line's JSON text.
function parseInputs(text: string): Buffer[] {
  const out: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const value: unknown = JSON.parse(line);
    if (typeof value === 'string') {
      out.push(Buffer.from(value, 'utf8'));
    } else if (
      typeof value === 'object' && value !== null && !Array.isArray(value) &&
      Object.keys(value).length === 1 && typeof (value as { base64?: unknown }).base64 === 'string'
    ) {
      out.push(Buffer.from((value as { base64: string }).base64, 'base64'));
    } else {
      out.push(Buffer.from(line, 'utf8'));
    }
  }
  return out;
}

const readInputs = (example: string): Buffer[] => parseInputs(readFileSync(examplePath(`${example}/inputs.jsonl`), 'utf8'));

// --- Host for idlemesh/1: run() -> i32; imports input_len, input_read, output_write.
interface TaskResult { readonly code: number; readonly output: Buffer }

async function runTask(module: CompiledModule, input: Uint8Array): Promise<TaskResult> {
  let memory: WasmMemory | undefined;
  const chunks: Buffer[] = [];
  const mem = (): WasmMemory => {
    assert.ok(memory, 'import called before instantiation finished');
    return memory;
  };
  const instance = await wasm.instantiate(module, {
    idlemesh: {
      input_len: () => input.length,
      input_read: (dst: number) => {
        // a fresh view each call: memory.grow detaches the old buffer
        new Uint8Array(mem().buffer, dst >>> 0, input.length).set(input);
      },
      output_write: (src: number, len: number) => {
        chunks.push(Buffer.from(new Uint8Array(mem().buffer, src >>> 0, len >>> 0)));
      },
    },
  });
  memory = exportedMemory(instance.exports);
  const code = exportedFunction(instance.exports, 'run')();
  assert.equal(typeof code, 'number');
  return { code: code as number, output: Buffer.concat(chunks) };
}

// --- Host for WASI preview 1 with stdin/stdout only. Reads and writes are
// capped per call so that the module's short-read/short-write loops run.
class ProcExit extends Error {
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

interface WasiOptions { readonly maxRead?: number; readonly maxWrite?: number; readonly readErrno?: number }
interface WasiResult { readonly code: number; readonly stdout: Buffer; readonly stderr: Buffer }

const WASI_EBADF = 8;

async function runWasi(module: CompiledModule, stdin: Uint8Array, options: WasiOptions = {}): Promise<WasiResult> {
  const maxRead = options.maxRead ?? Number.MAX_SAFE_INTEGER;
  const maxWrite = options.maxWrite ?? Number.MAX_SAFE_INTEGER;
  let memory: WasmMemory | undefined;
  let stdinPos = 0;
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const view = (): DataView => {
    assert.ok(memory, 'import called before instantiation finished');
    return new DataView(memory.buffer);
  };
  const iovecs = (dv: DataView, iovs: number, count: number): Array<{ buf: number; len: number }> =>
    Array.from({ length: count }, (_, i) => ({
      buf: dv.getUint32(iovs + 8 * i, true),
      len: dv.getUint32(iovs + 8 * i + 4, true),
    }));
  const zeroSizes = (a: number, b: number): number => {
    const dv = view();
    dv.setUint32(a, 0, true);
    dv.setUint32(b, 0, true);
    return 0;
  };
  const instance = await wasm.instantiate(module, {
    wasi_snapshot_preview1: {
      fd_read: (fd: number, iovs: number, iovsLen: number, nreadPtr: number) => {
        if (fd !== 0) return WASI_EBADF;
        if (options.readErrno !== undefined) return options.readErrno;
        const dv = view();
        let budget = maxRead;
        let total = 0;
        for (const { buf, len } of iovecs(dv, iovs, iovsLen)) {
          const n = Math.min(len, budget, stdin.length - stdinPos);
          new Uint8Array(dv.buffer, buf, n).set(stdin.subarray(stdinPos, stdinPos + n));
          stdinPos += n;
          budget -= n;
          total += n;
        }
        dv.setUint32(nreadPtr, total, true);
        return 0;
      },
      fd_write: (fd: number, iovs: number, iovsLen: number, nwrittenPtr: number) => {
        if (fd !== 1 && fd !== 2) return WASI_EBADF;
        const dv = view();
        let budget = maxWrite;
        let total = 0;
        for (const { buf, len } of iovecs(dv, iovs, iovsLen)) {
          const n = Math.min(len, budget);
          (fd === 1 ? stdout : stderr).push(Buffer.from(new Uint8Array(dv.buffer, buf, n)));
          budget -= n;
          total += n;
        }
        dv.setUint32(nwrittenPtr, total, true);
        return 0;
      },
      proc_exit: (code: number) => {
        throw new ProcExit(code);
      },
      args_sizes_get: zeroSizes,
      environ_sizes_get: zeroSizes,
      args_get: () => 0,
      environ_get: () => 0,
    },
  });
  memory = exportedMemory(instance.exports);
  let code = 0;
  try {
    exportedFunction(instance.exports, '_start')();
  } catch (err) {
    if (!(err instanceof ProcExit)) throw err;
    code = err.code;
  }
  return { code, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) };
}

// --- ABI conformance: only the allowed imports, and the required exports.
const IDLEMESH_IMPORTS = new Set(['idlemesh.input_len', 'idlemesh.input_read', 'idlemesh.output_write']);
const WASI_IMPORTS = new Set(
  ['fd_read', 'fd_write', 'proc_exit', 'args_sizes_get', 'args_get', 'environ_sizes_get', 'environ_get']
    .map((name) => `wasi_snapshot_preview1.${name}`),
);

function assertAbi(module: CompiledModule, abi: 'idlemesh/1' | 'wasi'): void {
  const allowed = abi === 'wasi' ? WASI_IMPORTS : IDLEMESH_IMPORTS;
  for (const imp of wasm.Module.imports(module)) {
    assert.equal(imp.kind, 'function', `import ${imp.module}.${imp.name} must be a function`);
    assert.ok(allowed.has(`${imp.module}.${imp.name}`), `import ${imp.module}.${imp.name} is not part of ${abi}`);
  }
  const exports = new Map(wasm.Module.exports(module).map((e) => [e.name, e.kind]));
  assert.equal(exports.get('memory'), 'memory');
  assert.equal(exports.get(abi === 'wasi' ? '_start' : 'run'), 'function');
}

// --- Build once, on first use; every test below runs the fresh .wasm files.
interface Built { readonly build: BuildModule; readonly wasmPaths: string[]; readonly modules: Map<string, CompiledModule> }
let building: Promise<Built> | undefined;
const built = (): Promise<Built> => (building ??= buildAll());

async function buildAll(): Promise<Built> {
  const buildScript = new URL('examples/build.mjs', repoRoot);
  assert.ok(existsSync(buildScript), `repo root not found: no ${fileURLToPath(buildScript)}`);
  const build = (await import(buildScript.href)) as BuildModule;
  const wasmPaths = await build.buildExamples({ force: true, quiet: true });
  const modules = new Map<string, CompiledModule>();
  for (const path of wasmPaths) {
    const rel = path.slice(fileURLToPath(new URL('examples/', repoRoot)).length);
    modules.set(rel, await wasm.compile(readFileSync(path)));
  }
  return { build, wasmPaths, modules };
}

async function loadModule(rel: string): Promise<CompiledModule> {
  const module = (await built()).modules.get(rel);
  assert.ok(module, `examples/${rel} was not built`);
  return module;
}

void test('build.mjs compiles every example .wat and skips up-to-date ones', async () => {
  const { build, wasmPaths } = await built();
  const watFiles = build.listWatFiles();
  for (const rel of ['sha256/sha256.wat', 'nbody/nbody.wat', 'wasi-upper/upper.wat', 'noop/noop.wat']) {
    assert.ok(watFiles.includes(examplePath(rel)), `missing examples/${rel}`);
  }
  assert.deepEqual(wasmPaths, watFiles.map((p) => p.replace(/\.wat$/, '.wasm')));
  // Nothing changed since the forced build, so a normal build does nothing.
  assert.deepEqual(await build.buildExamples({ quiet: true }), []);
});

void test('every example follows its ABI and has a parseable inputs.jsonl', async () => {
  const examples: Array<[string, string, 'idlemesh/1' | 'wasi']> = [
    ['sha256', 'sha256/sha256.wasm', 'idlemesh/1'],
    ['nbody', 'nbody/nbody.wasm', 'idlemesh/1'],
    ['noop', 'noop/noop.wasm', 'idlemesh/1'],
    ['wasi-upper', 'wasi-upper/upper.wasm', 'wasi'],
  ];
  for (const [dir, rel, abi] of examples) {
    assertAbi(await loadModule(rel), abi);
    assert.ok(readInputs(dir).length >= 5, `examples/${dir}/inputs.jsonl should hold several inputs`);
  }
});

void test('input file parsing follows the CLI format', () => {
  const parsed = parseInputs('"héllo"\n\n{"base64":"AAH/"}\n42\n{"a":1}\nnull\n');
  assert.deepEqual(parsed.map((b) => b.toString('hex')), [
    Buffer.from('héllo').toString('hex'), '0001ff', Buffer.from('42').toString('hex'),
    Buffer.from('{"a":1}').toString('hex'), Buffer.from('null').toString('hex'),
  ]);
});

// --- sha256

const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

async function assertSha256(module: CompiledModule, input: Uint8Array): Promise<void> {
  const { code, output } = await runTask(module, input);
  assert.equal(code, 0);
  assert.equal(output.toString('latin1'), sha256Hex(input), `sha256 of ${input.length} bytes`);
}

void test('sha256 matches node:crypto on every line of inputs.jsonl', async () => {
  const module = await loadModule('sha256/sha256.wasm');
  const inputs = readInputs('sha256');
  // the padding edge cases must stay in the file
  const lengths = new Set(inputs.map((b) => b.length));
  for (const n of [0, 55, 56, 63, 64, 65, 119, 120, 128]) assert.ok(lengths.has(n), `inputs.jsonl lacks a ${n}-byte input`);
  for (const input of inputs) await assertSha256(module, input);
  // and the reference itself, on the FIPS 180-2 example
  const abc = await runTask(module, Buffer.from('abc'));
  assert.equal(abc.output.toString(), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

void test('sha256 matches node:crypto on random inputs of 0..200 bytes', async () => {
  const module = await loadModule('sha256/sha256.wasm');
  for (let n = 0; n <= 200; n++) await assertSha256(module, randomBytes(n));
});

void test('sha256 matches node:crypto on large inputs', async () => {
  const module = await loadModule('sha256/sha256.wasm');
  // 1 MiB, and sizes whose padding crosses a 64 KiB page boundary
  for (const n of [1 << 20, 65536 - 1024 - 9, 65536 - 1024 - 8, 3 * 65536 + 17]) {
    await assertSha256(module, randomBytes(n));
  }
});

// --- nbody: the same algorithm in JS, in the same operation order, so the
// energies agree to the last bit.

function nbodyReference(steps: number): [number, number] {
  const PI = 3.141592653589793;
  const SOLAR_MASS = 4 * PI * PI;
  const DAYS_PER_YEAR = 365.24;
  const body = (x: number, y: number, z: number, vx: number, vy: number, vz: number, mass: number): number[] =>
    [x, y, z, vx * DAYS_PER_YEAR, vy * DAYS_PER_YEAR, vz * DAYS_PER_YEAR, mass * SOLAR_MASS];
  const bodies = [
    body(0, 0, 0, 0, 0, 0, 1),
    body(4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
      1.66007664274403694e-03, 7.69901118419740425e-03, -6.90460016972063023e-05, 9.54791938424326609e-04),
    body(8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
      -2.76742510726862411e-03, 4.99852801234917238e-03, 2.30417297573763929e-05, 2.85885980666130812e-04),
    body(1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
      2.96460137564761618e-03, 2.37847173959480950e-03, -2.96589568540237556e-05, 4.36624404335156298e-05),
    body(1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
      2.68067772490389322e-03, 1.62824170038242295e-03, -9.51592254519715870e-05, 5.15138902046611451e-05),
  ].map((b) => Float64Array.from(b));
  const n = bodies.length;
  const at = (i: number): Float64Array => {
    const b = bodies[i];
    assert.ok(b);
    return b;
  };
  // [x, y, z, vx, vy, vz, mass] as indices
  const X = 0, Y = 1, Z = 2, VX = 3, VY = 4, VZ = 5, M = 6;
  const get = (b: Float64Array, k: number): number => b[k] ?? Number.NaN;

  let px = 0, py = 0, pz = 0;
  for (let i = 0; i < n; i++) {
    const b = at(i);
    px += get(b, VX) * get(b, M);
    py += get(b, VY) * get(b, M);
    pz += get(b, VZ) * get(b, M);
  }
  const sun = at(0);
  sun[VX] = -px / SOLAR_MASS;
  sun[VY] = -py / SOLAR_MASS;
  sun[VZ] = -pz / SOLAR_MASS;

  const energy = (): number => {
    let e = 0;
    for (let i = 0; i < n; i++) {
      const b = at(i);
      e += 0.5 * get(b, M) * (get(b, VX) * get(b, VX) + get(b, VY) * get(b, VY) + get(b, VZ) * get(b, VZ));
      for (let j = i + 1; j < n; j++) {
        const c = at(j);
        const dx = get(b, X) - get(c, X), dy = get(b, Y) - get(c, Y), dz = get(b, Z) - get(c, Z);
        e -= (get(b, M) * get(c, M)) / Math.sqrt(dx * dx + dy * dy + dz * dz);
      }
    }
    return e;
  };

  const dt = 0.01;
  const before = energy();
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < n; i++) {
      const b = at(i);
      for (let j = i + 1; j < n; j++) {
        const c = at(j);
        const dx = get(b, X) - get(c, X), dy = get(b, Y) - get(c, Y), dz = get(b, Z) - get(c, Z);
        const d2 = dx * dx + dy * dy + dz * dz;
        const mag = dt / (d2 * Math.sqrt(d2));
        b[VX] = get(b, VX) - dx * get(c, M) * mag;
        b[VY] = get(b, VY) - dy * get(c, M) * mag;
        b[VZ] = get(b, VZ) - dz * get(c, M) * mag;
        c[VX] = get(c, VX) + dx * get(b, M) * mag;
        c[VY] = get(c, VY) + dy * get(b, M) * mag;
        c[VZ] = get(c, VZ) + dz * get(b, M) * mag;
      }
    }
    for (let i = 0; i < n; i++) {
      const b = at(i);
      b[X] = get(b, X) + dt * get(b, VX);
      b[Y] = get(b, Y) + dt * get(b, VY);
      b[Z] = get(b, Z) + dt * get(b, VZ);
    }
  }
  return [before, energy()];
}

/** The module's formatting: round(|v| * 1e9) ties-to-even, 9 decimals, '-' when v < 0. */
function fixed9(v: number): string {
  const x = Math.abs(v) * 1e9;
  const floor = Math.floor(x);
  const diff = x - floor;
  const rounded = diff > 0.5 || (diff === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  const n = BigInt(rounded);
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0');
  return `${v < 0 ? '-' : ''}${n / 1_000_000_000n}.${frac}`;
}

void test('nbody reproduces the published energies for 1000 steps', async () => {
  const { code, output } = await runTask(await loadModule('nbody/nbody.wasm'), Buffer.from('1000'));
  assert.equal(code, 0);
  assert.equal(output.toString(), '-0.169075164\n-0.169087605\n');
});

void test('nbody matches a JS implementation on every line of inputs.jsonl', async () => {
  const module = await loadModule('nbody/nbody.wasm');
  for (const input of readInputs('nbody')) {
    const steps = Number(input.toString().trim());
    const [before, after] = nbodyReference(steps);
    // the shared formatting agrees with JS's exact decimal rounding here
    assert.equal(fixed9(before), before.toFixed(9));
    assert.equal(fixed9(after), after.toFixed(9));
    const { code, output } = await runTask(module, input);
    assert.equal(code, 0, `steps=${steps}`);
    assert.equal(output.toString(), `${fixed9(before)}\n${fixed9(after)}\n`, `steps=${steps}`);
  }
});

void test('nbody rejects inputs that are not a step count', async () => {
  const module = await loadModule('nbody/nbody.wasm');
  for (const bad of ['', ' \n', 'abc', '-5', '1e3', '12 34', '10x', '2000000001', '99999999999999999999999', '1'.repeat(65)]) {
    const { code, output } = await runTask(module, Buffer.from(bad));
    assert.equal(code, 1, `input ${JSON.stringify(bad)}`);
    assert.equal(output.length, 0);
  }
});

// --- wasi-upper

const upperAscii = (data: Uint8Array): Buffer => Buffer.from(data.map((c) => (c >= 0x61 && c <= 0x7a ? c - 32 : c)));

void test('wasi-upper upper-cases every line of inputs.jsonl', async () => {
  const module = await loadModule('wasi-upper/upper.wasm');
  for (const input of readInputs('wasi-upper')) {
    const { code, stdout, stderr } = await runWasi(module, input);
    assert.equal(code, 0);
    assert.equal(stderr.length, 0);
    assert.deepEqual(stdout, upperAscii(input));
    if (input.every((c) => c < 0x80)) assert.equal(stdout.toString('latin1'), input.toString('latin1').toUpperCase());
  }
});

void test('wasi-upper handles short reads, short writes and large inputs', async () => {
  const module = await loadModule('wasi-upper/upper.wasm');
  const cases: Array<[number, WasiOptions]> = [
    [0, {}],
    [1000, { maxRead: 1, maxWrite: 1 }],
    [5000, { maxRead: 7, maxWrite: 3 }],
    [200_000, {}],
    [200_000, { maxRead: 4096, maxWrite: 1000 }],
  ];
  for (const [size, options] of cases) {
    const input = randomBytes(size);
    const { code, stdout } = await runWasi(module, input, options);
    assert.equal(code, 0);
    assert.ok(stdout.equals(upperAscii(input)), `size=${size} ${JSON.stringify(options)}`);
  }
});

void test('wasi-upper exits 1 on a read error', async () => {
  const { code, stdout } = await runWasi(await loadModule('wasi-upper/upper.wasm'), Buffer.from('abc'), { readErrno: 29 });
  assert.equal(code, 1);
  assert.equal(stdout.length, 0);
});

// --- noop

void test('noop echoes its input', async () => {
  const module = await loadModule('noop/noop.wasm');
  const inputs = [...readInputs('noop'), randomBytes(65536), randomBytes(65537), randomBytes(1 << 20)];
  for (const input of inputs) {
    const { code, output } = await runTask(module, input);
    assert.equal(code, 0);
    assert.ok(output.equals(input), `echo of ${input.length} bytes`);
  }
});
