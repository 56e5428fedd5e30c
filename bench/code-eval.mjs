// Code-evaluation sandbox figures for docs/code-eval.md: interpreter start
// times (warm pool, snapshot restore, cold Pyodide), metering overhead, fuel
// rates, and fuel determinism across runs and processes.
//
// Usage (after `npx tsc -b`): node bench/code-eval.mjs
// Pass --child to print one process's fuel figures as JSON (used internally).
import './lib.mjs'; // --help
import { execFileSync } from 'node:child_process';
import { CodeSandbox, runCode } from '../packages/runtime/dist/src/index.js';

const limits = (fuel) => ({ fuel, memoryMb: 128, timeoutMs: 60_000, outputBytes: 1 << 16 });
const PROGRAMS = {
  python: {
    trivial: 'pass',
    loop: 'total = 0\nfor i in range(1_000_000):\n    total += i\n',
    mixed: 'import random\nxs = sorted(random.random() for _ in range(20_000))\nprint(len({round(x, 3) for x in xs}))\n',
  },
  js: {
    trivial: '',
    loop: 'let total = 0; for (let i = 0; i < 1e6; i++) total += i;',
    mixed: 'const xs = Array.from({ length: 20000 }, () => Math.random()).sort((a, b) => a - b); console.log(new Set(xs.map((x) => x.toFixed(3))).size);',
  },
};

async function fuelFigures(sb) {
  const out = {};
  for (const [lang, progs] of Object.entries(PROGRAMS)) {
    for (const [name, program] of Object.entries(progs)) {
      const r = await sb.run({ language: lang, program, tests: '', limits: limits(1e12), seed: 1 });
      out[`${lang}/${name}`] = r.fuel;
    }
  }
  return out;
}

if (process.argv.includes('--child')) {
  const sb = new CodeSandbox({ pythonPool: 1, jsPool: 1 });
  await sb.ready();
  console.log(JSON.stringify(await fuelFigures(sb)));
  await sb.close();
  process.exit(0);
}

const ms = (t) => Math.round(performance.now() - t);
let t = performance.now();
const sb = new CodeSandbox({ pythonPool: 1, jsPool: 1 });
await sb.ready();
console.log(`sandbox ready (assets cached or built): ${ms(t)} ms`);

for (const lang of ['python', 'js']) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    await sb.ready(); // a warm interpreter is waiting
    t = performance.now();
    await sb.run({ language: lang, program: PROGRAMS[lang].trivial, tests: '', limits: limits(1e9) });
    times.push(ms(t));
  }
  t = performance.now();
  await sb.ready();
  const refill = ms(t);
  t = performance.now();
  await runCode({ language: lang, program: PROGRAMS[lang].trivial, tests: '', limits: limits(1e9) });
  console.log(`${lang}: warm task ${times.join('/')} ms; background refill ${refill} ms; one-shot runCode ${ms(t)} ms`);
}

// Throughput of the meter: a task that only spins, stopped by its fuel.
for (const [lang, fuel] of [['python', 2e9], ['js', 2e8]]) {
  await sb.ready();
  t = performance.now();
  const r = await sb.run({ language: lang, program: lang === 'python' ? 'while True:\n    pass' : 'while (true) {}', tests: '', limits: limits(fuel) });
  const s = (performance.now() - t) / 1000;
  console.log(`${lang}: ${r.verdict} after ${s.toFixed(2)} s, ${(fuel / s / 1e6).toFixed(0)} M fuel/s`);
}

// Metered against plain Pyodide on the same loop.
const { loadPyodide } = await import('pyodide');
t = performance.now();
const plain = await loadPyodide({ packages: [], stdout: () => {}, stderr: () => {} });
console.log(`plain Pyodide cold start (no snapshot, unmetered): ${ms(t)} ms`);
const loopMs = [];
for (let i = 0; i < 3; i++) {
  t = performance.now();
  plain.runPython(PROGRAMS.python.loop);
  loopMs.push(ms(t));
}
const meteredMs = [];
for (let i = 0; i < 3; i++) {
  await sb.ready();
  t = performance.now();
  await sb.run({ language: 'python', program: PROGRAMS.python.loop, tests: '', limits: limits(1e12) });
  meteredMs.push(ms(t));
}
console.log(`1e6-iteration loop: plain ${loopMs.join('/')} ms (one interpreter), metered ${meteredMs.join('/')} ms (a fresh interpreter each)`);

const here = await fuelFigures(sb);
const again = await fuelFigures(sb);
await sb.close();
const child = JSON.parse(execFileSync(process.execPath, [new URL(import.meta.url).pathname, '--child'], { encoding: 'utf8' }));
console.log('fuel (this process, again, fresh process):');
for (const k of Object.keys(here)) console.log(`  ${k.padEnd(15)} ${here[k]} ${again[k]} ${child[k]} ${here[k] === again[k] && here[k] === child[k] ? 'same' : 'DIFFERENT'}`);
process.exit(0);
