// Runs every candidate of candidates.jsonl against its problem in a
// CodeSandbox and prints its verdict and fuel next to the expected verdict.
//
// Usage (after `npx tsc -b`): node examples/code-eval/run.mjs [--fuel N]
// Exits 1 if a verdict differs from the expected one.
import { readFileSync } from 'node:fs';
import { CodeSandbox } from '../../packages/runtime/dist/src/index.js';

const here = new URL('.', import.meta.url);
const readJsonl = (name) => readFileSync(new URL(name, here), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const fuelFlag = process.argv.indexOf('--fuel');
const fuel = fuelFlag === -1 ? 200_000_000 : Number(process.argv[fuelFlag + 1]);

const problems = new Map(readJsonl('problems.jsonl').map((p) => [p.id, p]));
const candidates = readJsonl('candidates.jsonl');
const sandbox = new CodeSandbox({ pythonPool: 2, jsPool: 0 });
let mismatches = 0;
try {
  const results = await Promise.all(candidates.map((c) => {
    const p = problems.get(c.problem);
    if (p === undefined) throw new Error(`candidate ${c.id} names unknown problem ${c.problem}`);
    return sandbox.run({
      language: 'python',
      program: p.prompt + c.completion,
      tests: p.tests,
      limits: { fuel, memoryMb: 64, timeoutMs: 10_000, outputBytes: 4096 },
    });
  }));
  candidates.forEach((c, i) => {
    const r = results[i];
    const ok = r.verdict === c.expected;
    if (!ok) mismatches++;
    const why = r.error === undefined ? '' : `  ${r.error.code}: ${r.error.message.split('\n')[0]}`;
    console.log(`${ok ? ' ' : '!'} ${c.id.padEnd(12)} ${r.verdict.padEnd(9)} fuel ${String(r.fuel).padStart(10)}${why}`);
  });
} finally {
  await sandbox.close();
}
process.exit(mismatches === 0 ? 0 : 1);
