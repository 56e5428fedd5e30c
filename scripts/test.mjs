// Runs every compiled test file with node's test runner, so all packages share
// one runner and one report. Pass file filters as arguments to run fewer.
// --test-force-exit: a file whose tests all finished ends even if a library (node-llama-cpp, undici) left a handle open.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', pkg, 'dist', 'test');
  try { walk(dir, files); } catch { /* package without tests */ }
}
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// The split-inference suites need llama.cpp built (minutes on two cores when the cache is cold): built here first, on
// an otherwise idle machine and outside any test's timeout, as CI does in its own phase. Cached: returns at once.
if (selected.some((f) => /split-rpc/.test(f))) {
  const { buildUnavailableReason } = await import(new URL('../packages/agent/dist/src/split/build.js', import.meta.url).href);
  const why = await buildUnavailableReason();
  if (why) console.error(`llama.cpp cannot be built here (${why}): the split-inference suites will say so and skip`);
  else if (spawnSync(process.execPath, [join(root, 'scripts/build-llama-rpc.mjs')], { stdio: 'inherit' }).status !== 0) {
    console.error('the llama.cpp build failed; the split-inference suites will fail or skip');
  }
}
console.error(`running ${selected.length} test files: ${selected.map((f) => relative(root, f)).join(', ')}`);
const concurrency = process.env.IDLEMESH_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...selected], { stdio: 'inherit' });
process.exit(r.status ?? 1);
