// Metering overhead: the same compute kernel, plain vs fuel-instrumented.
// Prints one JSON line: {"bench":"metering","ratio":…,"meteredMs":…,"unmeteredMs":…,…}
// Usage: npx tsc -b packages/runtime && node bench/metering.mjs
import './lib.mjs'; // --help
import os from 'node:os';
import wabtInit from 'wabt';
import { instrumentModule, runTask } from '../packages/runtime/dist/src/index.js';

const SIZE = 600;
const MAX_ITER = 200;
const REPS = 9;

// Mandelbrot set, one call per row so V8 can tier the row function up
// (wasm has no on-stack replacement). The sum is stored so nothing is dead.
const WAT = `(module
  (memory (export "memory") 1)
  (func $row (param $y i32) (result i32)
    (local $x i32) (local $i i32) (local $count i32)
    (local $cr f64) (local $ci f64) (local $zr f64) (local $zi f64) (local $t f64)
    (local.set $ci (f64.sub (f64.div (f64.mul (f64.convert_i32_s (local.get $y)) (f64.const 2.0)) (f64.const ${SIZE})) (f64.const 1.0)))
    (loop $px
      (local.set $cr (f64.sub (f64.div (f64.mul (f64.convert_i32_s (local.get $x)) (f64.const 3.0)) (f64.const ${SIZE})) (f64.const 2.0)))
      (local.set $zr (f64.const 0)) (local.set $zi (f64.const 0)) (local.set $i (i32.const 0))
      (block $out
        (loop $it
          (br_if $out (f64.gt (f64.add (f64.mul (local.get $zr) (local.get $zr)) (f64.mul (local.get $zi) (local.get $zi))) (f64.const 4.0)))
          (local.set $t (f64.add (f64.sub (f64.mul (local.get $zr) (local.get $zr)) (f64.mul (local.get $zi) (local.get $zi))) (local.get $cr)))
          (local.set $zi (f64.add (f64.mul (f64.mul (f64.const 2.0) (local.get $zr)) (local.get $zi)) (local.get $ci)))
          (local.set $zr (local.get $t))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $it (i32.lt_u (local.get $i) (i32.const ${MAX_ITER})))))
      (local.set $count (i32.add (local.get $count) (local.get $i)))
      (local.set $x (i32.add (local.get $x) (i32.const 1)))
      (br_if $px (i32.lt_u (local.get $x) (i32.const ${SIZE}))))
    (local.get $count))
  (func (export "run") (result i32) (local $y i32) (local $sum i32)
    (loop $rows
      (local.set $sum (i32.add (local.get $sum) (call $row (local.get $y))))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br_if $rows (i32.lt_u (local.get $y) (i32.const ${SIZE}))))
    (i32.store (i32.const 0) (local.get $sum))
    (i32.const 0)))`;

// A tight integer loop (LCG + xorshift): the worst case, a few instructions per back-edge.
const INT_WAT = `(module
  (memory (export "memory") 1)
  (func $step (param $n i32) (result i32) (local $x i32) (local $i i32)
    (local.set $x (i32.const 1))
    (loop $l
      (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1664525)) (i32.const 1013904223)))
      (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 13))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $x))
  (func (export "run") (result i32) (local $k i32) (local $acc i32)
    (loop $outer
      (local.set $acc (i32.xor (local.get $acc) (call $step (i32.const 100000))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $k) (i32.const 300))))
    (i32.store (i32.const 0) (local.get $acc))
    (i32.const 0)))`;

const wabt = await wabtInit();
const limits = { fuel: Number.MAX_SAFE_INTEGER, memoryMb: 16, timeoutMs: 60_000, outputBytes: 0 };

function time(fn) {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(name, wat) {
  const raw = wabt.parseWat(name, wat, {}).toBinary({}).buffer;
  const inst = await instrumentModule(raw, { maxMemoryMb: 16 });
  const plain = new WebAssembly.Module(raw);
  const metered = new WebAssembly.Module(inst.bytes);
  let fuel = 0;
  const runPlain = () => new WebAssembly.Instance(plain, {}).exports.run();
  const runMetered = () => {
    const r = runTask(metered, inst.abi, new Uint8Array(0), limits);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    fuel = r.fuel;
  };
  // Warm up both so each runs tiered-up code, then interleave the reps.
  for (let i = 0; i < 2; i++) { runPlain(); runMetered(); }
  const plainMs = [];
  const meteredMs = [];
  for (let i = 0; i < REPS; i++) {
    plainMs.push(time(runPlain));
    meteredMs.push(time(runMetered));
  }
  return { plainMs: median(plainMs), meteredMs: median(meteredMs), fuel };
}

const main = await measure('mandelbrot.wat', WAT);
const int = await measure('int.wat', INT_WAT);
const unmeteredMs = main.plainMs;
const mMs = main.meteredMs;
const fuel = main.fuel;
const cpus = os.cpus();
console.log(JSON.stringify({
  bench: 'metering',
  kernel: `mandelbrot ${SIZE}x${SIZE}, ${MAX_ITER} iterations`,
  ratio: Math.round((mMs / unmeteredMs) * 1000) / 1000,
  meteredMs: Math.round(mMs * 100) / 100,
  unmeteredMs: Math.round(unmeteredMs * 100) / 100,
  fuel,
  fuelPerSec: Math.round(fuel / (mMs / 1000)),
  intLoopRatio: Math.round((int.meteredMs / int.plainMs) * 1000) / 1000,
  reps: REPS,
  machine: { cpus: cpus.length, model: cpus[0]?.model ?? 'unknown', node: process.version },
}));
