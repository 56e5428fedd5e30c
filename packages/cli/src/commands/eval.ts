/**
 * `idlemesh eval candidates.jsonl --tests problems.jsonl`: HumanEval-style
 * evaluation on the mesh. Each candidate × its problem's tests is one task of
 * a python (or js) job; the agents run them in fresh, metered interpreters.
 * Prints pass@k per problem and writes one result line per candidate.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CodeEvalOutput, ImError, bytesToBase64 } from '@idlemesh/protocol';
import { table } from '../format.js';
import { clientFor } from '../options.js';
import { note, out, outJson } from '../output.js';

interface Problem { id: string; prompt: string; tests: string }
interface Candidate { id: string; problem: string; completion: string }

/** The unbiased pass@k estimator (Chen et al. 2021): 1 − C(n−c, k) / C(n, k), as a stable product. */
export function passAtK(n: number, c: number, k: number): number {
  if (n - c < k) return 1;
  let miss = 1;
  for (let i = n - c + 1; i <= n; i++) miss *= 1 - k / i;
  return 1 - miss;
}

async function readJsonl<T>(file: string, what: string, check: (v: unknown) => v is T): Promise<T[]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new ImError('IM_CLI_USAGE', `cannot read ${what} ${file}: ${err.code ?? err.message}`);
  });
  return text.split('\n').map((l, i) => ({ l: l.trim(), i })).filter(({ l }) => l.length > 0).map(({ l, i }) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      throw new ImError('IM_VALIDATION', `${file}:${i + 1}: not JSON`);
    }
    if (!check(v)) throw new ImError('IM_VALIDATION', `${file}:${i + 1}: not a ${what} line (see examples/code-eval/README.md)`);
    return v;
  });
}

const isStr = (o: Record<string, unknown>, k: string): boolean => typeof o[k] === 'string';

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate code candidates against their problems\' tests on the mesh (python or js, HumanEval-style); prints pass@k per problem')
    .argument('<candidates.jsonl>', 'one {"id", "problem", "completion"} per line')
    .requiredOption('--tests <problems.jsonl>', 'one {"id", "prompt", "tests"} per line; a task runs prompt + completion, then tests')
    .option('--language <python|js>', 'the runtime (default python)', 'python')
    .option('--k <list>', 'the k of pass@k, comma separated (default 1,5)', '1,5')
    .option('--out <file>', 'write one JSON line per candidate: id, problem, verdict, fuel, stdout, stderr, error')
    .option('--seed <n>', 'seed of random in every task (default 0)', '0')
    .option('--fuel <n>', 'fuel per candidate: past it, timed-out (default 200000000, ~0.5 s of Python)', '200000000')
    .option('--memory-mb <n>', 'memory per candidate, MiB (default 64)', '64')
    .option('--timeout-ms <n>', 'wall-clock cap per candidate (default 10000)', '10000')
    .option('--json', 'print {"problems": [{id, n, passed, passAtK}], "summary"} as one JSON document')
    .action(async (candidatesFile: string, opts: { tests: string; language: string; k: string; out?: string; seed: string; fuel: string; memoryMb: string; timeoutMs: string; json?: boolean }, cmd: Command) => {
      if (opts.language !== 'python' && opts.language !== 'js') throw new ImError('IM_CLI_USAGE', '--language is python or js');
      const ks = opts.k.split(',').map(Number);
      if (ks.some((k) => !Number.isInteger(k) || k < 1)) throw new ImError('IM_CLI_USAGE', '--k is a comma-separated list of positive integers');
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed) || seed < 0) throw new ImError('IM_CLI_USAGE', '--seed is a non-negative integer');
      const limits = { fuel: Number(opts.fuel), memoryMb: Number(opts.memoryMb), timeoutMs: Number(opts.timeoutMs) };
      if (Object.values(limits).some((v) => !Number.isInteger(v) || v < 1)) throw new ImError('IM_CLI_USAGE', '--fuel, --memory-mb and --timeout-ms are positive integers');
      const problems = await readJsonl<Problem>(opts.tests, 'problem', (v): v is Problem => typeof v === 'object' && v !== null && isStr(v as Record<string, unknown>, 'id') && isStr(v as Record<string, unknown>, 'prompt') && isStr(v as Record<string, unknown>, 'tests'));
      const candidates = await readJsonl<Candidate>(candidatesFile, 'candidate', (v): v is Candidate => typeof v === 'object' && v !== null && isStr(v as Record<string, unknown>, 'id') && isStr(v as Record<string, unknown>, 'problem') && isStr(v as Record<string, unknown>, 'completion'));
      const byId = new Map(problems.map((p) => [p.id, p]));
      for (const c of candidates) if (!byId.has(c.problem)) throw new ImError('IM_VALIDATION', `candidate ${c.id} names an unknown problem ${c.problem}`);
      if (candidates.length === 0) throw new ImError('IM_VALIDATION', `${candidatesFile} has no candidates`);
      const client = clientFor(cmd);
      const inputs = candidates.map((c) => {
        const p = byId.get(c.problem) as Problem;
        return bytesToBase64(new TextEncoder().encode(JSON.stringify({ program: p.prompt + c.completion, tests: p.tests, seed })));
      });
      const job = await client.submitJob({ runtime: opts.language, inputs, limits, name: `eval ${candidatesFile}` });
      if (!opts.json) note(`job ${job.id}: ${candidates.length} candidates × tests on ${opts.language}`);
      const done = await client.waitForJob(job.id);
      const verdicts = new Map<number, { verdict: string; fuel: number; stdout: string; stderr: string; error?: unknown }>();
      for await (const r of client.allResults(done.id)) {
        if (r.state === 'succeeded') {
          const o = CodeEvalOutput.safeParse(JSON.parse(Buffer.from(r.output ?? '', 'base64').toString('utf8')));
          if (o.success) verdicts.set(r.index, { ...o.data, fuel: r.fuel ?? 0 });
        } else verdicts.set(r.index, { verdict: 'errored', fuel: r.fuel ?? 0, stdout: '', stderr: '', error: r.error });
      }
      const lines = candidates.map((c, i) => ({ id: c.id, problem: c.problem, ...(verdicts.get(i) ?? { verdict: 'errored', fuel: 0, stdout: '', stderr: '', error: { code: 'IM_NOT_FOUND', message: 'no result' } }) }));
      if (opts.out !== undefined) await writeFile(opts.out, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      const rows = problems.filter((p) => candidates.some((c) => c.problem === p.id)).map((p) => {
        const mine = lines.filter((l) => l.problem === p.id);
        const passed = mine.filter((l) => l.verdict === 'passed').length;
        return { id: p.id, n: mine.length, passed, passAtK: Object.fromEntries(ks.map((k) => [String(k), mine.length >= k ? passAtK(mine.length, passed, k) : null])) };
      });
      const mean = (k: number): number | null => {
        const xs = rows.map((r) => r.passAtK[String(k)]).filter((x): x is number => x !== null);
        return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
      };
      const summary = { job: job.id, candidates: candidates.length, passed: lines.filter((l) => l.verdict === 'passed').length, passAtK: Object.fromEntries(ks.map((k) => [String(k), mean(k)])) };
      if (opts.json) return outJson({ problems: rows, summary });
      await out(table(['PROBLEM', 'N', 'PASSED', ...ks.map((k) => `PASS@${k}`)], rows.map((r) => [r.id, String(r.n), String(r.passed), ...ks.map((k) => { const v = r.passAtK[String(k)]; return v === null || v === undefined ? '—' : v.toFixed(3); })])));
      await out(`${summary.passed}/${summary.candidates} passed; mean ${ks.map((k) => `pass@${k} ${mean(k)?.toFixed(3) ?? '—'}`).join(', ')}${opts.out !== undefined ? `; results in ${opts.out}` : ''}\n`);
    });
}
